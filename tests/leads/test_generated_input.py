"""Generated input: whatever arrives, the API never answers 5xx and never stores part of a request."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import Contact
from leads.models import Event
from tests.scores import make_contact

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
maybe = lambda strategy: st.none() | strategy  # noqa: E731
events = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=130) | st.integers(),
        "type": st.sampled_from(["page_view", "form_submit", "email_unsubscribe", "identify", "Bad"])
        | st.text(max_size=5),
        "email": st.emails() | st.text(max_size=10),
        "visitor_id": maybe(st.text(min_size=1, max_size=70)),
        "occurred_at": st.sampled_from(["2026-11-20T10:31:00Z", "2026-11-20T10:31:00", "2999-01-01T00:00:00+00:00"])
        | st.text(max_size=10),
        "properties": st.dictionaries(
            st.sampled_from(["form", "path", "utm_source", "referrer", "job_title"]) | st.text(max_size=6),
            json_values,
            max_size=5,
        ),
        "contact": st.dictionaries(
            st.sampled_from(["first_name", "company", "company_size", "job_title", "x"]), json_values, max_size=4
        ),
        "extra": json_values,
    },
)
bodies = events | st.fixed_dictionaries({"events": st.lists(events, max_size=5)}) | json_values


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_generated_events_never_cause_a_server_error_or_a_partial_write(send, body):
    before = (Event.objects.count(), Contact.objects.count())

    response = send(json.dumps(body, allow_nan=True))

    assert response.status_code < 500, response.content
    stored = Event.objects.count() - before[0]
    if response.status_code == 202:
        assert stored == response.json()["accepted"]
    else:
        assert response.json()["error"] in {"invalid", "malformed", "too_large", "forbidden"}
        assert (Event.objects.count(), Contact.objects.count()) == before


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_generated_bytes_never_cause_a_server_error(send, raw):
    before = Event.objects.count()

    assert send(raw).status_code < 500
    assert Event.objects.count() - before <= 1


@pytest.fixture
def api_schema(db):
    from crm.wsgi import application

    # As Django's test client does: keep the test's connection (and transaction) open across requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_the_openapi_document_finds_no_server_error(api_schema, ingest_key):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/v1/events", "/api/v1/collect", "/api/v1/identify"}

    for operation in operations:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case):
            case.call_and_validate(
                headers={"Authorization": f"Bearer {ingest_key}"}, checks=[schemathesis.checks.not_a_server_error]
            )

        call()


def test_what_the_read_api_answers_is_what_its_document_describes(api_schema, read_key):
    from crm.lifecycle import Actor, move

    for i in range(3):
        contact = make_contact(email=f"c{i}@example.com", breakdown=[])
        move(contact_id=contact.pk, to="mql", by=Actor.scoring(1), reason="Score 41 ≥ MQL threshold 40")
    operations = [result.ok() for result in api_schema.get_all_operations()]
    reads = [op for op in operations if op.method.upper() == "GET" and op.path.startswith("/api/v1/contacts")]
    assert len(reads) == 3  # the list, the export, one contact

    for operation in reads:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case):
            case.call_and_validate(
                headers={"Authorization": f"Bearer {read_key}"},
                checks=[schemathesis.checks.not_a_server_error, schemathesis.checks.response_schema_conformance],
            )

        call()
