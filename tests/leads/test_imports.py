"""CSV import (API.md "Imports", PRODUCT.md §11): files refused whole, rows skipped and listed, the rest imported,
dry runs that write nothing, the overwrite rule and the modes, re-runs that change nothing, resuming."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core import mail

from crm.models import Company, Contact, ContactActivity, Stage
from handoff.models import QueueEntry
from leads import imports
from leads.models import ApiKey, Import, ImportRow, Source
from scoring import services as scoring
from tests.conftest import wait_for
from tests.scores import reloaded

HEADER = "email,first_name,last_name,job_title,company,company_size,industry,favourite_colour\n"


@pytest.fixture
def post_import(client, ingest_key):
    def post(content: bytes | str, *, key=ingest_key, name="contacts.csv", **fields):
        data = content.encode() if isinstance(content, str) else content
        upload = io.BytesIO(data)
        upload.name = name
        form = {"file": upload, **{k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in fields.items()}}
        auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
        return client.post("/api/v1/imports", data=form, **auth)

    return post


@pytest.fixture
def imported(post_import, client, ingest_key):
    """POST a file and run the import here (the worker's job, in-process); returns GET /imports/{id}'s body."""

    def run(content, **fields):
        response = post_import(content, **fields)
        assert response.status_code == 202, response.json()
        import_id = response.json()["id"]
        scoring.run_import(import_id=import_id)
        answer = client.get(f"/api/v1/imports/{import_id}", HTTP_AUTHORIZATION=f"Bearer {ingest_key}")
        assert answer.status_code == 200
        return answer.json()

    return run


def test_an_import_creates_contacts_with_companies_and_profile_and_scores_them(imported):
    result = imported(
        HEADER + "Ada@Example.com,Ada,Lovelace,Director of Engineering,Acme,250,Software,green\n"
        "bob@example.com,Bob,,,Acme,,,\n"
    )

    assert result | {"errors": None} == result | {
        "state": "done",
        "dry_run": False,
        "rows": 2,
        "total": 2,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "errors": None,
    }
    ada = Contact.objects.select_related("company").get(email="ada@example.com")
    bob = Contact.objects.scored().get(email="bob@example.com")
    assert (ada.first_name, ada.job_title, ada.profile) == (
        "Ada",
        "Director of Engineering",
        {"favourite_colour": "green"},
    )
    assert ada.company == bob.company and (ada.company.name, ada.company.size, ada.company.industry) == (
        "Acme",
        250,
        "Software",
    )
    ada, bob = reloaded(ada), reloaded(bob)
    assert ada.scored_at is not None and ada.fit_score > bob.fit_score  # scored like any other contact
    assert not ContactActivity.objects.filter(stale_since__isnull=False).exists()


def test_rows_with_errors_are_skipped_and_listed_and_the_rest_imported(imported):
    result = imported(
        HEADER + "ok@example.com,Ok,,,,,,\n"
        "not-an-email,Bad,,,,,,\n"
        ",No email,,,,,,\n"
        "digits@example.com,,,,Digits,١٢,,\n"  # Arabic-Indic digits are not a number of employees here
        "nul@example.com,Nul\x00l,,,,,,\n"
        f"long@example.com,{'x' * 101},,,,,,\n"
        "extra@example.com,,,,,,,,surplus\n"
        ",,,,,,,\n"  # an empty row: ignored, not an error
        "OK@example.com,Again,Twice,,,,,\n"  # the same email as row 1: skipped, not merged
        'fine@example.com,Fine,,,Fine,"1,200",,\n'
    )

    assert (result["rows"], result["created"], result["skipped"]) == (9, 2, 7)
    assert [(e["row"], e["field"]) for e in result["errors"]] == [
        (2, "email"),
        (3, "email"),
        (4, "company_size"),
        (5, "first_name"),
        (6, "first_name"),
        (7, ""),
        (9, "email"),
    ]
    assert "row 1" in result["errors"][-1]["message"]
    assert Contact.objects.scored().get(email="ok@example.com").last_name == ""
    assert result["created"] + result["updated"] + result["unchanged"] + result["skipped"] == result["rows"]
    assert sorted(Contact.objects.values_list("email", flat=True)) == ["fine@example.com", "ok@example.com"]
    assert Company.objects.get().size == 1200  # thousands separators read; "Digits" was never created


def test_a_dry_run_writes_nothing_and_counts_what_would_change(imported):
    Contact.objects.create(email="old@example.com", first_name="Old")
    Contact.objects.create(email="same@example.com", first_name="Same")

    result = imported(
        "email,first_name,last_name\nold@example.com,Old,Timer\nsame@example.com,Same,\nnew@example.com,New,\nbad,,\n",
        dry_run="true",
    )

    assert (result["state"], result["dry_run"]) == ("done", True)
    assert (result["created"], result["updated"], result["unchanged"], result["skipped"]) == (1, 1, 1, 1)
    assert Contact.objects.count() == 2
    assert Contact.objects.scored().get(email="old@example.com").last_name == ""
    assert not Company.objects.exists()


def test_a_second_run_of_the_same_file_changes_nothing(imported):
    content = HEADER + "ada@example.com,Ada,Lovelace,CTO,Acme,250,Software,green\nbob@example.com,Bob,,,,,,\n"
    imported(content)
    before = dict(Contact.objects.values_list("email", "updated_at"))

    again = imported(content)

    assert (again["created"], again["updated"], again["unchanged"], again["skipped"]) == (0, 0, 2, 0)
    assert dict(Contact.objects.values_list("email", "updated_at")) == before
    assert Company.objects.count() == 1


def test_values_fill_empty_fields_unless_overwrite_is_asked(imported):
    Contact.objects.create(email="ada@example.com", first_name="Ada", job_title="", profile={"colour": "red"})
    content = "email,first_name,job_title,colour\nada@example.com,Augusta,Countess,blue\n"

    kept = imported(content)
    ada = Contact.objects.scored().get(email="ada@example.com")
    assert kept["updated"] == 1 and (ada.first_name, ada.job_title, ada.profile) == (
        "Ada",
        "Countess",
        {"colour": "red"},
    )

    replaced = imported(content, overwrite="true")
    ada = reloaded(ada)
    assert replaced["updated"] == 1 and (ada.first_name, ada.profile) == ("Augusta", {"colour": "blue"})

    imported("email,first_name,job_title\nada@example.com,,\n", overwrite="true")  # an empty cell never blanks
    ada = reloaded(ada)
    assert (ada.first_name, ada.job_title) == ("Augusta", "Countess")


def test_create_only_and_update_only_skip_the_other_kind_of_row(imported):
    Contact.objects.create(email="old@example.com")
    content = "email,first_name\nold@example.com,Old\nnew@example.com,New\n"

    created = imported(content, mode="create")
    assert (created["created"], created["updated"], created["skipped"]) == (1, 0, 1)
    assert "exists" in created["errors"][0]["message"]

    Contact.objects.filter(email="new@example.com").delete()
    updated = imported(content, mode="update")
    assert (updated["created"], updated["updated"], updated["skipped"]) == (0, 1, 1)
    assert updated["errors"][0]["row"] == 2 and not Contact.objects.filter(email="new@example.com").exists()


def test_companies_are_found_by_domain_and_a_mapping_names_columns(imported):
    acme = Company.objects.create(name="Acme Corporation", domain="acme.com")

    result = imported(
        "E-mail Address,Website,Surname,Notes\nada@acme.com,https://www.acme.com/about,Lovelace,met at expo\n",
        mapping={"Notes": "profile.met", "Surname": "", "Website": "company_domain"},
    )

    ada = Contact.objects.scored().get(email="ada@acme.com")
    assert result["created"] == 1 and ada.company == acme
    assert (ada.last_name, ada.profile) == ("", {"met": "met at expo"})
    imported("email,Shoe Size,Fax\nbo@acme.com,44,123\n", mapping={"Shoe Size": "profile", "Fax": "ignore"})
    assert Contact.objects.scored().get(email="bo@acme.com").profile == {"shoe_size": "44"}


def test_bom_semicolons_quotes_newlines_and_neutralised_formulas(imported):
    content = (
        "\ufeffemail;first_name;job_title;company\r\n"
        'ada@example.com;"Ada; the first";"Head of\nEngineering";\'=Acme\r\n'
        'bob@example.com;=HYPERLINK("x");;\r\n'
    )
    result = imported(content)

    assert (result["created"], result["skipped"]) == (2, 0)
    ada = Contact.objects.select_related("company").get(email="ada@example.com")
    assert (ada.first_name, ada.job_title, ada.company.name) == ("Ada; the first", "Head of\nEngineering", "=Acme")
    assert (
        Contact.objects.scored().get(email="bob@example.com").first_name == '=HYPERLINK("x")'
    )  # export neutralises it


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("email,first_name\nok@example.com,Ok\nzoe@example.com,Zo\xeb\n".encode("latin-1"), "Row 2 is not UTF-8"),
        (b"", "empty"),
        (b"email,email\na@example.com,b@example.com\n", "more than once"),
        (b"first_name,last_name\nAda,Lovelace\n", "no column maps to email"),
        (b"email,note\na@example.com," + b"x" * 140_000 + b"\n", "Row 1 is not valid CSV"),
    ],
)
def test_files_that_cannot_be_imported_are_refused_whole(post_import, content, says):
    response = post_import(content)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid" and says in json.dumps(body["details"], ensure_ascii=False)
    assert not Import.objects.exists() and not Contact.objects.exists()


def test_bad_options_and_mappings_are_400_with_their_field(post_import):
    content = "email,name\na@example.com,A\n"
    cases = [
        ({"mode": "merge"}, "mode"),
        ({"overwrite": "perhaps"}, "overwrite"),
        ({"mapping": "{not json"}, "mapping"),
        ({"mapping": {"Nope": "email"}}, "mapping.Nope"),
        ({"mapping": {"name": "shoe_size"}}, "mapping.name"),
        ({"mapping": {"email": "email", "name": "email"}}, "mapping.name"),
    ]
    for fields, field in cases:
        response = post_import(content, **fields)
        assert response.status_code == 400, fields
        assert field in [d["field"] for d in response.json()["details"]], (fields, response.json())
    assert not Import.objects.exists()


def test_a_file_over_50_mib_is_413(post_import):
    line = b"someone@example.com," + b"x" * 80 + b"\n"
    response = post_import(b"email,note\n" + line * (50 * 1024 * 1024 // len(line) + 10))

    assert response.status_code == 413 and response.json()["error"] == "too_large"


def test_the_api_wants_an_ingest_key_and_shows_a_source_only_its_own_imports(
    client, post_import, website, read_key, ingest_key
):
    content = "email\na@example.com\n"
    assert post_import(content, key=None).status_code == 401
    assert post_import(content, key=read_key).status_code == 403
    not_multipart = client.post(
        "/api/v1/imports", data="{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {ingest_key}"
    )
    assert not_multipart.status_code == 415

    import_id = post_import(content).json()["id"]
    other = ApiKey.issue(source=Source.objects.create(name="crm"), scope=ApiKey.Scope.INGEST)[1]
    assert client.get(f"/api/v1/imports/{import_id}", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 404
    assert client.get(f"/api/v1/imports/{import_id}").status_code == 401


def test_an_import_that_qualifies_a_contact_as_sql_opens_no_queue_entry_and_emails_nobody(
    imported, send, rep_sam, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # a demo request (sales intent): 40 points, an MQL
        send({"id": "e1", "type": "form_submit", "email": "hot@example.com", "properties": {"form": "demo"}})
    hot = Contact.objects.scored().get(email="hot@example.com")
    scoring.rescore(contact_ids=[hot.pk])
    hot = reloaded(hot)
    assert (hot.stage, hot.score) == (Stage.MQL, 40)

    imported("email,job_title,company,company_size,budget\nhot@example.com,VP Sales,Big,5000,50k\n")

    hot = reloaded(hot)
    assert hot.score >= 70 and hot.stage == Stage.MQL  # enough for sql, held: the next activity hands it over
    assert not QueueEntry.objects.exists() and mail.outbox == []


def test_an_interrupted_import_resumes_where_it_stopped(post_import, monkeypatch):
    monkeypatch.setattr(imports, "BATCH", 3)
    content = "email\n" + "".join(f"p{i}@example.com\n" for i in range(10)) + "p0@example.com\n"
    import_id = post_import(content).json()["id"]

    assert len(imports.step(import_id=import_id)) == 3  # a worker ran one batch, then was lost
    run = Import.objects.get(pk=import_id)
    assert (run.state, run.next_row, run.created) == (Import.State.RUNNING, 4, 3)
    scoring.run_import(import_id=import_id)  # another picks it up

    run = reloaded(run)
    assert (run.state, run.rows, run.created, run.skipped) == (Import.State.DONE, 11, 10, 1)
    assert run.problems.get().row == 11  # the repeat is found across batches
    assert Contact.objects.count() == 10 and not ImportRow.objects.exists()
    assert imports.step(import_id=import_id) is None


def test_the_error_file_has_the_rows_cells_and_what_was_wrong(imported, client, marketer_mia):
    result = imported("email,first_name\nbad,=cmd\nok@example.com,Ok\n")
    client.force_login(marketer_mia)

    response = client.get(f"/imports/{result['id']}/errors.csv")

    assert response.status_code == 200
    found = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert found[0] == ["email", "first_name", "row", "column", "error"]
    assert found[1][:4] == ["bad", "'=cmd", "1", "email"]


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_an_import_to_done(post_import, client, ingest_key, celery_worker):
    content = "email,job_title\n" + "".join(f"w{i}@example.com,Director\n" for i in range(1200))
    import_id = post_import(content).json()["id"]

    def finished():
        body = client.get(f"/api/v1/imports/{import_id}", HTTP_AUTHORIZATION=f"Bearer {ingest_key}").json()
        return body if body["state"] in ("done", "failed") else None

    body = wait_for(finished, timeout=60)
    assert (body["state"], body["created"], body["rows"]) == ("done", 1200, 1200)
    assert Contact.objects.scored().filter(scored_at__isnull=False).count() == 1200


@pytest.mark.django_db(transaction=True)
def test_two_workers_running_one_import_at_once_count_each_row_once(post_import, monkeypatch):
    import threading

    from django.db import connection

    monkeypatch.setattr(imports, "BATCH", 50)
    import_id = post_import("email\n" + "".join(f"t{i}@example.com\n" for i in range(1000))).json()["id"]
    start = threading.Barrier(2)

    def worker():
        start.wait()
        try:
            scoring.run_import(import_id=import_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    run = Import.objects.get(pk=import_id)
    assert (run.state, run.rows, run.created, run.skipped) == (Import.State.DONE, 1000, 1000, 0)
