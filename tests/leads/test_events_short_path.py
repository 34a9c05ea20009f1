"""The production WSGI handler (crm.wsgi) serves POST /api/v1/events by a short path without the page middleware:
it answers exactly as the API's route does."""

from __future__ import annotations

import io
import json

import psycopg
import pytest
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection

from leads.models import Event
from tests.conftest import database_url


def _served(method, path, key, body=b"", *, host="testserver", content_type="application/json"):
    """Call crm.wsgi's application as gunicorn does: (status, headers, body)."""
    from crm.wsgi import application

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": host,
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": content_type,
        "HTTP_AUTHORIZATION": f"Bearer {key}",
    }
    started = []
    content = b"".join(application(environ, lambda status, headers: started.append((status, headers))))
    status, headers = started[0]
    return int(status.split()[0]), dict(headers), content


@pytest.fixture
def wsgi(db, ingest_key):
    """_served, keeping the test's connection (and transaction) open across requests, as Django's test client
    does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)

    def call(method, path, body=b"", *, key=ingest_key, host="testserver", content_type="application/json"):
        return _served(method, path, key, body, host=host, content_type=content_type)

    yield call
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def event(i=1):
    return json.dumps({"id": f"e-{i}", "type": "page_view", "email": "ada@example.com"}).encode()


@pytest.mark.parametrize(
    ("body", "key", "status"),
    [(event(), None, 202), (b"{", None, 400), (b'{"id": "x"}', None, 400), (event(), "bk_nope", 401)],
)
def test_it_answers_as_the_api_route_does_headers_included(wsgi, client, ingest_key, body, key, status):
    key = key or ingest_key
    code, headers, content = wsgi("POST", "/api/v1/events", body, key=key)
    Event.objects.all().delete()
    routed = client.post("/api/v1/events", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")

    assert code == routed.status_code == status
    assert json.loads(content) == routed.json()
    assert set(headers) == set(routed.headers)
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"


def test_it_checks_the_host_as_every_request_does(wsgi):
    assert wsgi("POST", "/api/v1/events", event(), host="evil.example")[0] == 400
    assert not Event.objects.exists()


def test_it_skips_the_page_middleware(wsgi, monkeypatch):
    def broken(self, request):
        raise RuntimeError("the session middleware ran")

    monkeypatch.setattr(SessionMiddleware, "process_request", broken)

    assert wsgi("GET", "/login/")[0] == 500  # a page: through the whole stack
    assert wsgi("POST", "/api/v1/events", event())[0] == 202
    assert wsgi("POST", "/api/v1/identify", b"{}")[0] == 500  # another API route: through the whole stack too


def _connection_ended() -> None:
    """As a PostgreSQL restart ends it: the server closes this thread's kept connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    url = database_url(connection.settings_dict).replace("postgres://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.django_db(transaction=True)
def test_after_the_database_connection_died_the_next_request_is_served_on_a_new_one(read_key):
    """A PostgreSQL restart ends every worker's kept connection: a request checks it first and connects again,
    instead of failing (a 503 answer, a 500 page)."""
    assert _served("GET", "/api/v1/contacts", read_key)[0] == 200
    _connection_ended()

    assert _served("GET", "/api/v1/contacts", read_key)[0] == 200


@pytest.mark.django_db(transaction=True)
def test_the_short_path_does_not_check_its_connection_first_and_a_retry_is_served(ingest_key):
    """The round trip of the check cost one event per POST 0.60 -> 0.52 of the minimal view's rate: after a
    restart its first request answers 503, which the API says to retry, and the retry is served."""
    event = json.dumps({"id": "after-restart", "type": "page_view", "email": "r@example.com"}).encode()
    assert _served("POST", "/api/v1/events", ingest_key, event)[0] == 202
    _connection_ended()

    assert _served("POST", "/api/v1/events", ingest_key, event)[0] == 503
    assert _served("POST", "/api/v1/events", ingest_key, event)[0] == 202
