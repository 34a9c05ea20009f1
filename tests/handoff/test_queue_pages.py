from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.models import Stage
from handoff import services
from handoff.models import QueueEntry, SlaBreach
from handoff.tasks import enforce_sla
from tests.conftest import wait_for
from tests.handoff.conftest import sql_entry
from tests.scores import make_contact

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.parametrize(
    ("persona", "page", "claim"),
    [("rep_sam", 200, 200), ("admin_ada", 200, 200), ("marketer_mia", 200, 403), ("roleless_nick", 403, 403)],
)
def test_who_may_see_the_queue_and_who_may_claim(client, request, entry, persona, page, claim):
    client.force_login(request.getfixturevalue(persona))

    assert client.get("/queue/").status_code == page
    assert client.post(f"/queue/{entry.pk}/claim", **HTMX).status_code == claim


def test_anonymous_visitors_are_sent_to_log_in(client, entry):
    assert client.get("/queue/").status_code == 302
    assert client.post(f"/queue/{entry.pk}/claim").status_code == 302
    assert QueueEntry.objects.get(pk=entry.pk).owner is None


def test_marketing_sees_the_queue_without_claim_buttons(client, marketer_mia, entry):
    client.force_login(marketer_mia)

    page = client.get("/queue/").content.decode()

    assert "Ada" in page
    assert "Claim</button>" not in page
    assert "My leads" not in page


def test_a_claim_over_htmx_answers_with_what_changed_not_the_board(client, rep_sam, entry):
    others = [sql_entry() for _ in range(3)]
    client.force_login(rep_sam)

    response = client.post(f"/queue/{entry.pk}/claim", **HTMX)

    assert response["HX-Trigger"] == "queue-changed"
    html = response.content.decode()
    assert f'id="mine-{entry.pk}"' in html and 'id="mine" hx-swap-oob="true"' in html  # "My leads", swapped in
    assert f'<tr id="entry-{entry.pk}" hx-swap-oob="delete">' in html  # the row leaves the waiting list
    assert '<span id="waiting-count" hx-swap-oob="true">3</span>' in html
    assert not any(f"entry-{e.pk}" in html for e in others)  # not the waiting list again
    assert "<html" not in html  # a fragment, not the page


def test_a_lost_race_answers_with_who_has_it(client, rep_sam, rep_ria, entry):
    client.force_login(rep_sam)
    client.post(f"/queue/{entry.pk}/claim", **HTMX)
    client.force_login(rep_ria)

    html = client.post(f"/queue/{entry.pk}/claim", **HTMX).content.decode()

    assert "Already claimed by Sam Seller" in html
    assert QueueEntry.objects.get(pk=entry.pk).owner == rep_sam


def test_without_htmx_an_action_redirects_with_a_message(client, rep_sam, entry):
    client.force_login(rep_sam)

    response = client.post(f"/queue/{entry.pk}/claim", follow=True)

    assert response.redirect_chain == [("/queue/", 302)]
    assert "Claimed." in response.content.decode()


def test_an_unknown_action_is_404(client, rep_sam, entry):
    client.force_login(rep_sam)

    assert client.post(f"/queue/{entry.pk}/explode").status_code == 404


def test_a_get_cannot_claim(client, rep_sam, entry):
    client.force_login(rep_sam)

    assert client.get(f"/queue/{entry.pk}/claim").status_code == 405


def test_the_badge_counts_unclaimed_sqls(client, rep_sam, db):
    sql_entry(), sql_entry()
    client.force_login(rep_sam)

    assert ">2</span>" in client.get("/queue/?part=badge", **HTMX).content.decode()


