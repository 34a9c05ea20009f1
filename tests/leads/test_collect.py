from __future__ import annotations

import json

from leads.models import Event
from tests.leads.conftest import SITE


def collect(client, key, body, origin=SITE, content_type="text/plain"):
    headers = {"HTTP_ORIGIN": origin} if origin else {}
    return client.post(f"/api/v1/collect?key={key}", data=json.dumps(body), content_type=content_type, **headers)


def view(i=1):
    return {"id": f"pv-{i}", "type": "page_view", "visitor_id": "v-1", "properties": {"path": "/"}}


def test_the_snippet_sends_text_plain_from_an_allowed_origin(client, site_key):
    response = collect(client, site_key, {"events": [view(1), view(2)]})

    assert response.status_code == 202
    assert response.json() == {"accepted": 2, "duplicates": 0}
    assert response["Access-Control-Allow-Origin"] == SITE


def test_a_page_on_a_foreign_origin_is_refused(client, site_key):
    response = collect(client, site_key, view(), origin="https://evil.example")

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "Access-Control-Allow-Origin" not in response
    assert not Event.objects.exists()


def test_the_referer_stands_in_for_a_missing_origin(client, site_key):
    response = client.post(
        f"/api/v1/collect?key={site_key}",
        data=json.dumps(view()),
        content_type="text/plain",
        HTTP_REFERER=f"{SITE}/pricing?x=1",
    )

    assert response.status_code == 202


def test_a_request_from_no_page_at_all_is_refused(client, site_key):
    assert collect(client, site_key, view(), origin=None).status_code == 403


def test_a_site_key_may_only_send_page_views_identify_and_form_submits(client, site_key):
    response = collect(client, site_key, {"events": [view(), {"id": "x", "type": "email_open", "visitor_id": "v"}]})

    assert response.status_code == 403
    assert not Event.objects.exists()


def test_identify_through_collect_joins_the_visitor_to_a_contact(client, site_key):
    collect(client, site_key, view(1))

    collect(client, site_key, {"id": "i1", "type": "identify", "visitor_id": "v-1", "email": "ada@example.com"})

    assert Event.objects.filter(contact__email="ada@example.com").count() == 2


def test_a_secret_key_in_a_web_page_is_refused(client, ingest_key):
    assert collect(client, ingest_key, view()).status_code == 403


def test_an_unknown_site_key_is_unauthorized(client, db):
    assert collect(client, "pk_unknown", view()).status_code == 401


def test_the_preflight_allows_the_origin(client, site_key):
    response = client.options(f"/api/v1/collect?key={site_key}", HTTP_ORIGIN=SITE)

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == SITE
