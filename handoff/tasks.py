from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task

from handoff import services


@shared_task
def enforce_sla() -> None:
    """Every minute: record SLA breaches, return untouched claims to the queue, open offers that ran out, and
    route entries whose routing task was lost."""
    services.enforce_sla()
    services.route()


@shared_task(autoretry_for=(SMTPException, OSError), max_retries=8, retry_backoff=30, retry_backoff_max=1800)
def tell_sales(entry_ids: list[int]) -> None:
    """New queue entries, by email to the sales group; retried with backoff while the mail server fails."""
    services.tell_sales(entry_ids=entry_ids)


@shared_task(autoretry_for=(SMTPException, OSError), max_retries=8, retry_backoff=30, retry_backoff_max=1800)
def tell_breaches(breach_ids: list[int]) -> None:
    """SLA breaches, by email to the rep who missed one and to marketing for SQLs left unclaimed."""
    services.tell_breaches(breach_ids=breach_ids)


@shared_task
def route() -> None:
    """Round robin: offer new SQLs to the next available reps (also run by the minute sweep)."""
    services.route()
