"""The criteria page's preview runs in a worker, pass by pass with progress, and stays with the draft until it
changes; what it shows is what the preview computes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import Contact
from scoring import criteria, previews, services
from scoring.models import PreviewRun
from tests.conftest import wait_for
from tests.scores import make_contact


def _form(client) -> dict:
    from tests.scoring.test_criteria_pages import form_data

    return form_data(client)


@pytest.mark.django_db(transaction=True)
def test_a_preview_asked_on_the_page_is_computed_by_the_worker_and_shown(client, admin_ada, celery_worker):
    make_contact(email="grace@example.com", first_name="Grace", stage="mql", score=45)
    client.force_login(admin_ada)

    asked = client.post("/criteria/", _form(client) | {"mql_threshold": "60", "action": "preview"})

    assert "Previewing" in asked.content.decode() and 'hx-get="/criteria/?part=preview"' in asked.content.decode()
    run = wait_for(lambda: PreviewRun.objects.filter(finished_at__isnull=False).first())
    assert (run.done, run.total, run.percent) == (1, 1, 100)
    shown = client.get("/criteria/", {"part": "preview"}, headers={"HX-Request": "true"}).content.decode()
    assert "Grace</a>: mql → lead" in shown and 'data-moves="1 from mql to lead"' in shown


def test_the_preview_reports_progress_after_each_pass_and_keeps_what_it_computed(db, monkeypatch):
    for i in range(30):
        make_contact(email=f"p{i}@example.com", stage="mql", score=40 + i)
    monkeypatch.setattr(services, "CHUNK", 5)  # six passes of five contacts
    draft = criteria.draft()
    draft.mql_threshold = 55
    draft.save()
    seen = []

    direct = criteria.preview(draft, progress=lambda done, total: seen.append((done, total)))

    assert seen == [(5 * k, 30) for k in range(1, 7)]
    run = previews.start(version=draft)
    previews.run(preview_id=run.pk)
    kept = previews.outcome(PreviewRun.objects.get(pk=run.pk))
    assert kept == direct
    assert kept.moves == {("mql", "lead"): 30}  # scored from their events (none), every one falls back to lead
    assert kept.today_stages == {"mql": 30}


def test_saving_the_draft_forgets_its_preview_and_a_lost_one_says_so(client, admin_ada):
    client.force_login(admin_ada)
    draft = criteria.draft()
    old = previews.start(version=draft)
    client.post("/criteria/", _form(client) | {"action": "save"})
    assert not PreviewRun.objects.filter(pk=old.pk).exists()

    lost = previews.start(version=draft)
    PreviewRun.objects.filter(pk=lost.pk).update(started_at=timezone.now() - timedelta(minutes=3))
    page = client.get("/criteria/").content.decode()
    assert "This preview stopped before the end" in page and "hx-trigger" not in page.split('id="preview"')[1][:400]
    assert Contact.objects.count() == 0
