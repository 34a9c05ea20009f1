"""The handoff queue's actions. Contested writes are conditional updates; every stage move goes through
crm.lifecycle. Each action is one transaction and answers a refusal with a HandoffRefused saying why."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mass_mail
from django.db import connection, models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from crm import lifecycle, webhooks
from crm.celery import send_soon
from crm.contact_json import iso
from crm.errors import DomainError
from crm.lifecycle import Actor
from crm.models import Breakdown, Contact, Grade, Score, Stage, WebhookEndpoint
from crm.roles import MARKETING, SALES
from handoff import business_time
from handoff.business_time import Calendar
from handoff.models import Desk, QueueEntry, Rep, RoutingRule, SlaBreach

log = logging.getLogger(__name__)
Status = QueueEntry.Status
Event = WebhookEndpoint.Event
TELL_SALES_TASK = "handoff.tasks.tell_sales"
ROUTE_TASK = "handoff.tasks.route"
TELL_BREACHES_TASK = "handoff.tasks.tell_breaches"
HOLDING = (Status.CLAIMED, Status.WORKING)  # what counts against a rep's claim limit
CLAIM_LOCK = 7_340_002  # pg advisory lock namespace: one claim at a time per rep
ROUTE_LOCK = 7_340_003  # pg advisory lock: one routing decision at a time
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OFFERED_ELSEWHERE = "(offered_to_id IS NULL OR offered_to_id = %(rep)s OR offer_expires_at <= %(now)s)"


class HandoffRefused(DomainError):
    pass


@dataclass(frozen=True)
class Sla:
    unclaimed_minutes: int
    first_touch_minutes: int


# Opens the queue entries of the contacts %(ids)s in one statement: the facts sales read first, the score and its top
# three reasons (the breakdown's largest points, in its order among equals) as the contact enters, what each asked
# for (%(asked_ids)s beside %(asked_forms)s), in the columns GIVEN; every other column takes its field's default.
OPEN = """
INSERT INTO handoff_queueentry ({given}, {others})
SELECT c.id, 'waiting', %(sent_by)s, %(note)s,
    jsonb_build_object('job_title', c.job_title, 'company', coalesce(co.name, ''), 'company_size', co.size,
        'phone', c.phone, 'requested', coalesce(r.forms, '[]'::jsonb)),
    coalesce(s.score, 0), %(now)s,
    (SELECT coalesce(jsonb_agg(top.e ORDER BY top.rank), '[]'::jsonb) FROM (
        SELECT b.e, row_number() OVER (ORDER BY abs((b.e ->> 'points')::float8) DESC, b.n) AS rank
        FROM jsonb_array_elements({breakdown}) WITH ORDINALITY b(e, n)
        ORDER BY rank LIMIT 3) top),
    %(due)s, %(first_touch)s, %(routed)s, {defaults}
