"""Django's admin is an ops tool: its edits take the same paths as the pages (a profile change rescores)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from crm.models import Company, Contact
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def change_form(contact: Contact, **changes) -> dict:
    data = {
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": "",
        "phone": "",
        "job_title": contact.job_title,
        "seniority": "",
        "company": contact.company_id or "",
        "country": "",
        "budget": "",
        "authority": "",
        "need": "",
        "timeline": "",
        "profile": "{}",
        "channel": "",
        "owner": "",
        "recycled_at_0": "",
        "recycled_at_1": "",
        "stage_changes-TOTAL_FORMS": "0",
        "stage_changes-INITIAL_FORMS": "0",
    }
    return data | changes


def test_a_job_title_changed_in_the_admin_is_rescored_by_the_worker(client, admin_ada, celery_worker):
    grace = Contact.objects.create(email="grace@example.com", first_name="Grace", job_title="Analyst")
    client.force_login(admin_ada)

    response = client.post(f"/admin/crm/contact/{grace.pk}/change/", change_form(grace, job_title="VP of Growth"))

    assert response.status_code == 302, response.content.decode()[:2000]
    rescored = wait_for(lambda: Contact.objects.scored().filter(pk=grace.pk, fit_score=15).first())
    assert rescored.grade == "B"


def test_a_company_size_changed_in_the_admin_marks_its_contacts_stale(client, admin_ada):
    acme = Company.objects.create(name="Acme", size=10)
    grace = Contact.objects.create(email="grace@acme.example", company=acme)
    client.force_login(admin_ada)
    before = timezone.now()

    response = client.post(f"/admin/crm/company/{acme.pk}/change/", {"name": "Acme", "domain": "", "size": "500"})

    assert response.status_code == 302, response.content.decode()[:2000]
    grace = Contact.objects.scored().get(pk=grace.pk)
    # Marked stale, unless the suite's worker has already rescored it (which clears the mark): seen once in CI.
    assert grace.activity.stale_since is not None or (grace.scored_at is not None and grace.scored_at >= before)
