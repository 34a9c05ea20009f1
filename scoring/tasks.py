"""Thin Celery tasks around scoring.services. All take ids and are safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from leads import imports
from scoring import backtest as replays
from scoring import previews, services

FULL_RESCORE_LIMITS = {"soft_time_limit": 3600, "time_limit": 3700}  # under the broker's visibility timeout
RECONNECT_AFTER = 3  # seconds before a full rescore that lost its database connection tries again


@shared_task(autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True, ignore_result=True)
def rescore_contacts(contact_ids: list[int]) -> None:
    services.rescore_stale(contact_ids=contact_ids)


@shared_task(autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def rescore_imported(contact_ids: list[int]) -> None:
    """Score a batch of imported contacts, moving nobody to sql (see services.run_import)."""
    services.rescore_stale(contact_ids=contact_ids, hold_sql=True)


@shared_task
def sweep_stale() -> None:
    """Every 30 s: rescore what a lost nudge left stale; queue again full rescores and imports that lost their
    worker."""
    services.sweep_stale()
    services.resume_stalled_runs()
    imports.resume_stalled()


@shared_task(bind=True, max_retries=120, **FULL_RESCORE_LIMITS)
def full_rescore(self, run_id: int) -> None:
    """Execute a run; while another full rescore holds the lock, try again in 30 s. When the database went away
    (a restart), again in a few seconds from where it stopped: the sweeper would only after RUN_STALLED (a 100k
    publish took 2 min 25 s instead of 2 s), and still ends a run whose every attempt fails (MAX_RESUMES)."""
    try:
        executed = services.run_full_rescore(run_id=run_id)
    except (OperationalError, InterfaceError) as e:
        raise self.retry(exc=e, countdown=RECONNECT_AFTER) from e
    if executed is None:
        raise self.retry(countdown=30)


@shared_task(**FULL_RESCORE_LIMITS)
def refresh_decay() -> None:
    """Hourly: scores decay with time, so everyone is rescored (set-based, in chunks)."""
    services.refresh_decay()


@shared_task(ignore_result=True, **FULL_RESCORE_LIMITS)
def vacuum_after_run() -> None:
    """After a full rescore or a decay refresh: the dead rows it left in the score and contact tables made
    reusable."""
    services.vacuum_after_run()


@shared_task(autoretry_for=(OperationalError,), max_retries=10, retry_backoff=True, **FULL_RESCORE_LIMITS)
def run_import(import_id: int) -> None:
    services.run_import(import_id=import_id)


@shared_task(autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True, **FULL_RESCORE_LIMITS)
def preview(preview_id: int) -> None:
    """What publishing a draft would do, for the criteria page (scoring.previews)."""
    previews.run(preview_id=preview_id)


@shared_task(**FULL_RESCORE_LIMITS)
def backtest(backtest_id: int) -> None:
    """Replay a draft and the active version over stored events (scoring.backtest)."""
    replays.run(backtest_id=backtest_id)
