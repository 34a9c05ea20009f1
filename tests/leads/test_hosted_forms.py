from __future__ import annotations

from crm.models import Contact
from leads.models import Event, Form
from tests.leads.conftest import SITE


def submit(client, key, slug="demo", origin=SITE, **fields):
    data = {"_key": key, **fields}
    return client.post(f"/f/{slug}", data, HTTP_ORIGIN=origin, **fields.pop("headers", {}))


def test_a_submission_stores_a_form_submit_and_redirects_to_the_thanks_page(client, site_key):
    response = submit(client, site_key, email="Ada@Example.com", first_name="Ada", company="Analytical Engines")

    assert response.status_code == 303
    assert response["Location"] == "/f/demo/thanks"
    event = Event.objects.get()
    assert (event.type, event.properties["form"], event.contact.email) == ("form_submit", "demo", "ada@example.com")
    assert Contact.objects.scored().get().first_name == "Ada"
    assert client.get(response["Location"]).status_code == 200


def test_the_forms_thank_you_url_wins_over_the_default(client, site_key):
    Form.objects.filter(slug="demo").update(thank_you_url="https://www.example.com/thanks")

    assert submit(client, site_key, email="ada@example.com")["Location"] == "https://www.example.com/thanks"


def test_a_redirect_on_an_allowed_origin_is_followed(client, site_key):
    response = submit(client, site_key, email="ada@example.com", _redirect=f"{SITE}/welcome")

    assert response["Location"] == f"{SITE}/welcome"


def test_a_redirect_off_the_allowed_origins_is_refused(client, site_key):
    response = submit(client, site_key, email="ada@example.com", _redirect="https://evil.example/phish")

    assert response.status_code == 400
    assert b"_redirect" in response.content
    assert not Event.objects.exists()


def test_a_missing_email_is_named_on_a_plain_page(client, site_key):
    response = submit(client, site_key, first_name="Ada")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert b"email" in response.content
    assert not Contact.objects.exists()


def test_errors_are_json_when_the_client_asks_for_json(client, site_key):
    response = client.post(
        "/f/demo", {"_key": site_key, "email": "nope"}, HTTP_ORIGIN=SITE, HTTP_ACCEPT="application/json"
    )

    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "email"


def test_a_non_numeric_company_size_is_named(client, site_key):
    response = submit(client, site_key, email="ada@example.com", company_size="lots")

    assert response.status_code == 400
    assert b"company_size" in response.content.replace(b"Company size", b"company_size")


def test_the_same_submission_twice_counts_once(client, site_key):
    submit(client, site_key, email="ada@example.com", _submission="s-1")
    submit(client, site_key, email="ada@example.com", _submission="s-1")

    assert Event.objects.count() == 1


def test_the_visitor_field_attaches_earlier_anonymous_events(client, site_key, send):
    send({"id": "pv", "type": "page_view", "visitor_id": "v-9"})

    submit(client, site_key, email="ada@example.com", _visitor="v-9")

    assert Contact.objects.scored().get().events.count() == 2


def test_a_foreign_origin_is_refused(client, site_key):
    assert submit(client, site_key, origin="https://evil.example", email="ada@example.com").status_code == 403


def test_an_unknown_site_key_is_refused(client, db):
    assert submit(client, "pk_nope", email="ada@example.com").status_code == 401


def test_a_get_with_a_site_key_is_a_hosted_form_page_whose_post_is_accepted_from_our_own_origin(client, site_key):
    import re

    page = client.get(f"/f/demo?key={site_key}")
    assert page.status_code == 200 and 'action="/f/demo"' in page.content.decode()
    submission = re.search(r'name="_submission" value="([^"]+)"', page.content.decode()).group(1)

    own = submit(client, site_key, origin="http://testserver", email="ada@example.com", _submission=submission)
    again = submit(client, site_key, origin="http://testserver", email="ada@example.com", _submission=submission)

    assert (own.status_code, again.status_code) == (303, 303) and Event.objects.count() == 1  # counted once
    assert submit(client, site_key, origin="https://evil.example", email="bob@example.com").status_code == 403


def test_a_hosted_form_page_needs_a_site_key_and_a_known_form(client, site_key, ingest_key):
    assert client.get("/f/demo").status_code == 401
    assert client.get("/f/demo?key=pk_nope").status_code == 401
    assert client.get(f"/f/demo?key={ingest_key}").status_code == 403
    assert client.get(f"/f/no-such-form?key={site_key}").status_code == 404
    assert client.delete("/f/demo").status_code == 405
