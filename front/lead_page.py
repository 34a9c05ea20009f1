"""What the lead page shows: a readable activity timeline, the score chart, the profile and note forms."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from crm import profiles
from crm.models import Contact, Stage
from crm.roles import ADMIN, MARKETING, roles_of
from scoring.models import CriteriaVersion

TIMELINE_PAGE = 25
CHART_WIDTH, CHART_HEIGHT = 560, 140


class ProfileForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = profiles.TEXT_FIELDS


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
        case "score_adjustment":
            points = properties.get("points") or 0
            expires = properties.get("expires")
            until = (
                f" (until {timezone.localtime(datetime.fromtimestamp(expires, UTC)) - timedelta(days=1):%Y-%m-%d})"
                if isinstance(expires, int | float) and not isinstance(expires, bool)
                else ""
            )
            return f"Score adjusted {points:+g} by {get('by') or 'someone'}: {get('reason')}{until}"
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


def chart(
    points: list[tuple[datetime, int]],
    *,
    now: datetime,
    score: int,
    thresholds: list[tuple[str, float]],
    moves: list[tuple[datetime, str]],
) -> dict[str, Any]:
    """The score over time as SVG (server-rendered: no chart library, nothing from a CDN): a line through a
    point per change (each with its value as a title) to today's score, y and x axes, the MQL and SQL
    thresholds as dashed lines, and a marker where the stage changed."""
    points = [*points, (now, score)]
    start = min(points[0][0], *(at for at, _ in moves)) if moves else points[0][0]
    if (now - start).total_seconds() < 86400:  # a day at least, so one point still sits on a line
        start = now - timedelta(days=1)
    top = max(10, score, *(s for _, s in points), *(t for _, t in thresholds))
    top = int(math.ceil(top / 10.0) * 10)
    low = min(0, *(s for _, s in points))
    left, right, upper, bottom = 36, CHART_WIDTH - 8, 10, CHART_HEIGHT - 22
    span_t, span_s = (now - start).total_seconds(), max(top - low, 1)

    def x(at: datetime) -> float:
        return round(left + (at - start).total_seconds() / span_t * (right - left), 1)

    def y(value: float) -> float:
        return round(upper + (top - value) / span_s * (bottom - upper), 1)

    dots = [{"x": x(at), "y": y(v), "title": f"{v} on {at:%b %-d, %H:%M}"} for at, v in points]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": left,
        "right": right,
        "bottom": bottom,
        "upper": upper,
        "path": " ".join(f"{d['x']},{d['y']}" for d in dots),
        "dots": dots,
        "y_axis": [{"y": y(v), "label": v} for v in sorted({low, (low + top) // 2, top})],
        "x_axis": [{"x": x(at), "label": f"{at:%b %-d}"} for at in (start, start + (now - start) / 2, now)],
        "thresholds": [{"y": y(t), "label": f"{name} {t:g}"} for name, t in thresholds if low <= t <= top],
        "moves": [{"x": x(at), "label": f"→ {to.upper()} on {at:%b %-d}"} for at, to in moves],
        "first": start,
        "last": now,
        "low": low,
        "high": top,
    }


def notes(contact: Contact) -> list:
    return list(contact.notes.select_related("author").order_by("-created_at")[:50])


def context(
    contact: Contact,
    *,
    user,
    profile_form: ProfileForm | None = None,
    note_form: NoteForm | None = None,
    adjust_form: AdjustForm | None = None,
    stage_form: StageForm | None = None,
    before: int | None = None,
) -> dict[str, Any]:
    """Everything the whole lead page shows, for ``user``'s roles; its timeline from the newest event, or from
    the one before event ``before`` (the "Older activity" link without htmx)."""
    roles = roles_of(user)
    can_edit = bool(roles & {MARKETING, ADMIN})
    history_points = list(contact.score_history.order_by("-at").values_list("at", "score")[:500])[::-1]
    mql, sql = CriteriaVersion.objects.values_list("mql_threshold", "sql_threshold").get(status="active")
    history = list(contact.stage_changes.order_by("-at", "-id"))
    entries = list(
        contact.queue_entries.select_related("owner").prefetch_related("sla_breaches").order_by("-entered_at")[:20]
    )
    return {
        "contact": contact,
        "can_edit": can_edit,
        "can_hand_over": can_edit and contact.stage in (Stage.LEAD, Stage.MQL),
        "can_reopen": ADMIN in roles and contact.stage == Stage.DISQUALIFIED,
        "adjust_form": adjust_form or AdjustForm(),
        "stage_form": stage_form or StageForm(),
        "profile_form": profile_form,
        "history": history,
        "entry": entries[0] if entries else None,
        "entries": entries,
        "events": timeline(contact, before=before),
        "chart": chart(
            history_points,
            now=timezone.now(),
            score=contact.score,
            thresholds=[("MQL", mql), ("SQL", sql)],
            moves=[(c.at, c.to_stage) for c in history[:50][::-1]],
        ),
        "notes": notes(contact),
        "note_form": note_form or NoteForm(),
    }


class AdjustForm(forms.Form):
    points = forms.IntegerField(
        min_value=-100, max_value=100, help_text="From −100 to 100; negative lowers the score", label="Points"
    )
    reason = forms.CharField(max_length=500, label="Why")
    expires_on = forms.DateField(
        required=False,
        label="Until",
        help_text="Optional: it stops counting after this day",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_points(self) -> int:
        if self.cleaned_data["points"] == 0:
            raise forms.ValidationError("An adjustment of 0 points changes nothing.")
        return self.cleaned_data["points"]

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is not None and day < timezone.localdate():
            raise forms.ValidationError("That day has passed.")
        if day is not None and day > timezone.localdate() + timedelta(days=5 * 366):
            raise forms.ValidationError("At most five years ahead.")
        return day

    def expires_at(self) -> datetime | None:
        """The end of the chosen day, in the product's time zone."""
        day = self.cleaned_data["expires_on"]
        if day is None:
            return None
        return datetime.combine(day + timedelta(days=1), datetime.min.time(), timezone.get_current_timezone())


class StageForm(forms.Form):
    to = forms.ChoiceField(choices=[(Stage.LEAD, "Lead"), (Stage.MQL, "MQL")])
    reason = forms.CharField(max_length=500, label="Why")
