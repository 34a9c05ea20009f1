"""The demo data command: scored as it loads, SQLs in the queue, and nobody notified."""

from __future__ import annotations

from django.core.management import call_command

from crm.models import ContactActivity, Stage
from handoff.models import QueueEntry


def test_loading_the_demo_scores_everyone_and_notifies_nobody(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        call_command("seed_demo", contacts=300, events=6000)

    assert QueueEntry.objects.filter(contact__stage=Stage.SQL).exists()
    assert not ContactActivity.objects.filter(stale_since__isnull=False).exists()
    assert not [c for c in callbacks if getattr(c, "func", None).__name__ == "_tell_sales_later"]


def test_the_demo_has_a_past_for_the_reports_and_the_score_charts(db):
    from datetime import timedelta

    from django.utils import timezone

    from crm.models import StageChange
    from scoring.models import ScoreHistory

    call_command("seed_demo", contacts=300, events=6000)

    month_ago = timezone.now() - timedelta(days=30)
    assert StageChange.objects.filter(at__lt=month_ago, to_stage=Stage.OPPORTUNITY).exists()
    assert QueueEntry.objects.filter(status="rejected").exclude(rejection_reason="").exists()
    assert ScoreHistory.objects.filter(at__lt=month_ago).exists()
    assert not StageChange.objects.filter(since=None).exists()  # every stay has its length, for the reports


def test_the_demo_gives_the_rule_evidence_something_real_to_find(db):
    from scoring import evidence
    from scoring.services import active_criteria

    call_command("seed_demo", contacts=1500, events=6000)

    rules = {r.name: r for r in evidence.evidence(active_criteria()).rules}
    assert rules["Pricing or product page"].flag == "predictive"
    assert rules["Content download"].lift[0] < 1  # downloads went with rejection
