"""One Redis client per process for the app's own keys (rate limits, coalescing, heartbeats)."""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings


@cache
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def script(source: str) -> redis.commands.core.Script:
    """A Lua script on the app's Redis, called by EVALSHA: sent once per Redis server (again after a restart,
    on NOSCRIPT), not per call."""
    return _registered(get_redis(), source)


@cache
def _registered(client: redis.Redis, source: str) -> redis.commands.core.Script:
    return client.register_script(source)  # per client: a new client (another REDIS_URL) registers it again
