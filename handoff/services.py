"""The handoff queue's actions. Contested writes are conditional updates; every stage move goes through
crm.lifecycle. Each action is one transaction and answers a refusal with a HandoffRefused saying why."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mass_mail
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from crm import lifecycle, webhooks
from crm.celery import send_soon
from crm.contact_json import iso
from crm.errors import DomainError
from crm.lifecycle import Actor
from crm.models import Contact, Stage, WebhookEndpoint
from crm.roles import SALES
from handoff.models import QueueEntry

log = logging.getLogger(__name__)
Status = QueueEntry.Status
Event = WebhookEndpoint.Event
TELL_SALES_TASK = "handoff.tasks.tell_sales"
HOLDING = (Status.CLAIMED, Status.WORKING)  # what counts against a rep's claim limit
CLAIM_LOCK = 7_340_002  # pg advisory lock namespace: one claim at a time per rep


class HandoffRefused(DomainError):
    pass


@dataclass(frozen=True)
class Sla:
    unclaimed_minutes: int
    first_touch_minutes: int


def _facts(contacts: list[Contact], requested: dict[int, list[str]]) -> dict[int, dict]:
    return {
        c.pk: {
            "job_title": c.job_title,
            "company": c.company.name if c.company else "",
            "company_size": c.company.size if c.company else None,
            "phone": c.phone,
            "requested": requested.get(c.pk, []),
        }
        for c in contacts
    }


def enqueue(
    *,
    contact_ids: list[int],
    sent_by: str,
    sla: Sla,
    requested: dict[int, list[str]],
    note: str = "",
    notify: bool = True,
    now: datetime | None = None,
) -> int:
    """Open a queue entry for each contact entering sql that has none open; tell the sales group on commit.

    ``requested`` names what each contact asked for (the forms it sent), for the handoff note. Call in the
    transaction that moved them. Safe to run twice (one open entry per contact, by constraint). Returns
    how many entries were opened.
    """
    now = now or timezone.now()
    contacts = list(Contact.objects.filter(pk__in=contact_ids).select_related("company"))
    facts = _facts(contacts, requested)
    entries = [
        QueueEntry(
            contact=c,
            sent_by=sent_by,
            note=note,
            facts=facts[c.pk],
            score=c.score,
            entered_at=now,
            reasons=sorted(c.breakdown, key=lambda e: -abs(e["points"]))[:3],
            unclaimed_due_at=now + timedelta(minutes=sla.unclaimed_minutes),
            first_touch_minutes=sla.first_touch_minutes,
        )
        for c in contacts
    ]
    QueueEntry.objects.bulk_create(entries, ignore_conflicts=True)
    opened = list(
        QueueEntry.objects.filter(contact__in=contacts, entered_at=now, status=Status.WAITING).values_list(
            "pk", flat=True
        )
    )
    _tell_the_hooks(Event.HANDOFF_CREATED, opened)
    if notify and opened:
        transaction.on_commit(partial(_tell_sales_later, opened))
    return len(opened)


def _tell_the_hooks(event: str, entry_ids: list[int], extra: dict[int, dict] | None = None) -> None:
    """Queue the outgoing webhooks of ``event`` for these entries (with ``extra`` data by entry id), in the
    caller's transaction."""
    if entry_ids:
        entries = QueueEntry.objects.filter(pk__in=entry_ids).select_related("owner").order_by("pk")
        items = [(e.contact_id, {"handoff": e.as_json(), **(extra or {}).get(e.pk, {})}) for e in entries]
        webhooks.emit(type=event, items=items)


def _tell_sales_later(entry_ids: list[int]) -> None:
    send_soon(TELL_SALES_TASK, [entry_ids], what=f"the new-SQL email for entries {entry_ids}")


