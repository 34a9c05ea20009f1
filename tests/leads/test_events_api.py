from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import ProtectedError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.models import Company, Contact
from leads.models import ApiKey, Event, Form, Source


def page_view(i=1, **extra):
    return {"id": f"pv-{i}", "type": "page_view", "email": "ada@example.com", "properties": {"path": "/"}, **extra}


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code
    assert body["message"]
    assert isinstance(body["details"], list)
    return body


def test_one_event_is_stored_and_counted(send):
    response = send(page_view())

    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}
    event = Event.objects.get()
    assert (event.type, event.client_id, event.contact.email) == ("page_view", "pv-1", "ada@example.com")


def test_a_batch_is_stored_and_emails_are_lower_cased(send):
    response = send({"events": [page_view(1, email="Ada@Example.COM"), page_view(2, email="alan@example.com")]})

    assert response.json() == {"accepted": 2, "duplicates": 0}
    assert set(Contact.objects.values_list("email", flat=True)) == {"ada@example.com", "alan@example.com"}


def test_a_repeated_id_is_stored_once_across_requests(send):
    send(page_view(1))

    response = send({"events": [page_view(1), page_view(2)]})

    assert response.json() == {"accepted": 1, "duplicates": 1}
    assert Event.objects.count() == 2


def test_a_repeated_id_inside_one_request_counts_once(send):
    response = send({"events": [page_view(1), page_view(1), page_view(1)]})

    assert response.json() == {"accepted": 1, "duplicates": 2}
    assert Event.objects.count() == 1


def test_the_same_id_from_another_source_is_another_event(send, website):
    other = Source.objects.create(name="mailer")
    send(page_view(1))

    response = send(page_view(1), key=ApiKey.issue(source=other, scope="ingest")[1])

    assert response.json() == {"accepted": 1, "duplicates": 0}


def test_occurred_at_defaults_to_receipt_and_keeps_the_offset_given(send):
    before = timezone.now()
    send({"events": [page_view(1), page_view(2, occurred_at="2026-11-20T10:31:00+02:00")]})

    first, second = Event.objects.order_by("client_id")
    assert before <= first.occurred_at <= timezone.now()
    assert second.occurred_at.isoformat() == "2026-11-20T08:31:00+00:00"


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "page_view", "email": "a@example.com"}, "id"),
        ({"id": "", "type": "page_view", "email": "a@example.com"}, "id"),
        ({"id": "x" * 129, "type": "page_view", "email": "a@example.com"}, "id"),
        ({"id": 7, "type": "page_view", "email": "a@example.com"}, "id"),
        ({"id": "1", "type": "Page View", "email": "a@example.com"}, "type"),
        ({"id": "1", "type": "page_view", "email": "not-an-email"}, "email"),
        ({"id": "1", "type": "page_view"}, "email"),
        ({"id": "1", "type": "page_view", "visitor_id": "v" * 65}, "visitor_id"),
        (
            {"id": "1", "type": "page_view", "email": "a@example.com", "occurred_at": "2026-11-20T10:31:00"},
            "occurred_at",
        ),
        ({"id": "1", "type": "page_view", "email": "a@example.com", "occurred_at": "yesterday"}, "occurred_at"),
        (
            {"id": "1", "type": "page_view", "email": "a@example.com", "occurred_at": "2026-01-25T22:56:15-23:13"},
            "occurred_at",
        ),
        (
            {"id": "1", "type": "page_view", "email": "a@example.com", "occurred_at": "0413-01-25T22:56:15Z"},
            "occurred_at",
        ),
        # the ends of the calendar, where converting to UTC leaves it
        (
            {"id": "1", "type": "page_view", "email": "a@example.com", "occurred_at": "0001-01-01T00:00:03+01:00"},
            "occurred_at",
        ),
        (
            {"id": "1", "type": "page_view", "email": "a@example.com", "occurred_at": "9999-12-31T23:59:59-01:00"},
            "occurred_at",
        ),
        ({"id": "1", "type": "page_view", "email": "a@example.com", "properties": []}, "properties"),
        ({"id": "1", "type": "form_submit", "email": "a@example.com", "properties": {}}, "properties.form"),
        (
            {"id": "1", "type": "page_view", "email": "a@example.com", "contact": {"company_size": "big"}},
            "contact.company_size",
        ),
        (
            {"id": "1", "type": "page_view", "email": "a@example.com", "contact": {"favourite": "x"}},
            "contact.favourite",
        ),
        ({"id": "1", "type": "page_view", "email": "a@example.com", "emial": "typo@example.com"}, "emial"),
        ({"id": "1\x00", "type": "page_view", "email": "a@example.com"}, "id"),
        ({"id": "1", "type": "score_adjustment", "email": "a@example.com", "properties": {"points": 99}}, "type"),
        ({"id": "1", "type": "page_view", "email": "a@example.com", "properties": {"t": "a\x00b"}}, "properties"),
    ],
)
def test_an_invalid_event_is_refused_with_its_index_and_field(send, event, field):
    response = send({"events": [page_view(1), event]})

    body = assert_error(response, 400, "invalid")
    assert {"index": 1, "field": field} in [{"index": d["index"], "field": d["field"]} for d in body["details"]]
    assert not Event.objects.exists()
    assert not Contact.objects.exists()


