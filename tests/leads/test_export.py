"""CSV export: the API's and the leads list's, streamed, filtered, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io

import pytest

from crm.models import Company, Contact, Stage
from tests.scores import make_contact


@pytest.fixture
def contacts(db):
    acme = Company.objects.create(name="Acme")
    return [
        make_contact(email="ada@acme.example", first_name="Ada", company=acme, stage=Stage.MQL, score=55),
        Contact.objects.create(email="bob@example.com", first_name='=HYPERLINK("http://x")', stage=Stage.LEAD),
        Contact.objects.create(email="cy@example.com", first_name="+1", last_name="@cy", job_title="-CEO"),
    ]


def rows(response) -> list[dict]:
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_api_export_streams_every_match_with_one_header_row(client, read_key, contacts):
    response = client.get("/api/v1/contacts/export.csv", HTTP_AUTHORIZATION=f"Bearer {read_key}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    found = rows(response)
    assert [r["email"] for r in found] == ["ada@acme.example", "bob@example.com", "cy@example.com"]
    assert found[0]["company"] == "Acme" and found[0]["stage"] == "mql" and found[0]["score"] == "55"


def test_cells_a_spreadsheet_would_run_are_neutralised(client, read_key, contacts):
    found = rows(client.get("/api/v1/contacts/export.csv", HTTP_AUTHORIZATION=f"Bearer {read_key}"))

    assert found[1]["first_name"] == '\'=HYPERLINK("http://x")'
    assert (found[2]["first_name"], found[2]["last_name"], found[2]["job_title"]) == ("'+1", "'@cy", "'-CEO")


def test_the_api_export_takes_the_list_filters(client, read_key, contacts):
    response = client.get(
        "/api/v1/contacts/export.csv", {"stage": "mql", "min_score": 50}, HTTP_AUTHORIZATION=f"Bearer {read_key}"
    )

    assert [r["email"] for r in rows(response)] == ["ada@acme.example"]


def test_the_api_export_refuses_bad_filters_and_other_keys(client, read_key, ingest_key, contacts):
    bad = client.get("/api/v1/contacts/export.csv", {"stage": "hot"}, HTTP_AUTHORIZATION=f"Bearer {read_key}")
    assert (bad.status_code, bad.json()["details"][0]["field"]) == (400, "stage")
    assert client.get("/api/v1/contacts/export.csv", HTTP_AUTHORIZATION=f"Bearer {ingest_key}").status_code == 403
    assert client.get("/api/v1/contacts/export.csv").status_code == 401


def test_the_leads_list_exports_exactly_what_its_filters_show(client, marketer_mia, contacts):
    client.force_login(marketer_mia)
    page = client.get("/leads/", {"stage": "mql"}).content.decode()
    assert 'href="/leads/export.csv?stage=mql"' in page

    found = rows(client.get("/leads/export.csv", {"stage": "mql"}))

    assert [r["email"] for r in found] == ["ada@acme.example"]


def test_sales_cannot_export(client, rep_sam, contacts):
    client.force_login(rep_sam)

    assert client.get("/leads/export.csv").status_code == 403
