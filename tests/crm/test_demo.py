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