def test_timestamps_at_most_five_minutes_ahead_are_accepted(send):
    soon = (timezone.now() + timedelta(minutes=4)).isoformat()
    later = (timezone.now() + timedelta(minutes=6)).isoformat()

    assert send(page_view(1, occurred_at=soon)).status_code == 202
    body = assert_error(send(page_view(2, occurred_at=later)), 400, "invalid")
    assert "future" in body["details"][0]["message"]


def test_one_invalid_event_at_the_end_of_a_big_batch_stores_nothing(send):
    events = [page_view(i) for i in range(999)] + [{"id": "bad", "type": "page_view"}]

    assert_error(send({"events": events}), 400, "invalid")
    assert not Event.objects.exists()


def test_unknown_fields_beside_events_are_refused(send):
    assert_error(send({"events": [page_view()], "extra": 1}), 400, "invalid")


def test_an_empty_batch_is_refused(send):
    assert_error(send({"events": []}), 400, "invalid")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'"a string"',
        '{"id": "\xff"}'.encode("latin-1"),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"id": "1", "type": "page_view", "email": "a@example.com", "properties": {"n": NaN}}',
        b'{"id": "1", "type": "page_view", "email": "a@example.com", "properties": {"n": 1e999}}',
        b'{"id": "1", "type": "page_view", "email": "a@example.com", "properties": {"n": ' + b"9" * 5000 + b"}}",
    ],
    ids=["broken", "array", "string", "latin-1", "deep", "nan", "huge-float", "huge-int"],
)
def test_a_body_that_is_not_a_json_object_is_malformed(send, body):
    assert_error(send(body), 400, "malformed")
    assert not Event.objects.exists()


def test_deep_but_parseable_properties_are_invalid(send):
    nested = {}
    for _ in range(40):
        nested = {"a": nested}

    body = assert_error(send(page_view(properties=nested)), 400, "invalid")
    assert body["details"][0]["field"] == "properties"


def test_big_integers_that_jsonb_stores_are_kept(send):
    assert send(page_view(properties={"n": 10**30})).status_code == 202
    assert Event.objects.get().properties["n"] == 10**30


def test_a_missing_key_is_unauthorized(send):
    assert_error(send(page_view(), key=None), 401, "unauthorized")


def test_an_unknown_key_is_unauthorized(send):
    assert_error(send(page_view(), key="bk_nope"), 401, "unauthorized")


def test_a_revoked_key_is_unauthorized(send, ingest_key):
    ApiKey.objects.get(hashed=ApiKey.hash(ingest_key)).revoke()

    body = assert_error(send(page_view()), 401, "unauthorized")
    assert "revoked" in body["message"]


def test_a_read_key_cannot_write_events(send, read_key):
    assert_error(send(page_view(), key=read_key), 403, "forbidden")


def test_a_site_key_cannot_use_the_events_endpoint(send, site_key):
    assert_error(send(page_view(), key=site_key), 403, "forbidden")


def test_keys_are_stored_only_as_hashes(ingest_key):
    key = ApiKey.objects.get()
    assert ingest_key not in (key.hashed, key.prefix)
    assert key.hashed == ApiKey.hash(ingest_key)


