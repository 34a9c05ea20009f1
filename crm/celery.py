"""The Celery app, and the heartbeat by which /healthz knows a worker is alive."""

from __future__ import annotations

import logging
import os
import time

import kombu.exceptions
import redis
from celery import Celery, bootsteps, signals
from celery.utils.threads import bound_open_broker_sockets
from celery.worker.consumer import Consumer as BaseConsumer
from celery.worker.consumer.consumer import COLLECT_SOCKET_TIMEOUT
from django.db import close_old_connections, connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

logger = logging.getLogger(__name__)


class Consumer(BaseConsumer):
    """Celery 5.7.0's consumer, minus the second close of a broken broker connection.

    After a connection error the stock handler collect()s the connection and then close()s it again
    (celery#10242). collect() has already dropped the transport's client; if Redis was down, the first
    pass left the task channel half-closed, so the second pass reopens a pool on it and kombu fails in
    _connparams with AttributeError: 'NoneType' object has no attribute 'hostname'. That is not a
    connection error, so it escapes the reconnect handler: "Unrecoverable error", the worker exits.
    Here the connection is collected once (with the same socket bound) and handed on already released.
    """

    def on_connection_error_after_connected(self, exc):
        connection = self.connection
        if connection is not None:
            bound_open_broker_sockets(connection, COLLECT_SOCKET_TIMEOUT)
            try:
                connection.collect(socket_timeout=COLLECT_SOCKET_TIMEOUT)
            except Exception:  # teardown of a dead connection: nothing left to save
                logger.debug("collecting the broken broker connection failed", exc_info=True)
            self.connection = None
        super().on_connection_error_after_connected(exc)


app = Celery("baton")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes every database connection before and after each task unless told to reuse them (for
# DB_REUSE_MAX tasks): each small rescore then paid for a new PostgreSQL backend and planned its statement afresh.
# Connections are kept instead, looked at before each task and dropped after one that failed.
app.conf.update(CELERY_DB_REUSE_MAX=1000)
app.autodiscover_tasks()


@signals.task_prerun.connect
def usable_connections(task, **_kwargs) -> None:
    """Before each task, a kept connection that no longer answers (PostgreSQL restarted) or has outlived
    CONN_MAX_AGE is closed: the task opens a new one. (A task run inline keeps its caller's.)"""
    if task.request.is_eager:
        return
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.in_atomic_block and not conn.is_usable():
            conn.close()
    close_old_connections()


@signals.task_postrun.connect
def no_connection_after_a_failure(task, state, **_kwargs) -> None:
    """After a task that did not succeed (an error, a time limit, a retry), its connections are closed: a lock or
    transaction it could not end (a time limit striking in a ``finally``) goes with them."""
    if state != "SUCCESS" and not task.request.is_eager:
        for conn in connections.all(initialized_only=True):
            conn.close()


BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.RedisError, OSError)


def send_soon(name: str, args: list | None = None, *, what: str) -> bool:
    """Queue task ``name`` (by name: no app imports another's tasks). A broker outage is logged, never raised:
    the change that asked stands, and a sweeper (or nobody, for an email) makes up for it. Returns whether sent."""
    try:  # No result is read: asked for one, Celery retried Redis as the result store for 20 s, then raised.
        app.send_task(name, args=args or [], ignore_result=True)
        return True
    except BROKER_ERRORS as e:
        logger.warning("%s not queued (%s)", what, e)
        return False


HEARTBEAT_KEY = "baton:workers"


class Heartbeat(bootsteps.StartStopStep):
    """Every few seconds the worker stamps its hostname into a Redis sorted set (score = unix time)."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker):
        from django.conf import settings

        self.beat(worker)
        self.tref = worker.timer.call_repeatedly(settings.WORKER_HEARTBEAT_SECONDS, self.beat, (worker,))

    def stop(self, worker):
        if self.tref:
            self.tref.cancel()
        from crm.redis_client import get_redis

        try:
            get_redis().zrem(HEARTBEAT_KEY, worker.hostname)
        except redis.RedisError as exc:  # the entry ages out after WORKER_HEARTBEAT_TTL anyway
            logger.warning("could not remove the worker heartbeat: %r", exc)

    def beat(self, worker):
        from crm.redis_client import get_redis

        # This runs on the event loop's timer, which re-raises broker connection errors (redis.ConnectionError,
        # TimeoutError, OSError) into the consumer: a missed stamp would tear down a healthy broker connection.
        # A missed stamp is harmless: /healthz sees the stamp go stale.
        try:
            get_redis().zadd(HEARTBEAT_KEY, {worker.hostname: time.time()})
        except redis.RedisError as exc:
            logger.warning("worker heartbeat failed: %r", exc)


app.steps["worker"].add(Heartbeat)
