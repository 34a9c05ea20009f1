"""What the lead page shows: a readable activity timeline, the score chart, the profile and note forms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms

from crm.models import Contact, Stage
from crm.roles import ADMIN, MARKETING, roles_of

TIMELINE_PAGE = 25
CHART_WIDTH, CHART_HEIGHT = 560, 140


class ProfileForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = [
            "first_name",
            "last_name",
            "phone",
            "job_title",
            "seniority",
            "country",
            "budget",
            "authority",
            "need",
            "timeline",
        ]


class NoteForm(forms.Form):
    body = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 3}), label="Note")


def describe(event_type: str, properties: dict[str, Any]) -> str:
    """One line a person reads, such as "Viewed /pricing" or "Submitted the demo form"."""
    get = lambda key: str(properties.get(key) or "")  # noqa: E731
    match event_type:
        case "page_view":
            return f"Viewed {get('path') or get('url') or 'a page'}"
        case "email_open":
            return f"Opened email {get('campaign')}".strip()
        case "email_click":
            return f"Clicked {get('link') or 'a link'} in email {get('campaign')}".strip()
        case "form_submit":
            return f"Submitted the {get('form')} form"
        case "email_unsubscribe":
            return "Unsubscribed from email"
        case "email_subscribe":
            return "Subscribed to email"
        case "email_bounce":
            return "Email bounced"
        case "identify":
            return "Identified on the website"
    return event_type.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Timeline:
    items: list[tuple[datetime, str, str]]  # (when, what, source)
    older: int | None  # the id to continue before, if there is more


def timeline(contact: Contact, *, before: int | None) -> Timeline:
    """Newest first, TIMELINE_PAGE at a time (keyset on id)."""
    events = contact.events.select_related("source").order_by("-occurred_at", "-id")
    if before:
        pivot = contact.events.filter(pk=before).values_list("occurred_at", flat=True).first()
        if pivot is not None:
            events = events.filter(occurred_at__lte=pivot).exclude(occurred_at=pivot, id__gte=before)
    rows = list(events[: TIMELINE_PAGE + 1])
    more = len(rows) > TIMELINE_PAGE
    rows = rows[:TIMELINE_PAGE]
    return Timeline(
        [(e.occurred_at, describe(e.type, e.properties), e.source.name) for e in rows], rows[-1].pk if more else None
    )


def chart(points: list[tuple[datetime, int]]) -> dict[str, Any] | None:
    """An SVG polyline of the score over time (server-rendered: no chart library, nothing from a CDN)."""
    if len(points) < 2:
        return None
    start, end = points[0][0].timestamp(), points[-1][0].timestamp()
    low, high = min(0, *(s for _, s in points)), max(10, *(s for _, s in points))
    span_t, span_s = max(end - start, 1), max(high - low, 1)
    coords = [
        (
            round(8 + (t.timestamp() - start) / span_t * (CHART_WIDTH - 16), 1),
            round(8 + (high - s) / span_s * (CHART_HEIGHT - 16), 1),
        )
        for t, s in points
    ]
    return {
        "points": " ".join(f"{x},{y}" for x, y in coords),
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "low": low,
        "high": high,
        "first": points[0][0],
        "last": points[-1][0],
    }


def notes(contact: Contact) -> list:
    return list(contact.notes.select_related("author").order_by("-created_at")[:50])


def context(
    contact: Contact, *, user, profile_form: ProfileForm | None = None, note_form: NoteForm | None = None
) -> dict[str, Any]:
    """Everything the whole lead page shows, for ``user``'s roles."""
    roles = roles_of(user)
    can_edit = bool(roles & {MARKETING, ADMIN})
    history_points = list(contact.score_history.order_by("at").values_list("at", "score")[:500])
    return {
        "contact": contact,
        "can_edit": can_edit,
        "can_hand_over": can_edit and contact.stage in (Stage.LEAD, Stage.MQL),
        "can_reopen": ADMIN in roles and contact.stage == Stage.DISQUALIFIED,
        "profile_form": profile_form,
        "history": contact.stage_changes.order_by("-at", "-id"),
        "entry": contact.queue_entries.select_related("owner").order_by("-entered_at").first(),
        "events": timeline(contact, before=None),
        "chart": chart(history_points),
        "notes": notes(contact),
        "note_form": note_form or NoteForm(),
    }
