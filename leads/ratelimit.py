"""Per-source rate limit: an atomic token bucket in Redis (one Lua call, no read-then-write race)."""

from __future__ import annotations

import logging
import math

import redis

from crm.redis_client import script
from leads import errors
from leads.models import Source

log = logging.getLogger(__name__)

# KEYS[1] bucket; ARGV rate (tokens/s), burst, cost. Returns 0 when taken, else seconds to wait.
TOKEN_BUCKET = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


def burst_of(source: Source) -> int:
    """Twice the rate, and never less than one full batch of 1,000 events."""
    return max(2 * source.rate_limit, 1000)


def take(source: Source, events: int) -> None:
    """Spend ``events`` tokens of the source's bucket, or raise a 429 ApiError with Retry-After.

    Fails open when Redis is unreachable: losing the limit for a moment beats refusing every event.
    """
    try:
        wait = float(
            script(TOKEN_BUCKET)(keys=[f"rate:{source.pk}"], args=[source.rate_limit, burst_of(source), events])
        )
    except redis.RedisError:
        log.warning("rate limit skipped: Redis is unreachable")
        return
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise errors.ApiError(
            429,
            "rate_limited",
            f"Source '{source.name}' is over its rate of {source.rate_limit:,} events/s; retry in {seconds} s.",
            headers={"Retry-After": str(seconds)},
        )
