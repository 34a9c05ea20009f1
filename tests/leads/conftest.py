from __future__ import annotations

import json

import pytest

from leads.models import ApiKey, Source

SITE = "https://www.example.com"


@pytest.fixture
def website(db):
    return Source.objects.update_or_create(
        name="website", defaults={"kind": Source.Kind.WEBSITE, "allowed_origins": [SITE], "rate_limit": 1000}
    )[0]


@pytest.fixture
def ingest_key(website):
    return ApiKey.issue(source=website, scope=ApiKey.Scope.INGEST)[1]


@pytest.fixture
def read_key(website):
    return ApiKey.issue(source=website, scope=ApiKey.Scope.READ)[1]


@pytest.fixture
def site_key(website):
    return ApiKey.issue(source=website, scope=ApiKey.Scope.SITE)[1]


@pytest.fixture
def send(client, ingest_key):
    """POST a body (dict, or raw bytes) to /api/v1/events with the ingest key."""

    def post(body, *, key=ingest_key, content_type="application/json", path="/api/v1/events", **headers):
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
        return client.post(path, data=data, content_type=content_type, **auth, **headers)

    return post
