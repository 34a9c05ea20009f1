from __future__ import annotations

import pytest

from crm.models import Contact
from crm.tasks import ping


@pytest.mark.django_db(transaction=True)
def test_a_task_round_trips_through_a_real_worker_and_database(celery_worker):
    Contact.objects.create(email="ada@example.com")
    Contact.objects.create(email="alan@example.com")

    result = ping.delay().get(timeout=20)

    assert result == {"contacts": 2}
