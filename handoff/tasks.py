from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task

from handoff import services


@shared_task
def enforce_sla() -> None:
    """Every minute: record SLA breaches and return untouched claims to the queue."""
    services.enforce_sla()


@shared_task(autoretry_for=(SMTPException, OSError), max_retries=8, retry_backoff=30, retry_backoff_max=1800)
def tell_sales(entry_ids: list[int]) -> None:
    """New queue entries, by email to the sales group; retried with backoff while the mail server fails."""
    services.tell_sales(entry_ids=entry_ids)
