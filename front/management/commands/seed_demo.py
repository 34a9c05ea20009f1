from __future__ import annotations

import random
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone

from crm import demo
from crm.models import Contact, Stage, StageChange
from handoff.demo import seed_desk, seed_history
from handoff.models import QueueEntry
from leads.demo import seed_events, sources
from leads.models import Event
from scoring.adjustments import adjust
from scoring.evidence import LABELLED
from scoring.models import ScoreHistory
from scoring.services import rescore, rescore_all_stale


def _outcome_signals(*, seed: int) -> None:
    """What the demo's outcomes rest on, for the rule evidence and the suggestions to find: before their
    handoff, leads sales accepted had mostly visited the pricing pages and rejected ones mostly had not;
    downloading content went with rejection (students); opening emails went with nothing; most had asked
    for a demo (sales intent) — the rest were sent by hand."""
    rng, (website, mailer) = random.Random(seed), sources()
    events = []
    for entry in QueueEntry.objects.filter(status__in=LABELLED).only("pk", "contact_id", "entered_at", "status"):
        accepted = entry.status != "rejected"
        before = entry.entered_at - timedelta(days=rng.uniform(0.2, 5))
        signals = [
            (website, "page_view", {"path": "/pricing"}, rng.random() < (0.8 if accepted else 0.25)),
            (website, "form_submit", {"form": "ebook"}, rng.random() < (0.1 if accepted else 0.4)),
            (mailer, "email_open", {"campaign": "nurture"}, rng.random() < 0.5),
            (website, "form_submit", {"form": "demo"}, rng.random() < 0.85),  # what sent most of them to sales
        ]
        for k, (source, kind, properties, happened) in enumerate(signals):
            if happened:
                events.append(
                    Event(
                        source=source,
                        client_id=f"demo-outcome-{entry.pk}-{k}",
                        contact_id=entry.contact_id,
                        type=kind,
                        properties=properties,
                        occurred_at=before,
                        received_at=before,
                    )
                )
    Event.objects.bulk_create(events, ignore_conflicts=True)
    rescore(contact_ids=sorted({e.contact_id for e in events}), notify=False)


def _adjust_one() -> None:
    """One MQL with a marketer's adjustment, so the breakdown and the timeline show one."""

    mia = get_user_model().objects.filter(email="mia@baton.test").first()
    lead = Contact.objects.scored().filter(stage=Stage.MQL, score__lt=55).order_by("pk").first()  # stays short of sql
    if mia and lead:
        adjust(contact_id=lead.pk, points=10, reason="Spoke at our booth; wants a call in Q1", expires_at=None, by=mia)


def _score_points_of_the_past(*, after_id: int) -> None:
    """The score charts of leads given a past: a point at each of its stage changes, at the score it recorded."""
    changes = StageChange.objects.filter(id__gt=after_id).only("contact_id", "at", "score", "to_stage")
    points = [
        ScoreHistory(
            contact_id=c.contact_id, at=c.at, score=c.score, fit_score=0, engagement_score=c.score, stage=c.to_stage
        )
        for c in changes
    ]
    ScoreHistory.objects.bulk_create(points, batch_size=2000)


class Command(BaseCommand):
    help = (
        "Load demo data: users per role, companies, contacts, their activity and scores. Deterministic with "
        "--seed. Notifies nobody."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--contacts", type=int, default=2000)
        parser.add_argument("--events", type=int, default=50_000)
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when contacts already exist")

    def handle(self, *, seed: int, contacts: int, events: int, if_empty: bool, **options):
        if if_empty and Contact.objects.exists():
            self.stdout.write("Demo data already loaded.")
        else:
            result = demo.seed(contacts=contacts, seed=seed)
            stored = seed_events(count=events, seed=seed, now=timezone.now())
            rescore_all_stale(notify=False)  # scored here, so that the worker finds nothing to announce
            before = StageChange.objects.order_by("-id").values_list("id", flat=True).first() or 0
            pasts = seed_history(count=max(1, contacts // 3), seed=seed, now=timezone.now())
            _score_points_of_the_past(after_id=before)
            _outcome_signals(seed=seed)
            seed_desk()
            _adjust_one()
            self.stdout.write(
                f"Demo data: {result.companies} companies, {result.contacts} contacts, {stored} events, "
                f"{pasts} leads with 120 days of history for the reports."
            )
        self.stdout.write(f"Demo logins (password {demo.DEMO_PASSWORD!r}):")
        for email, name, role in demo.DEMO_USERS:
            self.stdout.write(f"  {role:<10} {email:<16} {name}")
