from __future__ import annotations

import time

import pytest
import time_machine

from crm.redis_client import get_redis


@pytest.mark.django_db(transaction=True)
def test_healthz_is_ok_when_database_redis_and_a_worker_are_alive(client, celery_worker):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "redis": "ok", "worker": "ok"}
    assert body["workers"] >= 1


@pytest.mark.django_db(transaction=True)
def test_healthz_is_503_when_no_worker_beat_recently(client, celery_worker):
    with time_machine.travel(time.time() + 300, tick=False):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"]["worker"] == "down"


@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    get_redis.cache_clear()
    try:
        response = client.get("/healthz")
    finally:
        get_redis.cache_clear()

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "down", "worker": "down"}


def test_healthz_needs_no_login(client, db):
    assert client.get("/healthz").status_code in (200, 503)