def test_another_media_type_is_refused(send):
    assert_error(send("id=1", content_type="application/x-www-form-urlencoded"), 415, "unsupported_media_type")


def test_a_body_of_exactly_one_mebibyte_is_read_and_one_byte_more_is_too_large(send):
    event = page_view(properties={"pad": ""})
    pad = 1024 * 1024 - len(json.dumps(event))
    event["properties"]["pad"] = "x" * pad
    body = json.dumps(event).encode()
    assert len(body) == 1024 * 1024

    # At the limit the body is read (and refused only for its too-large properties); over it, it is not read.
    assert_error(send(body), 413, "too_large")
    assert "properties" in send(body).json()["message"]
    over = assert_error(send(body + b" "), 413, "too_large")
    assert "1 MiB" in over["message"]


def test_a_thousand_events_are_accepted_and_one_more_is_too_large(send):
    assert send({"events": [page_view(i) for i in range(1000)]}).json()["accepted"] == 1000

    assert_error(send({"events": [page_view(i) for i in range(1001)]}), 413, "too_large")


def test_properties_of_sixteen_kibibytes_are_accepted_and_more_are_too_large(send):
    at_limit = {"p": "x" * (16 * 1024 - len('{"p":""}'))}
    over = {"p": at_limit["p"] + "x"}

    assert send(page_view(1, properties=at_limit)).status_code == 202
    assert_error(send(page_view(2, properties=over)), 413, "too_large")
    assert Event.objects.count() == 1


def test_a_source_over_its_rate_is_told_when_to_come_back(send, website):
    website.rate_limit = 1  # bursts of 1,000 events, then one per second
    website.save()

    assert send({"events": [page_view(i) for i in range(1000)]}).status_code == 202
    response = send(page_view(1001))

    assert_error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1
    assert Event.objects.count() == 1000


def test_once_refused_a_source_is_refused_without_storing_first_until_its_wait_is_over(send, website):
    website.rate_limit = 1
    website.save()
    assert send({"events": [page_view(i) for i in range(1000)]}).status_code == 202
    assert send(page_view(1001)).status_code == 429  # stored, then rolled back: the bucket was short

    with CaptureQueriesContext(connection) as queries:
        response = send(page_view(1002))
    assert_error(response, 429, "rate_limited")
    assert not [q for q in queries if "leads_event" in q["sql"]]  # refused before storing

    website.rate_limit = 1_000_000  # a new rate starts afresh: its bucket refills at once
    website.save()
    assert send(page_view(1003)).status_code == 202
    assert Event.objects.count() == 1001


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_database_answers_503_and_stores_nothing(send, monkeypatch):
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
    monkeypatch.setitem(connection.settings_dict, "PORT", "1")
    try:
        response = send(page_view())
    finally:
        connection.close()
        monkeypatch.undo()

    assert_error(response, 503, "unavailable")
    assert not Event.objects.exists()


def test_form_submits_fill_the_profile_and_create_the_company(send):
    send(
        {
            "id": "f1",
            "type": "form_submit",
            "email": "ada@example.com",
            "properties": {
                "form": "demo",
                "first_name": "Ada",
                "job_title": "Head of Data",
                "company": "Analytical Engines",
                "company_size": "250",
                "favourite_colour": "green",
            },
            "contact": {"last_name": "Lovelace", "budget": "50k+"},
        }
    )

    ada = Contact.objects.select_related("company").get()
    assert (ada.first_name, ada.last_name, ada.job_title, ada.budget) == ("Ada", "Lovelace", "Head of Data", "50k+")
    assert (ada.company.name, ada.company.size) == ("Analytical Engines", 250)
    assert ada.profile == {"favourite_colour": "green"}


def test_later_submissions_add_to_the_profile_without_erasing_it(send):
    send({"id": "1", "type": "page_view", "email": "ada@example.com", "contact": {"job_title": "CTO", "phone": "1"}})
    send({"id": "2", "type": "page_view", "email": "ada@example.com", "contact": {"job_title": "", "country": "UK"}})

    ada = Contact.objects.scored().get()
    assert (ada.job_title, ada.phone, ada.country) == ("CTO", "1", "UK")


