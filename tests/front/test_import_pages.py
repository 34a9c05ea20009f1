"""The import pages: upload (refusals say why), the column mapping, starting, progress, the outcome."""

from __future__ import annotations

import io

import pytest

from crm.models import Contact
from leads.models import Import
from scoring import services as scoring
from tests.scores import reloaded


def upload(client, content: bytes, name="people.csv"):
    file = io.BytesIO(content)
    file.name = name
    return client.post("/imports/", {"file": file})


@pytest.fixture
def mia(client, marketer_mia):
    client.force_login(marketer_mia)
    return client


def test_an_upload_opens_the_mapping_with_columns_matched_by_header(mia):
    response = upload(mia, b"E-mail,First Name,Employees,Shoe size\nada@example.com,Ada,12,38\n")

    run = Import.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/imports/{run.pk}/"
    page = mia.get(response["Location"]).content.decode()
    assert run.state == Import.State.DRAFT and run.mapping == {
        "E-mail": "email",
        "First Name": "first_name",
        "Employees": "company_size",
        "Shoe size": "profile.shoe_size",
    }
    assert "Map the columns" in page and "ada@example.com" in page  # the first values beside each column


def test_a_refused_file_says_why_and_stores_nothing(mia):
    response = upload(mia, "email,name\nzoe@example.com,Zoë\n".encode("latin-1"))

    assert response.status_code == 400
    assert "Row 1 is not UTF-8" in response.content.decode()
    assert not Import.objects.exists()


def test_starting_checks_the_mapping_then_queues_a_dry_run_and_the_real_one_after(mia, marketer_mia):
    upload(mia, b"email,first_name\nada@example.com,Ada\nbad,Bob\n")
    run = Import.objects.get()

    refused = mia.post(f"/imports/{run.pk}/start", {"mode": "upsert", "column_0": "", "column_1": "first_name"})
    assert refused.status_code == 400 and "no column maps to email" in refused.content.decode()

    started = mia.post(
        f"/imports/{run.pk}/start",
        {"mode": "upsert", "column_0": "email", "column_1": "first_name", "action": "dry_run"},
    )
    run = reloaded(run)
    assert started.status_code == 302 and (run.state, run.dry_run) == (Import.State.QUEUED, True)
    scoring.run_import(import_id=run.pk)
    page = mia.get(f"/imports/{run.pk}/").content.decode()
    assert "Would create" in page and "Import these rows" in page and "Download the skipped rows" in page
    assert not Contact.objects.exists()

    real = mia.post(f"/imports/{run.pk}/again")
    second = Import.objects.exclude(pk=run.pk).get()
    assert real["Location"] == f"/imports/{second.pk}/" and not second.dry_run
    scoring.run_import(import_id=second.pk)
    assert list(Contact.objects.values_list("email", "first_name")) == [("ada@example.com", "Ada")]
    mia.post(f"/imports/{second.pk}/again")  # only a finished dry run is imported again
    assert Import.objects.count() == 2
    history = mia.get("/imports/").content.decode()
    assert history.count("people.csv") == 2 and "Dry run" in history


def test_the_progress_part_polls_until_the_import_is_finished(mia):
    upload(mia, b"email\nada@example.com\n")
    run = Import.objects.get()
    mia.post(f"/imports/{run.pk}/start", {"mode": "upsert", "column_0": "email", "action": "import"})

    polling = mia.get(f"/imports/{run.pk}/?part=progress", HTTP_HX_REQUEST="true").content.decode()
    scoring.run_import(import_id=run.pk)
    finished = mia.get(f"/imports/{run.pk}/?part=progress", HTTP_HX_REQUEST="true").content.decode()

    assert "every 1s" in polling and "<progress" in polling
    assert "every 1s" not in finished and "Done" in finished
