from __future__ import annotations

from crm import demo
from crm.models import Company, Contact


def _snapshot():
    return list(Contact.objects.order_by("email").values_list("email", "job_title", "company__name", "budget"))


def test_seed_is_deterministic_for_a_seed(db):
    demo.seed(contacts=200, companies=10, seed=3)
    first = _snapshot()
    Contact.objects.all().delete()
    Company.objects.all().delete()

    demo.seed(contacts=200, companies=10, seed=3)

    assert _snapshot() == first
    assert len(first) == 200


def test_seed_makes_a_user_per_role(client, db):
    demo.seed(contacts=10, companies=2)

    for email, _name, _role in demo.DEMO_USERS:
        assert client.login(username=email, password=demo.DEMO_PASSWORD)


def test_demo_activity_goes_through_ingest_and_is_deterministic(db):
    from django.utils import timezone

    from leads.demo import seed_events
    from leads.models import Event

    demo.seed(contacts=50, companies=5, seed=3)
    now = timezone.now()

    assert seed_events(count=500, seed=3, now=now) == 500
    first = list(Event.objects.order_by("client_id").values_list("client_id", "type", "contact__email"))
    assert seed_events(count=500, seed=3, now=now) == 0  # the same ids again: all duplicates
    assert {t for _, t, _ in first} >= {"page_view", "email_open", "form_submit"}
    assert Contact.objects.filter(activity__stale_since__isnull=False).exists()