def test_a_company_named_in_another_case_is_the_same_company(send):
    send({"id": "1", "type": "page_view", "email": "ada@example.com", "contact": {"company": "Acme"}})
    send(
        {
            "id": "2",
            "type": "page_view",
            "email": "alan@example.com",
            "contact": {"company": "ACME", "industry": "Retail"},
        }
    )

    assert Company.objects.count() == 1
    assert Company.objects.get().industry == "Retail"


def test_an_unknown_form_is_created_unclassified(send):
    send({"id": "1", "type": "form_submit", "email": "ada@example.com", "properties": {"form": "price-calculator"}})

    assert Form.objects.get(slug="price-calculator").kind == Form.Kind.OTHER


def test_unsubscribe_sets_the_opt_out_and_subscribe_clears_it(send):
    send({"id": "1", "type": "email_unsubscribe", "email": "ada@example.com"})
    assert Contact.objects.scored().get().email_opt_out

    send({"id": "2", "type": "email_subscribe", "email": "ada@example.com"})
    assert not Contact.objects.scored().get().email_opt_out


def test_new_activity_marks_the_contact_stale_and_moves_last_activity(send):
    send(page_view(1, occurred_at="2026-11-01T10:00:00Z"))
    send(page_view(2, occurred_at="2026-10-01T10:00:00Z"))

    activity = Contact.objects.scored().get().activity
    assert activity.stale_since is not None
    assert activity.last_event_at.isoformat() == "2026-11-01T10:00:00+00:00"


def test_a_request_naming_only_known_contacts_is_one_statement_that_inserts_no_contact(send):
    send(page_view(1))

    with CaptureQueriesContext(connection) as queries:
        response = send({"events": [page_view(2), page_view(3)]})

    assert response.json() == {"accepted": 2, "duplicates": 0}
    stores = [q["sql"] for q in queries if "INSERT INTO leads_event" in q["sql"]]
    assert len(stores) == 1
    assert "INSERT INTO crm_contact (" not in stores[0]


def test_a_batch_naming_known_and_new_contacts_stores_each_event_once_on_its_contact(send):
    send(page_view(1))

    response = send({"events": [page_view(2), page_view(3, email="alan@example.com")]})

    assert response.json() == {"accepted": 2, "duplicates": 0}
    stored = dict(Event.objects.filter(client_id__in=["pv-2", "pv-3"]).values_list("client_id", "contact__email"))
    assert stored == {"pv-2": "ada@example.com", "pv-3": "alan@example.com"}


def test_a_repeated_event_changes_nothing_but_the_stale_mark(send):
    send(page_view(1, occurred_at="2026-11-01T10:00:00Z", contact={"job_title": "CTO"}))
    before = Contact.objects.values().get()

    send(page_view(1, occurred_at="2026-11-01T10:00:00Z", contact={"job_title": "CTO"}))

    after = Contact.objects.values().get()
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


@pytest.mark.parametrize(
    ("properties", "channel"),
    [
        ({"utm_source": "Newsletter", "referrer": "https://google.com/"}, "newsletter"),
        ({"referrer": "https://www.google.com/search?q=baton", "url": "https://www.example.com/"}, "google.com"),
        ({"referrer": "https://www.example.com/blog", "url": "https://www.example.com/pricing"}, "website"),
        ({}, "website"),
    ],
)
def test_the_first_touch_channel_comes_from_utm_else_referrer_else_source(send, properties, channel):
    send(page_view(1, properties=properties))

    assert Contact.objects.scored().get().channel == channel


def test_the_first_touch_channel_does_not_change_later(send):
    send(page_view(1, properties={"utm_source": "linkedin"}))
    send(page_view(2, properties={"utm_source": "google"}))

    assert Contact.objects.scored().get().channel == "linkedin"


def test_a_deleted_contact_takes_its_events_with_it_and_a_source_with_events_is_kept(send, website):
    """The events have no database constraints (leads.models.Event): the ORM keeps them to their contact and source."""
    send({"events": [page_view(1), page_view(2, email="alan@example.com")]})

    Contact.objects.get(email="ada@example.com").delete()

    assert list(Event.objects.values_list("contact__email", flat=True)) == ["alan@example.com"]
    with pytest.raises(ProtectedError):
        website.delete()
    assert Event.objects.filter(source=website).count() == 1
