from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task
from django.db import connection

from crm import webhooks


@shared_task(ignore_result=False)
def ping() -> dict[str, int]:
    """Diagnostic round trip: proves the broker, a worker and the database reach each other (and names the
    database backend that answered)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), pg_backend_pid() FROM crm_contact")
        contacts, backend = cursor.fetchone()
    return {"contacts": contacts, "backend": backend}


@shared_task(soft_time_limit=240, time_limit=300)
def deliver_webhooks() -> None:
    """Nudged after each change that has deliveries, and every 5 s by beat (retries that fall due)."""
    webhooks.deliver_due()


@shared_task(autoretry_for=(SMTPException, OSError), max_retries=8, retry_backoff=30, retry_backoff_max=1800)
def email_admins(subject: str, body: str) -> None:
    webhooks.email_admins(subject=subject, body=body)