def test_past_99_the_badge_says_99_plus_and_counts_no_further(client, rep_sam, db):
    """Every page of a rep shows the badge: with thousands waiting it reads 100 entries, not all of them; the
    queue page, which counts them all for its own list, still says how many."""
    leads = [make_contact(email=f"many{i}@example.com", stage=Stage.SQL, score=80).pk for i in range(101)]
    services.enqueue(contact_ids=leads, sent_by="scoring v1", sla=services.Sla(60, 120), requested={})
    client.force_login(rep_sam)

    with CaptureQueriesContext(connection) as queries:
        badge = client.get("/queue/?part=badge", **HTMX).content.decode()
    assert ">99+</span>" in badge
    assert sum("LIMIT 100" in q["sql"] for q in queries.captured_queries) == 1  # once, though rendered twice
    assert ">99+</span>" in client.get("/reports/").content.decode().split('id="queue-badge"')[1][:400]
    page = client.get("/queue/").content.decode()
    assert '<span id="waiting-count">101</span>' in page and ">99+</span>" in page.split('id="queue-badge"')[1][:400]


def test_the_queue_page_runs_a_fixed_number_of_queries(client, rep_sam, db):
    client.force_login(rep_sam)
    sql_entry()
    client.get("/queue/")
    with CaptureQueriesContext(connection) as few:
        client.get("/queue/")
    for _ in range(15):
        sql_entry()

    with CaptureQueriesContext(connection) as many:
        client.get("/queue/")

    assert len(many) == len(few)


def test_the_lead_page_shows_a_rejection_reason_to_marketing(client, rep_sam, marketer_mia, entry):
    client.force_login(rep_sam)
    client.post(f"/queue/{entry.pk}/claim", **HTMX)
    client.post(f"/queue/{entry.pk}/reject", {"reason": "not_decision_maker", "text": "Talk to her CTO"}, **HTMX)
    client.force_login(marketer_mia)

    page = client.get(f"/leads/{entry.contact_id}/").content.decode()

    assert "Rejected by sales: Not a decision maker — Talk to her CTO" in page


@pytest.mark.django_db(transaction=True)
def test_the_sla_task_runs_through_the_worker_and_the_breach_is_emailed(celery_worker, rep_sam, marketer_mia):
    entry = sql_entry(first_name="Unclaimed")
    QueueEntry.objects.filter(pk=entry.pk).update(unclaimed_due_at=timezone.now() - timedelta(minutes=1))

    enforce_sla.delay()

    wait_for(lambda: SlaBreach.objects.filter(entry_id=entry.pk).exists())

    def breach_email():
        files = celery_worker.mail_dir.glob("*.log") if celery_worker.mail_dir.exists() else []
        return any("SLA missed: Unclaimed" in f.read_text() and "mia@baton.test" in f.read_text() for f in files)

    wait_for(breach_email)


def test_the_queue_page_counts_the_waiting_entries_once_for_the_badge_and_the_list(client, rep_sam, db):
    sql_entry(), sql_entry()
    client.force_login(rep_sam)
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/queue/").content.decode()
    counts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT COUNT(*)")]
    assert len(counts) == 1
    assert '<span id="waiting-count">2</span>' in page and ">2</span>" in page.split('id="queue-badge"')[1][:400]


def test_a_lost_claim_answers_without_my_leads_which_did_not_change(client, rep_sam, rep_ria, entry):
    client.force_login(rep_sam)
    client.post(f"/queue/{entry.pk}/claim", **HTMX)
    client.force_login(rep_ria)
    with CaptureQueriesContext(connection) as queries:
        html = client.post(f"/queue/{entry.pk}/claim", **HTMX).content.decode()
    assert "Already claimed by Sam Seller" in html and 'id="mine"' not in html
    assert f'<tr id="entry-{entry.pk}" hx-swap-oob="delete">' in html
    assert len(queries) <= 6  # session, user, roles, the entry, the count (+ a savepoint at most)


def test_a_rejection_with_a_nul_byte_is_refused_not_a_crash(client, rep_sam, entry):
    client.force_login(rep_sam)
    client.post(f"/queue/{entry.pk}/claim", **HTMX)
    html = client.post(f"/queue/{entry.pk}/reject", {"reason": "other", "text": "a\x00b"}, **HTMX).content.decode()
    assert "Null characters are not allowed" in html
    assert QueueEntry.objects.get(pk=entry.pk).status == "claimed"
