from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.lifecycle import Actor, move
from crm.models import Company, Contact, Stage
from scoring import services


def get(client, key, path, **params):
    return client.get(path, params, HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture
def ada(db):
    ada = Contact.objects.create(
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        job_title="Head of Data",
        company=Company.objects.create(name="Analytical Engines", size=80),
        channel="newsletter",
    )
    services.rescore(contact_ids=[ada.pk])
    move(contact_id=ada.pk, to=Stage.MQL, by=Actor.scoring(1), reason="Score 45 ≥ MQL threshold 40")
    return Contact.objects.scored().get(pk=ada.pk)


def test_a_contact_reads_as_the_api_promises(client, read_key, ada):
    body = get(client, read_key, f"/api/v1/contacts/{ada.pk}").json()

    assert set(body) == {
        "id",
        "email",
        "first_name",
        "last_name",
        "company",
        "job_title",
        "channel",
        "stage",
        "score",
        "fit_score",
        "engagement_score",
        "grade",
        "trend",
        "owner",
        "email_opt_out",
        "last_activity_at",
        "scored_at",
        "criteria_version",
        "breakdown",
        "stage_history",
    }
    assert (body["company"], body["stage"], body["score"], body["grade"]) == ("Analytical Engines", "mql", 25, "B")
    assert body["breakdown"] == [
        {"rule": "Senior job title", "kind": "fit", "events": None, "points": 15},
        {"rule": "Company of 50+", "kind": "fit", "events": None, "points": 10},
    ]
    assert body["stage_history"][0] | {"at": None} == {
        "from": "lead",
        "to": "mql",
        "at": None,
        "by": "scoring v1",
        "reason": "Score 45 ≥ MQL threshold 40",
        "score": 25,
    }
    assert body["scored_at"].endswith("Z")


def test_an_unknown_contact_is_404_in_the_error_shape(client, read_key):
    response = get(client, read_key, "/api/v1/contacts/999999999")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_bad_path_id_is_invalid(client, read_key):
    assert get(client, read_key, "/api/v1/contacts/abc").json()["error"] in ("invalid", "not_found")


def test_reading_needs_a_read_key(client, ingest_key, ada):
    assert get(client, ingest_key, f"/api/v1/contacts/{ada.pk}").status_code == 403
    assert client.get("/api/v1/contacts").status_code == 401


def test_the_list_pages_with_a_cursor(client, read_key, db):
    Contact.objects.bulk_create([Contact(email=f"p{i}@example.com") for i in range(5)])

    first = get(client, read_key, "/api/v1/contacts", limit=2).json()
    second = get(client, read_key, "/api/v1/contacts", limit=2, cursor=first["next_cursor"]).json()
    third = get(client, read_key, "/api/v1/contacts", limit=2, cursor=second["next_cursor"]).json()

    emails = [c["email"] for page in (first, second, third) for c in page["results"]]
    assert emails == [f"p{i}@example.com" for i in range(5)]
    assert third["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"stage": "mql"}, ["ada@example.com"]),
        ({"stage": "sql"}, []),
        ({"min_score": 25}, ["ada@example.com"]),
        ({"max_score": 24}, ["low@example.com"]),
        ({"email": "ADA@example.com"}, ["ada@example.com"]),
        ({"updated_since": "2000-01-01T00:00:00Z"}, ["ada@example.com", "low@example.com"]),
    ],
)
def test_the_list_filters(client, read_key, ada, params, expected):
    Contact.objects.create(email="low@example.com")

    results = get(client, read_key, "/api/v1/contacts", **params).json()["results"]

    assert sorted(c["email"] for c in results) == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"stage": "hot"}, "stage"),
        ({"limit": 501}, "limit"),
        ({"limit": 0}, "limit"),
        ({"min_score": "x"}, "min_score"),
        ({"cursor": "nonsense"}, "cursor"),
        ({"updated_since": "yesterday"}, "updated_since"),
    ],
)
def test_bad_list_parameters_are_named(client, read_key, db, params, field):
    response = get(client, read_key, "/api/v1/contacts", **params)

    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == field


def test_the_list_runs_a_fixed_number_of_queries(client, read_key, ada):
    for i in range(20):
        contact = Contact.objects.create(email=f"q{i}@example.com", company=ada.company)
        move(contact_id=contact.pk, to=Stage.MQL, by=Actor.scoring(1))

    with CaptureQueriesContext(connection) as queries:
        assert len(get(client, read_key, "/api/v1/contacts", limit=100).json()["results"]) == 21

    assert len(queries) <= 4  # key, contacts (with company and owner), stage history


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"email": "\x00"}, "email"),
        ({"min_score": "²"}, "min_score"),
        ({"max_score": "9" * 40}, "max_score"),
        ({"limit": "١٠"}, "limit"),
        ({"cursor": "aWQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}, "cursor"),  # "id:" and a number past bigint
    ],
)
def test_odd_list_parameters_are_a_json_400_naming_them(client, read_key, db, params, field):
    response = get(client, read_key, "/api/v1/contacts", **params)

    assert (response.status_code, response["Content-Type"]) == (400, "application/json")
    assert response.json()["details"][0]["field"] == field


def test_an_id_out_of_range_is_a_json_400(client, read_key, db):
    response = get(client, read_key, "/api/v1/contacts/99999999999999999999")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_an_id_nobody_has_is_a_json_404(client, read_key, db):
    assert get(client, read_key, "/api/v1/contacts/0").json()["error"] == "not_found"


def test_an_unknown_api_address_answers_json(client, read_key, db):
    response = get(client, read_key, "/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "path", ["/api/v1/contacts?limit=0", "/api/v1/contacts/0", "/api/v1/contacts/export.csv?stage=x"]
)
def test_without_a_key_the_answer_is_401_whatever_the_parameters(client, db, path):
    response = client.get(path)

    assert (response.status_code, response.json()["error"]) == (401, "unauthorized")