FROM crm_contact c
LEFT JOIN crm_company co ON co.id = c.company_id
LEFT JOIN crm_score s ON s.version = (SELECT live FROM crm_scoreversion) AND s.contact_id = c.id
LEFT JOIN unnest(%(asked_ids)s::bigint[], %(asked_forms)s::jsonb[]) r(id, forms) ON r.id = c.id
WHERE c.id = ANY(%(ids)s)
ORDER BY c.id
ON CONFLICT DO NOTHING
RETURNING id"""
GIVEN = "contact_id status sent_by note facts score entered_at reasons unclaimed_due_at first_touch_minutes routed_at"
# A field with a database default is left to it (its Python default is an expression psycopg cannot send).
OTHERS = [
    f
    for f in QueueEntry._meta.concrete_fields
    if not f.primary_key and f.attname not in GIVEN.split() and f.db_default is models.NOT_PROVIDED
]
OPEN_SQL = OPEN.format(
    given=", ".join(GIVEN.split()),
    others=", ".join(f.column for f in OTHERS),
    defaults=", ".join(f"%(default_{f.attname})s" for f in OTHERS),
    breakdown=Breakdown.SQL.format(**{name: f"s.{name}" for name in Breakdown.FACTS}),
)


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
    how many entries were opened. One statement, however many: a publish opens thousands.
    """
    now = now or timezone.now()
    desk = Desk.get()
    asked = sorted(requested.items())
    params = {
        "ids": contact_ids,
        "sent_by": sent_by,
        "note": note,
        "now": now,
        "due": business_time.due(Calendar.of(desk), now, sla.unclaimed_minutes),
        "first_touch": sla.first_touch_minutes,
        "routed": now if desk.mode == Desk.Mode.OPEN else None,
        "asked_ids": [pk for pk, _ in asked],
        "asked_forms": [json.dumps(forms) for _, forms in asked],
        **{f"default_{f.attname}": f.get_db_prep_save(f.get_default(), connection) for f in OTHERS},
    }
    with connection.cursor() as cursor:
        cursor.execute(OPEN_SQL, params)
        opened = sorted(row[0] for row in cursor.fetchall())
    _tell_the_hooks(Event.HANDOFF_CREATED, opened)
    if notify and opened:
        transaction.on_commit(partial(_tell_sales_later, opened))
    if opened and params["routed"] is None:
        transaction.on_commit(partial(send_soon, ROUTE_TASK, [], what="routing new SQLs to reps"))
    return len(opened)


def _tell_the_hooks(event: str, entry_ids: list[int], extra: dict[int, dict] | None = None) -> None:
    """Queue the outgoing webhooks of ``event`` for these entries (with ``extra`` data by entry id), in the
    caller's transaction (nothing read when nobody listens: a publish opens thousands)."""
    if entry_ids and webhooks.listening(event):
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


def _entry(entry_id: int) -> QueueEntry | None:
    return QueueEntry.objects.select_related("owner", "offered_to").filter(pk=entry_id).first()


def _refusal(entry_id: int, rep: AbstractBaseUser, allowed: tuple[str, ...]) -> HandoffRefused:
    return _refused(_entry(entry_id), rep, allowed)


def _refused(entry: QueueEntry | None, rep: AbstractBaseUser, allowed: tuple[str, ...]) -> HandoffRefused:
    """Why ``rep`` cannot act on the entry as it is: gone, someone else's, offered to another, another status."""
    if entry is None:
        return HandoffRefused("That queue entry does not exist.")
    if entry.status in (Status.CLAIMED, Status.WORKING, Status.ACCEPTED) and entry.owner_id != rep.pk:
        return HandoffRefused(f"Already claimed by {_name(entry.owner)}.")
    if _offered_elsewhere(entry, rep, timezone.now()):
        until = timezone.localtime(entry.offer_expires_at).strftime("%H:%M")
        return HandoffRefused(f"Offered to {_name(entry.offered_to)} until {until}; it opens to everyone then.")
    return HandoffRefused(
        f"This lead is {entry.get_status_display().lower()}; that action needs it to be "
        f"{' or '.join(Status(s).label.lower() for s in allowed)}."
    )


def _name(user) -> str:
    return (user.get_full_name() or user.get_username()) if user else "someone"


def _under_the_limit(cursor, rep: AbstractBaseUser, limit: int | None) -> None:
    """Take the rep's claim lock (held to commit) and refuse when the rep already holds ``limit`` claims. The
    count runs after the lock, so one rep's concurrent claims cannot pass the limit together."""
    limit = settings.HANDOFF_CLAIM_LIMIT if limit is None else limit
    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [CLAIM_LOCK, rep.pk])
    cursor.execute(
        "SELECT count(*) FROM handoff_queueentry WHERE owner_id = %s AND status IN ('claimed', 'working')", [rep.pk]
    )
    if cursor.fetchone()[0] >= limit:
        raise HandoffRefused(f"You hold {limit} open claims, the most allowed; log first touches or close some.")


