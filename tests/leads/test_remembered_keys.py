"""A process remembers the ingest keys it has found valid; ingest's statement checks a remembered key again as it
stores, so that an event costs one statement, and a key revoked (or a source changed) is seen at once."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.models import Company, Contact
from leads import ingest, ratelimit
from leads.models import ApiKey, Event, Form, Visitor
from leads.schemas import EventIn


def page_view(i, email="ada@example.com"):
    return {"id": f"pv-{i}", "type": "page_view", "email": email, "properties": {"path": "/"}}


def test_an_event_with_a_remembered_key_is_one_statement(send):
    assert send(page_view(1)).status_code == 202  # looks the key up, and remembers it

    with CaptureQueriesContext(connection) as queries:
        assert send(page_view(2)).status_code == 202

    assert len(queries) == 1, [q["sql"][:80] for q in queries]
    assert Event.objects.count() == 2


def test_a_key_revoked_after_its_process_remembered_it_stores_nothing_more(send, ingest_key):
    assert send(page_view(1)).status_code == 202
    ApiKey.objects.get(hashed=ApiKey.hash(ingest_key)).revoke()

    response = send(page_view(2, email="new@example.com"))

    assert response.status_code == 401 and "revoked" in response.json()["message"]
    assert list(Event.objects.values_list("client_id", flat=True)) == ["pv-1"]
    assert not Contact.objects.filter(email="new@example.com").exists()


def test_a_revoked_key_with_a_bad_body_is_told_about_the_key_first(send, ingest_key):
    assert send(page_view(1)).status_code == 202
    ApiKey.objects.get(hashed=ApiKey.hash(ingest_key)).revoke()

    assert send({"id": "x"}).status_code == 401  # not the 400 the body has


def test_a_source_renamed_since_is_the_first_touch_of_new_contacts(send, website):
    assert send(page_view(1)).status_code == 202
    website.name = "homepage"
    website.save()

    assert send(page_view(2, email="new@example.com")).status_code == 202

    assert Contact.objects.get(email="new@example.com").channel == "homepage"


@pytest.mark.parametrize("change", ["revoked", "renamed", "new rate"])
def test_a_statement_with_a_stale_key_writes_nothing_at_all(website, change):
    key = ApiKey.issue(source=website, scope=ApiKey.Scope.INGEST)[0]
    remembered = ApiKey.objects.select_related("source").get(pk=key.pk)
    if change == "revoked":
        key.revoke()
    else:
        setattr(website, *(("name", "other") if change == "renamed" else ("rate_limit", 5)))
        website.save()
    events = [
        EventIn.model_validate(event)
        for event in (
            {
                "id": "1",
                "type": "form_submit",
                "email": "ada@example.com",
                "visitor_id": "v-1",
                "properties": {"form": "new-form", "company": "Acme"},
            },
            {"id": "2", "type": "email_unsubscribe", "email": "bob@example.com"},
            {"id": "3", "type": "page_view", "visitor_id": "v-2"},
        )
    ]

    with pytest.raises(ingest.StaleKey):
        ingest.record(source=remembered.source, events=events, received_at=timezone.now(), key=remembered, limit=False)

    assert not Event.objects.exists()
    assert not Contact.objects.exists()
    assert not Form.objects.filter(slug="new-form").exists()
    assert not Visitor.objects.exists()
    assert not Company.objects.exists()


def test_a_read_key_is_looked_up_on_every_request(client, read_key):
    """Only ingest checks a remembered key as it stores: every other endpoint looks its key up."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {read_key}"}
    assert client.get("/api/v1/contacts", **headers).status_code == 200
    ApiKey.objects.get(hashed=ApiKey.hash(read_key)).revoke()

    assert client.get("/api/v1/contacts", **headers).status_code == 401


def test_a_key_of_another_scope_revoked_after_use_is_unauthorized_for_ingest(client, send, read_key):
    assert client.get("/api/v1/contacts", HTTP_AUTHORIZATION=f"Bearer {read_key}").status_code == 200
    ApiKey.objects.get(hashed=ApiKey.hash(read_key)).revoke()

    assert send(page_view(1), key=read_key).status_code == 401  # not the 403 its scope would have had


@pytest.mark.parametrize(
    "path, body",
    [("/api/v1/events", page_view(2)), ("/api/v1/identify", {"visitor_id": "v-1", "email": "ada@example.com"})],
)
def test_a_request_whose_remembered_key_went_stale_takes_its_tokens_once(send, website, monkeypatch, path, body):
    """The store with the stale key took the request's tokens and stored nothing; the store after the key's lookup
    takes none again from the same source."""
    monkeypatch.setattr(ratelimit, "LEASE_SECONDS", 60.0)  # this process's lease of tokens outlives the test
    assert send(page_view(1)).status_code == 202  # the key remembered, a lease of the source's tokens taken
    website.name = "homepage"
    website.save()  # the remembered key is stale now
    lease = ratelimit._leases[(website.pk, website.rate_limit)]
    before = lease.tokens

    assert send(body, path=path).status_code in (200, 202)

    assert lease.tokens == before - 1


def test_a_rate_lowered_since_the_key_was_remembered_counts_the_request_under_the_new_rate(send, website):
    website.rate_limit = 1_000_000
    website.save()
    assert send(page_view(1)).status_code == 202  # remembered, with a lease of 20,000 tokens at that rate
    website.rate_limit = 1  # bursts of 1,000 events, then one a second
    website.save()
    batch = [page_view(i) for i in range(2, 1002)]

    assert send({"events": batch[:500]}).status_code == 202  # the old lease took it, then the new rate
    assert send({"events": batch[500:]}).status_code == 202
    assert send(page_view(1003)).status_code == 429  # the new rate's burst is spent
