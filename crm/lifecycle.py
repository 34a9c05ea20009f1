"""The one stage service: every lifecycle move of a contact goes through ``move``."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from crm import contact_json, webhooks
from crm.errors import DomainError
from crm.models import Contact, Stage, StageChange, WebhookEndpoint

STAGE_CHANGED = WebhookEndpoint.Event.STAGE_CHANGED


class StageMoveRefused(DomainError):
    pass


@dataclass(frozen=True)
class Actor:
    """Who made a move: a user, or a system label such as "scoring v3"."""

    user: AbstractBaseUser | None = None
    label: str = ""

    @classmethod
    def of(cls, user: AbstractBaseUser) -> Actor:
        return cls(user=user, label=user.get_full_name() or user.get_username())

    @classmethod
    def scoring(cls, version: int) -> Actor:
        return cls(label=f"scoring v{version}")


def move(
    *,
    contact_id: int,
    to: Stage | str,
    by: Actor,
    reason: str = "",
    expect: Stage | str | None = None,
    hold: bool = False,
) -> StageChange:
    """Move a contact to stage ``to`` and record the move with the contact's current score.

    Locks the contact row for the length of the caller's transaction (opens one if there is none), and
    queues the ``contact.stage_changed`` webhook in it.
    With ``expect``, refuses unless the contact is in that stage when locked, so two racing moves
    cannot both apply. Refuses a move to the stage the contact is already in. Returns the history row.
    ``hold`` (a marketer's move between lead and mql) keeps scoring from moving it back between the two.
    """
    to = Stage(to)
    with transaction.atomic():
        contact = (
            Contact.objects.scored()
            .select_for_update(of=("self",), no_key=True)  # as the update below: ingest's key-share locks go on
            .only("id", "stage", "created_at")
            .get(pk=contact_id)
        )
        if expect is not None and contact.stage != Stage(expect):
            raise StageMoveRefused(f"The contact is {contact.get_stage_display()} now, not {Stage(expect).label}.")
        if contact.stage == to:
            raise StageMoveRefused(f"The contact is already {to.label}.")
        change = StageChange.objects.create(
            contact_id=contact.pk,
            from_stage=contact.stage,
            to_stage=to,
            at=timezone.now(),
            by_user=by.user,
            by_label=by.label,
            reason=reason,
            score=contact.score,
            since=StageChange.objects.filter(contact_id=contact.pk).aggregate(last=Max("at"))["last"]
            or contact.created_at,
        )
        Contact.objects.filter(pk=contact.pk).update(stage=to, stage_held=hold, updated_at=change.at)
        webhooks.emit(type=STAGE_CHANGED, items=[(contact.pk, {"change": _change_json(change)})], at=change.at)
    return change


def _change_json(change: StageChange) -> dict:
    return {
        "from": change.from_stage,
        "to": change.to_stage,
        "at": contact_json.iso(change.at),
        "by": change.by_label,
        "reason": change.reason,
        "score": change.score,
    }


@dataclass(frozen=True)
class Move:
    contact_id: int
    from_stage: str
    to: str
    reason: str
    score: int


def move_many(*, moves: list[Move], by: Actor) -> list[Move]:
    """Apply many moves in two statements; returns those applied, each recorded like ``move``'s.

    A move applies only if its contact is still in ``from_stage`` (a conditional update: a human move
    racing it wins and the automatic one is skipped). Safe to run twice: the second applies none. Queues a
    ``contact.stage_changed`` webhook per move applied, in the same transaction.
    """
    if not moves:
        return []
    now, ids = timezone.now(), sorted({m.contact_id for m in moves})
    with transaction.atomic(), connection.cursor() as cursor:
        # Their scores first, in contact order, as every rescore writes them before it moves stages: the moves'
        # copy to the scores (crm 0017) would otherwise lock them after the contacts, and meet a rescore holding a
        # score while it waits for a contact (seen: 36 deadlocks in one publish under ingest).
        cursor.execute(
            "SELECT FROM crm_score WHERE version = ANY(crm_score_versions()) AND contact_id = ANY(%s)"
            " ORDER BY contact_id, version FOR UPDATE",
            [ids],
        )
        # The ids again beside the join: a few thousand moves sorted by id otherwise had the planner merge them with
        # the whole primary key of contacts (70 ms at 100k, read again by each of a publish's chunks).
        cursor.execute(
            """
            WITH m AS (
                SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::int[])
                    AS m(id, from_stage, to_stage, reason, score) ORDER BY id
            ),
            moved AS (
                UPDATE crm_contact c SET stage = m.to_stage, stage_held = false, updated_at = %s
                FROM m WHERE c.id = m.id AND c.id = ANY(%s) AND c.stage = m.from_stage
                RETURNING m.*, c.created_at
            )
            INSERT INTO crm_stagechange
                (contact_id, from_stage, to_stage, at, by_user_id, by_label, reason, score, since)
            SELECT id, from_stage, to_stage, %s, %s, %s, reason, score,
                coalesce((SELECT max(p.at) FROM crm_stagechange p WHERE p.contact_id = moved.id), created_at)
            FROM moved
            RETURNING contact_id, from_stage, to_stage, reason, score
            """,
            [
                [m.contact_id for m in moves],
                [m.from_stage for m in moves],
                [m.to for m in moves],
                [m.reason for m in moves],
                [m.score for m in moves],
                now,
                ids,
                now,
                by.user.pk if by.user else None,
                by.label,
            ],
        )
        moved = cursor.fetchall()
        webhooks.emit(
            type=STAGE_CHANGED,
            items=[
                (
                    pk,
                    {
                        "change": {
                            "from": f,
                            "to": t,
                            "at": contact_json.iso(now),
                            "by": by.label,
                            "reason": r,
                            "score": s,
                        }
                    },
                )
                for pk, f, t, r, s in moved
            ],
            at=now,
        )
    applied = {row[0] for row in moved}
    return [m for m in moves if m.contact_id in applied]
