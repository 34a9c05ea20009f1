from __future__ import annotations

import json

from crm.models import Contact
from leads.models import Event, Visitor


def anonymous_view(i, visitor="v-1", **properties):
    return {"id": f"pv-{i}", "type": "page_view", "visitor_id": visitor, "properties": properties}


def identify(client, key, body):
    return client.post(
        "/api/v1/identify", data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )


def test_anonymous_events_are_stored_without_a_contact(send):
    send({"events": [anonymous_view(1), anonymous_view(2)]})

    assert Event.objects.filter(contact=None, visitor_id="v-1").count() == 2
    assert not Contact.objects.exists()


def test_identify_attaches_the_visitors_earlier_events(client, send, ingest_key):
    send({"events": [anonymous_view(1), anonymous_view(2), anonymous_view(3, visitor="someone-else")]})

    response = identify(
        client, ingest_key, {"visitor_id": "v-1", "email": "Ada@Example.com", "contact": {"first_name": "Ada"}}
    )

    assert response.status_code == 200
    ada = Contact.objects.scored().get()
    assert response.json() == {"contact_id": ada.pk, "events_attached": 2}
    assert ada.first_name == "Ada"
    assert ada.activity.stale_since is not None
    assert Event.objects.filter(contact=None).count() == 1


def test_identify_twice_attaches_nothing_more(client, send, ingest_key):
    send(anonymous_view(1))
    identify(client, ingest_key, {"visitor_id": "v-1", "email": "ada@example.com"})

    response = identify(client, ingest_key, {"visitor_id": "v-1", "email": "ada@example.com"})

    assert response.json()["events_attached"] == 0


def test_events_of_a_known_visitor_join_its_contact_at_once(client, send, ingest_key):
    identify(client, ingest_key, {"visitor_id": "v-1", "email": "ada@example.com"})

    send(anonymous_view(1))

    assert Event.objects.get().contact.email == "ada@example.com"


def test_a_form_submit_with_a_visitor_id_attaches_its_earlier_events(send):
    send(anonymous_view(1, utm_source="webinar-partner"))

    send(
        {
            "id": "f1",
            "type": "form_submit",
            "email": "ada@example.com",
            "visitor_id": "v-1",
            "properties": {"form": "ebook"},
        }
    )

    ada = Contact.objects.scored().get()
    assert ada.events.count() == 2
    assert ada.channel == "webinar-partner"  # the first touch was the anonymous visit
    assert Visitor.objects.get().contact == ada


def test_identify_validates_its_body(client, ingest_key):
    response = identify(client, ingest_key, {"visitor_id": "v-1", "email": "nope"})

    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "email"
    assert not Contact.objects.exists()


def test_identify_needs_an_ingest_key(client, read_key):
    assert identify(client, read_key, {"visitor_id": "v-1", "email": "ada@example.com"}).status_code == 403
