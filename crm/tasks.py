from __future__ import annotations

from celery import shared_task

from crm.models import Contact


@shared_task(ignore_result=False)
def ping() -> dict[str, int]:
    """Diagnostic round trip: proves the broker, a worker and the database reach each other."""
    return {"contacts": Contact.objects.count()}