def _take(cursor, *, entry_id: int, minutes: int, rep: AbstractBaseUser, now: datetime) -> bool:
    """The conditional UPDATE that gives a waiting entry (not offered to someone else) to the rep, and the
    contact with it; the first-touch clock in working time. False when it was no longer there to take."""
    cursor.execute(
        f"""
        WITH won AS (
            UPDATE handoff_queueentry SET status = 'claimed', owner_id = %(rep)s, claimed_at = %(now)s,
                first_touch_due_at = %(due)s, offered_to_id = NULL, offer_expires_at = NULL
            WHERE id = %(entry)s AND status = 'waiting' AND {OFFERED_ELSEWHERE}
            RETURNING id, contact_id
        )
        UPDATE crm_contact c SET owner_id = %(rep)s, updated_at = %(now)s FROM won WHERE c.id = won.contact_id
        RETURNING won.id
        """,
        {"rep": rep.pk, "now": now, "entry": entry_id, "due": business_time.due(calendar(), now, minutes)},
    )
    if cursor.fetchone() is None:
        return False
    _tell_the_hooks(Event.HANDOFF_CLAIMED, [entry_id])
    return True


def calendar() -> Calendar | None:
    return Calendar.of(Desk.get())


def claim(*, entry_id: int, rep: AbstractBaseUser, limit: int | None = None) -> QueueEntry:
    """Give a waiting entry to ``rep``: of any number of reps claiming at once, exactly one wins.

    The winner is decided by one conditional UPDATE (losers wait on the row, then match nothing). An entry
    offered to another rep can be claimed only once the offer has run out.
    """
    now = timezone.now()
    entry = _entry(entry_id)
    if entry is None or entry.status != Status.WAITING or _offered_elsewhere(entry, rep, now):
        raise _refused(entry, rep, (Status.WAITING,))  # at once: most clicks of a rush lose, and need no lock
    with transaction.atomic(), connection.cursor() as cursor:
        _under_the_limit(cursor, rep, limit)
        if not _take(cursor, entry_id=entry_id, minutes=entry.first_touch_minutes, rep=rep, now=now):
            raise _refusal(entry_id, rep, (Status.WAITING,))
    return QueueEntry.objects.get(pk=entry_id)


def _offered_elsewhere(entry: QueueEntry, rep: AbstractBaseUser, now: datetime) -> bool:
    return (
        entry.status == Status.WAITING
        and entry.offered_to_id not in (None, rep.pk)
        and entry.offer_expires_at is not None
        and entry.offer_expires_at > now
    )


def claim_next(*, rep: AbstractBaseUser, limit: int | None = None) -> QueueEntry:
    """Give the rep the top waiting entry (by priority) that nobody else is taking: rows being claimed are
    skipped (``FOR UPDATE SKIP LOCKED``), so any number of reps clicking at once each get a different one."""
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        _under_the_limit(cursor, rep, limit)
        cursor.execute(
            f"""
            SELECT id, first_touch_minutes FROM handoff_queueentry
            WHERE status = 'waiting' AND {OFFERED_ELSEWHERE}
            ORDER BY score DESC, entered_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
            """,
            {"rep": rep.pk, "now": now},
        )
        top = cursor.fetchone()
        if top is None or not _take(cursor, entry_id=top[0], minutes=top[1], rep=rep, now=now):
            raise HandoffRefused("Nothing is waiting: the queue is empty.")
    return QueueEntry.objects.get(pk=top[0])


def decline(*, entry_id: int, rep: AbstractBaseUser) -> QueueEntry:
    """The rep passes on an offer: the entry opens to everyone at once."""
    changed = QueueEntry.objects.filter(pk=entry_id, offered_to=rep, status=Status.WAITING).update(
        offered_to=None, offer_expires_at=None
    )
    if changed != 1:
        raise HandoffRefused("That offer is no longer yours: it was taken or it ran out.")
    return QueueEntry.objects.get(pk=entry_id)


def set_available(*, rep: AbstractBaseUser, available: bool) -> Rep:
    """A rep marks themself available for round robin (or not). Joining, a rep starts level with the
    others (at the least pass among the available), so a newcomer is not owed every offer of the past; going
    away, the rep's open offers open to everyone at once."""
    with transaction.atomic():
        row, _ = Rep.objects.select_for_update().get_or_create(user=rep)
        if available and not row.available:
            level = Rep.objects.filter(available=True).exclude(pk=row.pk).order_by("passed").first()
            row.passed = max(row.passed, level.passed if level else 0)
        row.available = available
        row.save(update_fields=["available", "passed"])
        if not available:
            withdraw_offers(rep=rep)
    return row


