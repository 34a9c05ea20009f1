"""The Celery app, and the heartbeat by which /healthz knows a worker is alive."""

from __future__ import annotations

import os
import time

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

app = Celery("baton")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

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

        get_redis().zrem(HEARTBEAT_KEY, worker.hostname)

    def beat(self, worker):
        from crm.redis_client import get_redis

        get_redis().zadd(HEARTBEAT_KEY, {worker.hostname: time.time()})


app.steps["worker"].add(Heartbeat)