def tell_sales(*, entry_ids: list[int]) -> int:
    """Email the sales group about new queue entries, each with a link to the lead. Returns emails sent.

    Raises what the mail server raises (the task retries). Entries gone or already claimed are skipped.
    """
    recipients = list(
        get_user_model()
        .objects.filter(groups__name=SALES, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if not recipients:
        return 0
    messages = []
    for entry in QueueEntry.objects.filter(pk__in=entry_ids, status=Status.WAITING).select_related(
        "contact", "contact__company"
    ):
        who = entry.contact.full_name or entry.contact.email
        company = f" ({entry.contact.company.name})" if entry.contact.company else ""
        link = settings.BASE_URL.rstrip("/") + reverse("contact_detail", args=[entry.contact_id])
        body = (
            f"{who}{company} is sales-ready, score {entry.score}. Sent by {entry.sent_by}.\n"
            f"Claim it within {entry.first_touch_minutes} minutes of claiming for a first touch.\n\n"
            f"{link}\n"
        )
        messages.append(
            (f"New SQL: {who}{company}, score {entry.score}", body, settings.DEFAULT_FROM_EMAIL, recipients)
        )
    return send_mass_mail(messages, fail_silently=False)


def _refusal(entry_id: int, rep: AbstractBaseUser, allowed: tuple[str, ...]) -> HandoffRefused:
    entry = QueueEntry.objects.select_related("owner").filter(pk=entry_id).first()
    if entry is None:
        return HandoffRefused("That queue entry does not exist.")
    if entry.status in (Status.CLAIMED, Status.WORKING, Status.ACCEPTED) and entry.owner_id != rep.pk:
        name = entry.owner.get_full_name() or entry.owner.get_username() if entry.owner else "someone"
        return HandoffRefused(f"Already claimed by {name}.")
    return HandoffRefused(
        f"This lead is {entry.get_status_display().lower()}; that action needs it to be "
        f"{' or '.join(Status(s).label.lower() for s in allowed)}."
    )


def claim(*, entry_id: int, rep: AbstractBaseUser, limit: int | None = None) -> QueueEntry:
    """Give a waiting entry to ``rep``: of any number of reps claiming at once, exactly one wins.

    The winner is decided by one conditional UPDATE (losers wait on the row, then match nothing). The rep's
    own advisory lock comes first, so that rep's concurrent claims cannot pass the claim limit together
    (the count runs after the lock, on a fresh snapshot).
    """
    limit = settings.HANDOFF_CLAIM_LIMIT if limit is None else limit
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [CLAIM_LOCK, rep.pk])
        cursor.execute(
            "SELECT count(*) FROM handoff_queueentry WHERE owner_id = %s AND status IN ('claimed', 'working')",
            [rep.pk],
        )
        if cursor.fetchone()[0] >= limit:
            raise HandoffRefused(f"You hold {limit} open claims, the most allowed; log first touches or close some.")
        cursor.execute(
            """
            WITH won AS (
                UPDATE handoff_queueentry SET status = 'claimed', owner_id = %(rep)s, claimed_at = %(now)s,
                    first_touch_due_at = %(now)s + first_touch_minutes * interval '1 minute'
                WHERE id = %(entry)s AND status = 'waiting'
                RETURNING id, contact_id
            )
            UPDATE crm_contact c SET owner_id = %(rep)s, updated_at = %(now)s FROM won WHERE c.id = won.contact_id
            RETURNING won.id
            """,
            {"rep": rep.pk, "now": now, "entry": entry_id},
        )
        if cursor.fetchone() is None:
            raise _refusal(entry_id, rep, (Status.WAITING,))
        _tell_the_hooks(Event.HANDOFF_CLAIMED, [entry_id])
    return QueueEntry.objects.get(pk=entry_id)


def _transition(entry_id: int, rep: AbstractBaseUser, allowed: tuple[str, ...], to: str, **fields) -> QueueEntry:
    """Move the rep's own entry from one of ``allowed`` to ``to`` (a conditional update), or refuse."""
    changed = QueueEntry.objects.filter(pk=entry_id, owner=rep, status__in=allowed).update(status=to, **fields)
    if changed != 1:
        raise _refusal(entry_id, rep, allowed)
    return QueueEntry.objects.select_related("contact").get(pk=entry_id)


def _move(entry: QueueEntry, rep: AbstractBaseUser, to: Stage, expect: Stage, reason: str) -> None:
    try:
        lifecycle.move(contact_id=entry.contact_id, to=to, by=Actor.of(rep), reason=reason, expect=expect)
    except lifecycle.StageMoveRefused as e:
        raise HandoffRefused(str(e)) from None


def first_touch(*, entry_id: int, rep: AbstractBaseUser, kind: str, note: str = "") -> QueueEntry:
    if kind not in QueueEntry.Touch.values:
        raise HandoffRefused("Say how you reached them: call, email or meeting.")
    with transaction.atomic():
        return _transition(
            entry_id,
            rep,
            (Status.CLAIMED,),
            Status.WORKING,
            first_touch_at=timezone.now(),
            first_touch_kind=kind,
            first_touch_note=note,
        )


def accept(*, entry_id: int, rep: AbstractBaseUser) -> QueueEntry:
    with transaction.atomic():
        entry = _transition(entry_id, rep, HOLDING, Status.ACCEPTED)
        _move(entry, rep, Stage.OPPORTUNITY, Stage.SQL, "Accepted by sales")
        _tell_the_hooks(Event.HANDOFF_ACCEPTED, [entry_id])
    return entry


def reject(*, entry_id: int, rep: AbstractBaseUser, reason: str, text: str = "") -> QueueEntry:
    """Back to marketing as a recycled lead, with the reason marketing will see."""
    if reason not in QueueEntry.Reason.values:
        raise HandoffRefused("Choose a reason for rejecting the lead.")
    if reason == QueueEntry.Reason.OTHER and not text.strip():
        raise HandoffRefused("Say why, in a few words, when the reason is 'other'.")
    now = timezone.now()
    with transaction.atomic():
        entry = _transition(
            entry_id, rep, HOLDING, Status.REJECTED, closed_at=now, rejection_reason=reason, rejection_text=text.strip()
        )
        label = QueueEntry.Reason(reason).label
        _move(entry, rep, Stage.LEAD, Stage.SQL, f"Rejected by sales: {label}" + (f" — {text.strip()}" if text else ""))
        Contact.objects.filter(pk=entry.contact_id).update(recycled_at=now, owner=None, updated_at=now)
        _tell_the_hooks(Event.HANDOFF_REJECTED, [entry_id])
    return entry


def won(*, entry_id: int, rep: AbstractBaseUser) -> QueueEntry:
    with transaction.atomic():
        entry = _transition(entry_id, rep, (Status.ACCEPTED,), Status.WON, closed_at=timezone.now())
        _move(entry, rep, Stage.CUSTOMER, Stage.OPPORTUNITY, "Won")
    return entry


def lost(*, entry_id: int, rep: AbstractBaseUser) -> QueueEntry:
    with transaction.atomic():
        entry = _transition(entry_id, rep, (Status.ACCEPTED,), Status.LOST, closed_at=timezone.now())
        _move(entry, rep, Stage.DISQUALIFIED, Stage.OPPORTUNITY, "lost")
    return entry


def enforce_sla(*, now: datetime | None = None) -> tuple[int, int]:
    """Record SLA breaches; entries claimed but untouched past their SLA go back to the queue, flagged.

    Set-based; safe to run twice (a breach is recorded once per overdue period). Returns
    (unclaimed breaches recorded, entries returned to the queue).
    """
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            WITH overdue AS (
                UPDATE handoff_queueentry e SET breaches = e.breaches + 1
                WHERE e.status = 'waiting' AND e.unclaimed_due_at < %(now)s AND NOT EXISTS (
                    SELECT 1 FROM handoff_slabreach b
                    WHERE b.entry_id = e.id AND b.kind = 'unclaimed' AND b.at >= e.unclaimed_due_at)
                RETURNING e.id
            )
            INSERT INTO handoff_slabreach (entry_id, kind, at, owner_id)
            SELECT id, 'unclaimed', %(now)s, NULL FROM overdue
            RETURNING entry_id
            """,
            {"now": now},
        )
        breached = {row[0]: "unclaimed" for row in cursor.fetchall()}
        unclaimed = len(breached)
        cursor.execute(
            """
            WITH late AS (
                SELECT id, owner_id, contact_id FROM handoff_queueentry
                WHERE status = 'claimed' AND first_touch_due_at < %(now)s ORDER BY id FOR UPDATE
            ),
            returned AS (
                UPDATE handoff_queueentry e SET status = 'waiting', owner_id = NULL, claimed_at = NULL,
                    first_touch_due_at = NULL, flagged = true, breaches = e.breaches + 1, unclaimed_due_at = %(now)s
                FROM late WHERE e.id = late.id
                RETURNING e.id, late.owner_id, late.contact_id
            ),
            released AS (
                UPDATE crm_contact c SET owner_id = NULL, updated_at = %(now)s
                FROM returned r WHERE c.id = r.contact_id AND c.owner_id = r.owner_id
            )
            INSERT INTO handoff_slabreach (entry_id, kind, at, owner_id)
            SELECT id, 'first_touch', %(now)s, owner_id FROM returned
            RETURNING entry_id
            """,
            {"now": now},
        )
        late = {row[0]: "first_touch" for row in cursor.fetchall()}
        returned = len(late)
        kinds = breached | late
        _tell_the_hooks(
            Event.HANDOFF_SLA_BREACHED,
            list(kinds),
            {pk: {"breach": {"kind": kind, "at": iso(now)}} for pk, kind in kinds.items()},
        )
    return unclaimed, returned


def release(*, rep: AbstractBaseUser, now: datetime | None = None) -> int:
    """The rep's open claims (claimed or touched, not yet accepted) back to the queue, for another rep; their
    contacts lose the rep as owner. For a rep who leaves. Returns how many. Safe to run twice."""
    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            WITH mine AS (
                SELECT id, contact_id FROM handoff_queueentry
                WHERE owner_id = %(rep)s AND status IN ('claimed', 'working') ORDER BY id FOR UPDATE
            ),
            returned AS (  -- waiting again, with its unclaimed SLA from now
                UPDATE handoff_queueentry e SET status = 'waiting', owner_id = NULL, claimed_at = NULL,
                    first_touch_due_at = NULL, first_touch_at = NULL, first_touch_kind = '',
                    unclaimed_due_at = %(now)s + (e.unclaimed_due_at - e.entered_at)
                FROM mine WHERE e.id = mine.id
                RETURNING e.id, e.contact_id
            ),
            released AS (
                UPDATE crm_contact c SET owner_id = NULL, updated_at = %(now)s
                FROM returned r WHERE c.id = r.contact_id AND c.owner_id = %(rep)s
            )
            SELECT count(*) FROM returned
            """,
            {"rep": rep.pk, "now": now},
        )
        return cursor.fetchone()[0]


