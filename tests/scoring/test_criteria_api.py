"""Criteria as code over the API (API.md): admin keys only, a version as JSON, the draft replaced from JSON with
every problem at its JSON path and nothing saved, preview, publish (409 while a rescore runs) and its progress."""

from __future__ import annotations

import copy
import json

import pytest

from leads.models import ApiKey, Source
from scoring import criteria_json
from scoring.models import CriteriaVersion, RescoreRun


@pytest.fixture
def call(client, db):
    key = ApiKey.issue(source=Source.objects.create(name="ops"), scope=ApiKey.Scope.ADMIN)[1]

    def request(method, path, body=None, *, token=key):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        data = json.dumps(body) if body is not None else None
        return getattr(client, method)(f"/api/v1{path}", data=data, content_type="application/json", **headers)

    return request


def test_the_active_version_as_json(call):
    body = call("get", "/criteria/active").json()

    assert (body["version"], body["status"], body["mql_threshold"], body["sql_threshold"]) == (1, "active", 40, 70)
    assert body["grade_bands"] == {"A": 30, "B": 15, "C": 0}
    assert body["sla"] == {"unclaimed_minutes": 60, "first_touch_minutes": 120}
    pricing = next(r for r in body["behaviour_rules"] if r["name"] == "Pricing or product page")
    assert pricing == {
        "name": "Pricing or product page",
        "event_type": "page_view",
        "property": {"key": "path", "operator": "starts_with", "values": ["/pricing", "/product"]},
        "points": 5,
        "cap": 30,
    }
    assert call("get", "/criteria/versions/1").json() == body
    assert [v["version"] for v in call("get", "/criteria/versions").json()["versions"]] == [1]
    assert call("get", "/criteria/versions/9").status_code == 404


def test_a_version_round_trips_through_json(call):
    exported = call("get", "/criteria/active").json()
    changed = copy.deepcopy(exported) | {"mql_threshold": 45}

    saved = call("put", "/criteria/draft", changed)

    assert saved.status_code == 200
    draft = saved.json()
    assert draft["status"] == "draft" and draft["version"] == 2
    strip = lambda v: {k: x for k, x in v.items() if k not in criteria_json.PUBLISHED}  # noqa: E731
    assert strip(draft) == strip(changed)
    assert strip(call("put", "/criteria/draft", exported).json()) == strip(exported)  # and back, identical


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda v: v["behaviour_rules"][2].update(points="ten"), "behaviour_rules[2].points"),
        (lambda v: v["behaviour_rules"][0].update(event_type="Page View"), "behaviour_rules[0].event_type"),
        (lambda v: v["fit_rules"][1].update(operator="between"), "fit_rules[1].operator"),
        (lambda v: v["fit_rules"][0].update(field="shoe_size"), "fit_rules[0]"),
        (lambda v: v.update(sql_threshold=10), "sql_threshold"),
        (lambda v: v.update(grade_bands={"A": 1, "B": 5, "C": 0}), "grade_bands"),
        (lambda v: v["sla"].pop("unclaimed_minutes"), "sla.unclaimed_minutes"),
        (lambda v: v.update(surprise=True), "surprise"),
        (lambda v: v.update(mql_threshold=True), "mql_threshold"),
    ],
)
def test_every_invalid_version_is_refused_with_its_path_and_nothing_saved(call, change, path):
    body = call("get", "/criteria/active").json()
    change(body)

    response = call("put", "/criteria/draft", body)

    assert response.status_code == 400 and response.json()["error"] == "invalid"
    assert path in [d["field"] for d in response.json()["details"]], response.json()
    assert not CriteriaVersion.objects.filter(status="draft").exists()


def test_preview_then_publish_then_follow_the_rescore(call):
    body = call("get", "/criteria/active").json() | {"mql_threshold": 50}
    call("put", "/criteria/draft", body)

    preview = call("post", "/criteria/draft/preview").json()
    assert set(preview) >= {"today", "draft"} and set(preview["today"]) == {"stages", "grades"}

    published = call("post", "/criteria/draft/publish")
    assert published.status_code == 202
    answer = published.json()
    assert answer["version"] == 2 and CriteriaVersion.objects.get(status="active").number == 2
    progress = call("get", f"/rescores/{answer['rescore']['id']}").json()
    assert progress["state"] == "running" and progress["total"] == 0
    assert call("get", "/rescores/999999").status_code == 404


def test_publishing_while_a_worker_rescores_is_409(call, another_worker_rescoring):
    call("put", "/criteria/draft", call("get", "/criteria/active").json() | {"mql_threshold": 50})

    response = call("post", "/criteria/draft/publish")

    assert response.status_code == 409 and response.json()["error"] == "conflict"
    assert CriteriaVersion.objects.get(status="active").number == 1 and not RescoreRun.objects.exists()


def test_only_admin_keys(call, db):
    source = Source.objects.get(name="ops")
    for scope in (ApiKey.Scope.READ, ApiKey.Scope.INGEST):
        token = ApiKey.issue(source=source, scope=scope)[1]
        assert call("get", "/criteria/active", token=token).status_code == 403
    assert call("get", "/criteria/active", token=None).status_code == 401
    assert call("put", "/criteria/draft", {}, token=None).status_code == 401


def test_the_criteria_page_exports_a_version_and_imports_json_into_the_draft(client, admin_ada, call):
    client.force_login(admin_ada)
    exported = client.get("/criteria/v1.json")
    assert exported.status_code == 200 and "attachment" in exported["Content-Disposition"]
    body = json.loads(exported.content) | {"hysteresis": 8}

    refused = client.post("/criteria/", {"action": "import_json", "json": '{"mql_threshold": "x"}'})
    assert refused.status_code == 400 and "mql_threshold" in refused.content.decode()
    assert client.post("/criteria/", {"action": "import_json", "json": "{not json"}).status_code == 400
    assert not CriteriaVersion.objects.filter(status="draft", hysteresis=8).exists()

    saved = client.post("/criteria/", {"action": "import_json", "json": json.dumps(body)})
    assert saved.status_code == 200 and CriteriaVersion.objects.get(status="draft").hysteresis == 8
    assert call("get", "/criteria/versions/2").json()["hysteresis"] == 8