def withdraw_offers(*, rep: AbstractBaseUser) -> int:
    """The rep's offers still waiting open to everyone (a rep who goes away or leaves). Returns how many."""
    return QueueEntry.objects.filter(offered_to=rep, status=Status.WAITING).update(
        offered_to=None, offer_expires_at=None
    )


def _pool(rules: list[RoutingRule], contact: Contact) -> set[int] | None:
    """The rep ids of the first rule the contact matches; None (everyone) when no rule does."""
    size = contact.company.size if contact.company else None
    for rule in rules:
        if rule.channel and rule.channel.lower() != contact.channel.lower():
            continue
        if rule.country and rule.country.lower() != (contact.country or "").lower():
            continue
        if rule.min_size is not None and (size is None or size < rule.min_size):
            continue
        if rule.max_size is not None and (size is None or size > rule.max_size):
            continue
        if rule.grade and rule.grade != contact.grade:
            continue
        return {r.pk for r in rule.reps.all()}
    return None


def route(*, now: datetime | None = None, limit: int | None = None) -> int:
    """Offer each unrouted waiting entry to the next eligible rep of its pool — active, in sales, available,
    holding fewer than ``limit`` claims and offers — by weighted round robin (stride scheduling: the least
    offers per weight, then the least recently assigned). No eligible rep: the entry stays in the open queue.

    One routing decision at a time (an advisory lock), each entry decided once (routed_at). Returns the
    number of offers made. Safe to run twice; the minute sweep runs it too, for entries whose task was lost.
    """
    now = now or timezone.now()
    limit = settings.HANDOFF_CLAIM_LIMIT if limit is None else limit
    desk = Desk.get()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ROUTE_LOCK])
        unrouted = QueueEntry.objects.filter(status=Status.WAITING, routed_at=None)
        if desk.mode != Desk.Mode.ROUND_ROBIN:
            unrouted.update(routed_at=now)
            return 0
        entries = list(
            unrouted.select_related("contact", "contact__company")
            .order_by("-score", "entered_at", "pk")
            .select_for_update(skip_locked=True, of=("self",))
        )
        if not entries:
            return 0
        rules = list(RoutingRule.objects.prefetch_related("reps"))
        grades = dict(
            Score.objects.live()
            .filter(contact_id__in=[e.contact_id for e in entries])
            .values_list("contact_id", "grade")
        )
        for entry in entries:  # what a routing rule on the grade reads
            entry.contact.grade = grades.get(entry.contact_id, Grade.C)
        reps = {
            r.pk: r
            for r in Rep.objects.select_for_update(of=("self",)).filter(
                available=True, user__is_active=True, user__groups__name=SALES
            )
        }
        load = dict.fromkeys(reps, 0)
        for owner, offered in QueueEntry.objects.filter(
            Q(owner__in=reps, status__in=HOLDING)
            | Q(offered_to__in=reps, status=Status.WAITING, offer_expires_at__gt=now)
        ).values_list("owner", "offered_to"):
            load[owner if owner in load else offered] += 1
        offers = 0
        for entry in entries:
            pool = _pool(rules, entry.contact)
            eligible = [r for r in reps.values() if load[r.pk] < limit and (pool is None or r.pk in pool)]
            entry.routed_at = now
            if eligible:
                chosen = min(eligible, key=lambda r: (r.passed, r.last_assigned_at or EPOCH, r.pk))
                chosen.passed += 1 / max(chosen.weight, 1)
                chosen.last_assigned_at = now
                load[chosen.pk] += 1
                entry.offered_to_id = chosen.pk
                entry.offer_expires_at = now + timedelta(minutes=desk.offer_minutes)
                offers += 1
        QueueEntry.objects.bulk_update(entries, ["routed_at", "offered_to", "offer_expires_at"])
        Rep.objects.bulk_update(reps.values(), ["passed", "last_assigned_at"])
    return offers


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


