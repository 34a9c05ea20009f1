"""What /healthz checks: the database, the broker and a live worker."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection

from crm.celery import HEARTBEAT_KEY
from crm.redis_client import get_redis


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def redis_ok() -> bool:
    try:
        return bool(get_redis().ping())
    except Exception:
        return False


def live_workers() -> int:
    """How many workers sent a heartbeat within ``WORKER_HEARTBEAT_TTL`` seconds (0 if Redis is down)."""
    try:
        return get_redis().zcount(HEARTBEAT_KEY, time.time() - settings.WORKER_HEARTBEAT_TTL, "+inf")
    except Exception:
        return 0


def report() -> dict[str, object]:
    checks = {"database": database_ok(), "redis": redis_ok()}
    workers = live_workers() if checks["redis"] else 0
    checks["worker"] = workers > 0
    return {
        "status": "ok" if all(checks.values()) else "unavailable",
        "checks": {name: "ok" if ok else "down" for name, ok in checks.items()},
        "workers": workers,
    }
