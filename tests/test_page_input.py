"""Generated input to every page and form: odd digits, NULs, huge numbers, junk. Never a 5xx."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import Contact, Stage
from handoff import services
from handoff.models import QueueEntry

ODD = ["²", "١٢", "9" * 40, "-1", "0", "1e3", "\x00", "", " ", "me", "none", "../../etc", "//evil.example", "7"]
values = st.sampled_from(ODD) | st.text(max_size=30)
fields = lambda *names: st.dictionaries(st.sampled_from(names), values | st.lists(values, max_size=3), max_size=6)  # noqa: E731
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def world(client, admin_ada):
    """Ada (every role) signed in, an MQL and an SQL with its queue entry."""
    mql = Contact.objects.create(email="mql@example.com", stage=Stage.MQL)
    sql = Contact.objects.create(email="sql@example.com", stage=Stage.SQL)
    services.enqueue(contact_ids=[sql.pk], sent_by="scoring v1", sla=services.Sla(60, 120), requested={})
    client.force_login(admin_ada)
    return client, mql, QueueEntry.objects.get()


def ok(response) -> None:
    assert response.status_code < 500, response.content[:500]


@FUZZ
@given(
    query=fields(
        "q", "stage", "grade", "trend", "channel", "min_score", "max_score", "active", "owner", "sort", "after"
    )
)
def test_the_leads_list_takes_any_query(world, query):
    client, _, _ = world
    ok(client.get("/leads/", query))
    ok(client.get("/leads/", query, HTTP_HX_REQUEST="true"))


@FUZZ
@given(query=fields("before", "part", "edit"), htmx=st.booleans())
def test_the_lead_page_takes_any_query(world, query, htmx):
    client, mql, _ = world
    ok(client.get(f"/leads/{mql.pk}/", query, **({"HTTP_HX_REQUEST": "true"} if htmx else {})))


@FUZZ
@given(
    data=fields("ids", "action", "note", "back", "reason", "body", "first_name", "job_title", "phone"),
    path=st.sampled_from(["hand-over", "{id}/hand-over", "{id}/profile", "{id}/notes", "{id}/reopen"]),
    htmx=st.booleans(),
)
def test_the_lead_forms_take_any_post(world, data, path, htmx):
    client, mql, _ = world
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    ok(client.post("/leads/" + path.format(id=mql.pk), data, **headers))


@FUZZ
@given(
    data=fields("kind", "note", "reason", "text"),
    action=st.sampled_from(["claim", "touch", "accept", "reject", "won", "lost", "nope"]),
)
def test_the_queue_takes_any_post(world, data, action):
    client, _, entry = world
    ok(client.post(f"/queue/{entry.pk}/{action}", data, HTTP_HX_REQUEST="true"))
    ok(client.get("/queue/", {"part": data.get("kind", "")}, HTTP_HX_REQUEST="true"))


@FUZZ
@given(
    data=fields(
        "action",
        "version",
        "mql_threshold",
        "sql_threshold",
        "half_life_days",
        "sla_first_touch_minutes",
        "b-TOTAL_FORMS",
        "b-INITIAL_FORMS",
        "b-0-name",
        "b-0-points",
        "f-TOTAL_FORMS",
        "f-INITIAL_FORMS",
    )
)
def test_the_criteria_page_takes_any_post(world, data):
    client, _, _ = world
    ok(client.post("/criteria/", data))
