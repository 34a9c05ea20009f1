"""Thin Celery tasks around scoring.services. All take ids and are safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from scoring import services
from scoring.models import CriteriaVersion


@shared_task(autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def rescore_contacts(contact_ids: list[int]) -> None:
    services.rescore_stale(contact_ids=contact_ids)


@shared_task
def sweep_stale() -> None:
    services.sweep_stale()


@shared_task(soft_time_limit=3600, time_limit=3700)
def full_rescore(run_id: int) -> None:
    services.run_full_rescore(run_id=run_id)


@shared_task(soft_time_limit=3600, time_limit=3700)
def refresh_decay() -> None:
    """Hourly: scores decay with time, so everyone is rescored (set-based, in chunks)."""
    run = services.start_full_rescore(version=CriteriaVersion.objects.get(status=CriteriaVersion.Status.ACTIVE))
    services.run_full_rescore(run_id=run.pk)
