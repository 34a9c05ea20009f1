from __future__ import annotations

from celery import shared_task

from handoff import services


@shared_task
def enforce_sla() -> None:
    """Every minute: record SLA breaches and return untouched claims to the queue."""
    services.enforce_sla()
