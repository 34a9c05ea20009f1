from __future__ import annotations

import pytest

from scoring import previews
from scoring.models import CriteriaVersion, PreviewRun, RescoreRun
from tests.scores import make_contact


def form_data(client):
    """The page's form as a browser would post it (every field as rendered)."""
    page = client.get("/criteria/")
    data = {}
    for name in ("settings_form", "behaviour", "fit"):
        form = page.context[name]
        forms = [form] if name == "settings_form" else [form.management_form, *form.forms]
        for f in forms:
            for field in f:
                value = field.value()
                if isinstance(value, list):
                    value = ", ".join(map(str, value))
                if value is not None and value is not False:  # (0 is a value: `0 in (None, False)` is true)
                    data[field.html_name] = "on" if value is True else value
    return data


@pytest.mark.parametrize(
    ("persona", "get", "post"), [("admin_ada", 200, 400), ("marketer_mia", 403, 403), ("rep_sam", 403, 403)]
)
def test_only_admins_reach_the_criteria(client, request, db, persona, get, post):
    client.force_login(request.getfixturevalue(persona))

    assert client.get("/criteria/").status_code == get
    assert client.post("/criteria/", {"action": "publish"}).status_code == post  # an admin's empty form: 400
    assert CriteriaVersion.objects.get(status="active").number == 1


def test_an_sql_threshold_under_the_mql_one_is_refused_inline_and_nothing_saved(client, admin_ada):
    client.force_login(admin_ada)
    data = form_data(client) | {"sql_threshold": "30", "action": "save"}

    response = client.post("/criteria/", data)

    assert response.status_code == 400
    assert "Must not be under the MQL threshold." in response.content.decode()
    assert CriteriaVersion.objects.get(status="draft").sql_threshold == 70


def test_an_admin_edits_previews_and_publishes(client, admin_ada, django_capture_on_commit_callbacks):
    client.force_login(admin_ada)
    data = form_data(client) | {"mql_threshold": "45"}

    preview = client.post("/criteria/", data | {"action": "preview"})
    assert "Previewing" in preview.content.decode()
    previews.run(preview_id=PreviewRun.objects.get().pk)  # as the worker does
    done = client.get("/criteria/", {"part": "preview"}, headers={"HX-Request": "true"}).content.decode()
    assert "Preview: contacts by stage" in done and "hx-trigger" not in done
    with django_capture_on_commit_callbacks(execute=False):
        published = client.post("/criteria/", form_data(client) | {"action": "publish"})

    assert published.status_code == 200
    active = CriteriaVersion.objects.get(status="active")
    assert (active.number, active.mql_threshold, active.published_by) == (2, 45, admin_ada)
    assert RescoreRun.objects.get(version=active).finished_at is None
    assert (
        'aria-label="Rescore progress"'
        in client.get("/criteria/?part=progress", HTTP_HX_REQUEST="true").content.decode()
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"name": "Shoe size", "field": "shoe_size", "operator": "gte", "values": "42", "points": "5"},
            "unknown field “shoe_size”",
        ),
        (
            {"name": "Big", "field": "company_size", "operator": "gte", "values": "lots", "points": "5"},
            "≥ and ≤ need a number",
        ),
        ({"name": "Title", "field": "job_title", "operator": "contains", "values": "", "points": "5"}, "needs a value"),
        (
            {"name": "Title", "field": "job_title", "operator": "resembles", "values": "x", "points": "5"},
            "resembles is not one of the available choices",
        ),
    ],
)
def test_a_bad_new_fit_rule_is_refused_inline_and_nothing_is_saved(client, admin_ada, row, message):
    client.force_login(admin_ada)
    data = form_data(client)
    extra = int(data["f-TOTAL_FORMS"]) - 1  # the blank row for a new rule
    data |= {f"f-{extra}-{k}": v for k, v in row.items()} | {"mql_threshold": "41", "action": "save"}

    response = client.post("/criteria/", data)

    assert response.status_code == 400
    assert message in response.content.decode().replace("&quot;", '"').replace("Select a valid choice. ", "")
    draft = CriteriaVersion.objects.get(status="draft")
    assert (draft.fit_rules.count(), draft.mql_threshold) == (5, 40)


def test_the_preview_names_some_who_would_move_and_publishing_asks_first(client, admin_ada):

    make_contact(email="grace@example.com", first_name="Grace", last_name="Hopper", stage="mql", score=45)
    client.force_login(admin_ada)

    client.post("/criteria/", form_data(client) | {"mql_threshold": "60", "action": "preview"})
    previews.run(preview_id=PreviewRun.objects.get().pk)  # as the worker does
    page = client.get("/criteria/").content.decode()

    assert "Grace Hopper</a>: mql → lead" in page
    assert "confirm('Publish v2?" in page and 'data-moves="1 from mql to lead"' in page


def test_the_settings_are_labelled_explained_and_have_units(client, admin_ada):
    client.force_login(admin_ada)

    page = client.get("/criteria/").content.decode()

    assert "Mql threshold" not in page and ">MQL threshold</label>" in page
    assert "does not flap" in page and 'class="unit">minutes<' in page  # hysteresis explained; SLA in minutes
    assert '<datalist id="event-types">' in page and 'list="event-types"' in page
