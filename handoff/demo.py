"""Demo history for the reports: 120 days of leads arriving, becoming MQL and SQL, handoffs claimed, touched,
accepted or rejected (with reasons, some in the reps' own words), won and lost, by the demo reps; some SLAs
breached. Written straight into the history tables, as it would have been written over those days."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction

from crm.models import Contact, Stage, StageChange
from handoff.models import Desk, QueueEntry, Rep, RoutingRule, SlaBreach

REASONS = (
    (QueueEntry.Reason.NOT_READY, 5),
    (QueueEntry.Reason.NO_BUDGET, 4),
    (QueueEntry.Reason.NOT_DECISION_MAKER, 3),
    (QueueEntry.Reason.BAD_FIT, 2),
    (QueueEntry.Reason.DUPLICATE, 1),
    (QueueEntry.Reason.OTHER, 2),
)
OTHER_WORDS = ("Student project, not a buyer", "Already a customer of a partner", "Wrong country for us", "Competitor")
CHANNELS = ("google", "linkedin", "newsletter", "webinar", "partner", "direct")


def seed_history(*, count: int, seed: int, now: datetime) -> int:
    """Give ``count`` demo leads (without handoffs) a past; returns how many got one."""
    rng = random.Random(seed)
    reps = list(get_user_model().objects.filter(groups__name="sales").order_by("email"))
    if not reps:
        return 0
    ids = list(
        Contact.objects.filter(stage=Stage.LEAD, queue_entries=None).order_by("id").values_list("id", flat=True)
    )[:count]
    changes, entries, breaches = [], [], []
    final: dict[int, dict] = {}
    for contact_id in ids:
        created = now - timedelta(days=rng.uniform(2, 120))
        final[contact_id] = {"created_at": created, "channel": rng.choice(CHANNELS), "stage": Stage.LEAD}
        path = _path(rng, contact_id, created, now, reps)
        changes += path.changes
        final[contact_id] |= path.contact
        if path.entry is not None:
            entries.append(path.entry)
            breaches.append(path.breaches)
    with transaction.atomic():
        for contact_id, fields in final.items():
            Contact.objects.filter(pk=contact_id).update(**fields)
        StageChange.objects.bulk_create(changes)
        QueueEntry.objects.bulk_create(entries)
        SlaBreach.objects.bulk_create(
            [SlaBreach(entry=entry, **b) for entry, made in zip(entries, breaches, strict=True) for b in made]
        )
    return len(ids)


class _Path:
    def __init__(self) -> None:
        self.changes: list[StageChange] = []
        self.contact: dict = {}
        self.entry: QueueEntry | None = None
        self.breaches: list[dict] = []


def _path(rng: random.Random, contact_id: int, created: datetime, now: datetime, reps: list) -> _Path:
    """How far one lead got: each step happens with a probability, after a delay, and only before ``now``."""
    path = _Path()
    score = rng.randrange(10, 40)

    def move(frm: str, to: str, at: datetime, by=None, reason: str = "") -> None:
        label = by.get_full_name() if by else "scoring v1"
        since = path.changes[-1].at if path.changes else created  # when it entered the stage it leaves
        path.changes.append(
            StageChange(
                contact_id=contact_id,
                from_stage=frm,
                to_stage=to,
                at=at,
                by_user=by,
                by_label=label,
                reason=reason or f"Score {score} passed the threshold",
                score=score,
                since=since,
            )
        )
        path.contact["stage"] = to

    mql_at = created + timedelta(days=rng.uniform(0.3, 10))
    if rng.random() > 0.65 or mql_at >= now:
        return path
    score = rng.randrange(40, 70)
    move(Stage.LEAD, Stage.MQL, mql_at)
    sql_at = mql_at + timedelta(days=rng.uniform(0.2, 8))
    if rng.random() > 0.55 or sql_at >= now:
        return path
    score = rng.randrange(70, 110)
    move(Stage.MQL, Stage.SQL, sql_at)
    rep = rng.choices(reps, weights=[2, 1, 1, 1][: len(reps)])[0]
    claimed_at = sql_at + timedelta(minutes=rng.lognormvariate(2.8, 1.1))
    touch_at = claimed_at + timedelta(minutes=rng.lognormvariate(3.0, 1.3))
    entry = path.entry = QueueEntry(
        contact_id=contact_id,
        status=QueueEntry.Status.WAITING,
        sent_by="scoring v1",
        score=score,
        entered_at=sql_at,
        unclaimed_due_at=sql_at + timedelta(minutes=60),
        first_touch_minutes=120,
        reasons=[{"rule": "Demo request", "points": 40}],
        facts={},
    )
    if claimed_at >= now:
        return path
    if claimed_at > entry.unclaimed_due_at:
        path.breaches.append({"kind": SlaBreach.Kind.UNCLAIMED, "at": entry.unclaimed_due_at, "owner": None})
    entry.status, entry.owner, entry.claimed_at = QueueEntry.Status.CLAIMED, rep, claimed_at
    entry.first_touch_due_at = claimed_at + timedelta(minutes=120)
    path.contact["owner"] = rep
    if touch_at >= now:
        return path
    if touch_at > entry.first_touch_due_at:
        path.breaches.append({"kind": SlaBreach.Kind.FIRST_TOUCH, "at": entry.first_touch_due_at, "owner": rep})
        entry.flagged = True
    entry.breaches = len(path.breaches)
    entry.status, entry.first_touch_at = QueueEntry.Status.WORKING, touch_at
    entry.first_touch_kind = rng.choice(QueueEntry.Touch.values)
    decided_at = touch_at + timedelta(days=rng.uniform(0.1, 4))
    if decided_at >= now:
        return path
    # Fitter, faster-touched leads are accepted more often: the reports have a story to tell.
    if rng.random() < (0.7 if touch_at - sql_at < timedelta(hours=1) else 0.45):
        entry.status = QueueEntry.Status.ACCEPTED
        move(Stage.SQL, Stage.OPPORTUNITY, decided_at, by=rep, reason="Accepted by sales")
        closed_at = decided_at + timedelta(days=rng.uniform(5, 40))
        if closed_at < now and rng.random() < 0.7:
            won = rng.random() < 0.55
            entry.status = QueueEntry.Status.WON if won else QueueEntry.Status.LOST
            entry.closed_at = closed_at
            entry.lost_reason = "" if won else rng.choice(QueueEntry.LostReason.values)
            move(
                Stage.OPPORTUNITY,
                Stage.CUSTOMER if won else Stage.DISQUALIFIED,
                closed_at,
                by=rep,
                reason="Won" if won else "lost",
            )
        return path
    reason = rng.choices([r for r, _ in REASONS], weights=[w for _, w in REASONS])[0]
    entry.status, entry.closed_at, entry.rejection_reason = QueueEntry.Status.REJECTED, decided_at, reason
    entry.rejection_text = rng.choice(OTHER_WORDS) if reason == QueueEntry.Reason.OTHER else ""
    move(Stage.SQL, Stage.LEAD, decided_at, by=rep, reason=f"Rejected by sales: {QueueEntry.Reason(reason).label}")
    path.contact |= {"owner": None, "recycled_at": decided_at}
    return path


def seed_desk() -> None:
    """The desk as a team might set it up: Ria weighs double, Sam is available, enterprise leads go to Ria,
    and working hours are filled in (off until an admin turns them on, so the demo's clocks run now)."""
    users = get_user_model().objects
    sam, ria = users.filter(email="sam@baton.test").first(), users.filter(email="ria@baton.test").first()
    if not (sam and ria):
        return
    Desk.objects.update_or_create(
        pk=1,
        defaults={"time_zone": "Europe/London", "hours": {str(d): ["09:00", "17:30"] for d in range(5)}},
    )
    Rep.objects.update_or_create(user=sam, defaults={"available": True})
    Rep.objects.update_or_create(user=ria, defaults={"weight": 2})
    if not RoutingRule.objects.exists():
        RoutingRule.objects.create(name="Enterprise (1,000+ employees)", min_size=1000).reps.set([ria])