def send_to_sales(
    *, contact_ids: list[int], marketer: AbstractBaseUser, note: str, sla: Sla, requested: dict[int, list[str]]
) -> int:
    """A marketer hands leads and MQLs to sales by hand: each moves to sql and enters the queue with the note.

    Contacts in other stages are left as they are. Returns how many were sent. Safe to run twice.
    """
    note = note.strip()
    if not note:
        raise HandoffRefused("Add a handoff note: what should sales know?")
    now = timezone.now()
    with transaction.atomic():
        movable = list(
            Contact.objects.filter(pk__in=contact_ids, stage__in=(Stage.LEAD, Stage.MQL)).values_list(
                "pk", "stage", "score"
            )
        )
        moved = lifecycle.move_many(
            moves=[
                lifecycle.Move(pk, stage, Stage.SQL, f"Sent to sales: {note}", score) for pk, stage, score in movable
            ],
            by=Actor.of(marketer),
        )
        enqueue(
            contact_ids=[m.contact_id for m in moved],
            sent_by=Actor.of(marketer).label,
            sla=sla,
            requested=requested,
            note=note,
            now=now,
        )
    return len(moved)


def disqualify(*, contact_ids: list[int], marketer: AbstractBaseUser, reason: str) -> int:
    """Disqualify leads and MQLs (sales' contacts are sales' to close), for a reason. Returns how many moved."""
    if not reason.strip():
        raise HandoffRefused("Say why you disqualify (the reason is kept in the stage history).")
    movable = Contact.objects.filter(pk__in=contact_ids, stage__in=(Stage.LEAD, Stage.MQL)).values_list(
        "pk", "stage", "score"
    )
    moves = [
        lifecycle.Move(pk, stage, Stage.DISQUALIFIED, f"Disqualified: {reason.strip()}", score)
        for pk, stage, score in movable
    ]
    return len(lifecycle.move_many(moves=moves, by=Actor.of(marketer)))