def lost(*, entry_id: int, rep: AbstractBaseUser, reason: str) -> QueueEntry:
    if reason not in QueueEntry.LostReason.values:
        raise HandoffRefused("Choose why the opportunity was lost.")
    with transaction.atomic():
        entry = _transition(
            entry_id, rep, (Status.ACCEPTED,), Status.LOST, closed_at=timezone.now(), lost_reason=reason
        )
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
            RETURNING entry_id, id
            """,
            {"now": now},
        )
        rows = cursor.fetchall()
        breached = {row[0]: "unclaimed" for row in rows}
        breach_ids = [row[1] for row in rows]
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
            RETURNING entry_id, id
            """,
            {"now": now},
        )
        rows = cursor.fetchall()
        late = {row[0]: "first_touch" for row in rows}
        breach_ids += [row[1] for row in rows]
        # Offers not taken in time open to everyone.
        QueueEntry.objects.filter(status=Status.WAITING, offer_expires_at__lte=now).update(
            offered_to=None, offer_expires_at=None
        )
        returned = len(late)
        kinds = breached | late
        _tell_the_hooks(
            Event.HANDOFF_SLA_BREACHED,
            list(kinds),
            {pk: {"breach": {"kind": kind, "at": iso(now)}} for pk, kind in kinds.items()},
        )
        if breach_ids:
            transaction.on_commit(partial(send_soon, TELL_BREACHES_TASK, [breach_ids], what="the SLA breach emails"))
    return unclaimed, returned


def tell_breaches(*, breach_ids: list[int]) -> int:
    """Email each breach to whom it concerns, with a link to the lead: a missed first touch to the rep who
    held it, an SQL left unclaimed to marketing. Returns emails sent; raises what the mail server raises."""
    marketing = list(
        get_user_model()
        .objects.filter(groups__name=MARKETING, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    messages = []
    for breach in SlaBreach.objects.filter(pk__in=breach_ids).select_related("entry__contact", "owner"):
        contact = breach.entry.contact
        who = contact.full_name or contact.email
        link = settings.BASE_URL.rstrip("/") + reverse("contact_detail", args=[contact.pk])
        if breach.kind == SlaBreach.Kind.FIRST_TOUCH:
            to = [breach.owner.email] if breach.owner and breach.owner.email else []
            subject = f"SLA missed: {who} went back to the queue"
            body = f"No first touch was logged for {who} within its SLA, so it went back to the queue, flagged.\n"
        else:
            to = marketing
            subject = f"SLA missed: {who} is waiting unclaimed"
            body = f"{who} (score {breach.entry.score}) has waited for a rep past its SLA and is still unclaimed.\n"
        if to:
            messages.append((subject, f"{body}\n{link}\n", settings.DEFAULT_FROM_EMAIL, to))
    return send_mass_mail(messages, fail_silently=False) if messages else 0


def release(*, rep: AbstractBaseUser, now: datetime | None = None) -> int:
    """The rep's open claims (claimed or touched, not yet accepted) back to the queue, for another rep, and
    the rep's offers open to everyone; their contacts lose the rep as owner. For a rep who leaves. Returns how
    many claims went back. Safe to run twice."""
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
        returned = cursor.fetchone()[0]
        withdraw_offers(rep=rep)
        return returned


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
            Contact.objects.scored()
            .filter(pk__in=contact_ids, stage__in=(Stage.LEAD, Stage.MQL))
            .values_list("pk", "stage", "score")
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
    movable = (
        Contact.objects.scored()
        .filter(pk__in=contact_ids, stage__in=(Stage.LEAD, Stage.MQL))
        .values_list("pk", "stage", "score")
    )
    moves = [
        lifecycle.Move(pk, stage, Stage.DISQUALIFIED, f"Disqualified: {reason.strip()}", score)
        for pk, stage, score in movable
    ]
    return len(lifecycle.move_many(moves=moves, by=Actor.of(marketer)))
