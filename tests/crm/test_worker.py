from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from crm.celery import app
from crm.models import Contact
from crm.tasks import ping
from tests.conftest import database_url, running_worker


@pytest.mark.django_db(transaction=True)
def test_a_task_round_trips_through_a_real_worker_and_database(celery_worker):
    Contact.objects.create(email="ada@example.com")
    Contact.objects.create(email="alan@example.com")

    result = ping.delay().get(timeout=20)

    assert result["contacts"] == 2


@pytest.mark.django_db(transaction=True)
def test_the_worker_keeps_its_database_connections_and_replaces_one_that_broke(celery_worker):
    """Tasks reuse the worker's connections (two children: at most two backends for six tasks, where each task
    used to open its own); once PostgreSQL has dropped them (a restart), the next task opens a new one, it does
    not fail."""
    backends = {ping.delay().get(timeout=20)["backend"] for _ in range(6)}
    assert len(backends) <= 2

    url = database_url(connection.settings_dict).replace("postgres://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [list(backends)])

    after = {ping.delay().get(timeout=20)["backend"] for _ in range(4)}
    assert not after & backends


@pytest.mark.django_db(transaction=True)
def test_a_task_that_failed_leaves_no_connection_for_the_next():
    """A worker of one child keeps its connection from task to task, and drops it after a task that failed (what
    that task left open, a lock or a transaction, goes with it)."""
    with running_worker(concurrency=1, queue="solo"):
        first = ping.apply_async(queue="solo").get(timeout=20)["backend"]
        assert ping.apply_async(queue="solo").get(timeout=20)["backend"] == first

        app.send_task("scoring.tasks.full_rescore", args=[-1], queue="solo")  # fails: there is no run -1

        assert ping.apply_async(queue="solo").get(timeout=20)["backend"] != first
