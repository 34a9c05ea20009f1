"""Per-source rate limit: an atomic token bucket in Redis per source, taken before a request stores anything, so
that a refused request stores nothing.

A process takes a source's tokens in leases: up to a fiftieth of a second's worth of its rate (never less than
the request costs), spent here until they run out or the lease lapses (LEASE_SECONDS). A busy source costs one
Redis call per lease rather than per request; a quiet or slow one, one per request. Tokens a lapsed lease leaves
unspent are lost: at most a fiftieth of the rate per process and second.

A process that was refused for a source refuses its requests at once, without storing them first (or calling
Redis), until the wait it told the client has passed.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass

import redis

from crm.redis_client import script
from leads import errors
from leads.models import Source

log = logging.getLogger(__name__)
LEASE_SECONDS = 1.0
LEASES_PER_SECOND = 50  # a lease holds at most this fraction of a second's rate

# KEYS: the source's bucket. ARGV: its rate (tokens/s), its burst, the least to take, the most to take.
# Returns {tokens taken, '0'}, or {0, the seconds until the least would be there} (and takes nothing).
TAKE = """
local rate, burst, least, most = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
if tokens < least then
    return {0, tostring((least - tokens) / rate)}
end
local taken = math.min(most, math.floor(tokens))
redis.call('HSET', KEYS[1], 'tokens', tokens - taken, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {taken, '0'}
"""


class Refused(errors.ApiError):
    """The 429: the source is over its rate."""


@dataclass
class _Lease:
    tokens: int
    until: float  # time.monotonic()


# Per (source id, its rate): a new rate starts afresh.
_leases: dict[tuple[int, int], _Lease] = {}
_refused_until: dict[tuple[int, int], float] = {}
os.register_at_fork(after_in_child=_leases.clear)  # a forked child takes its own


def burst_of(source: Source) -> int:
    """Twice the rate, and never less than one full batch of 1,000 events."""
    return max(2 * source.rate_limit, 1000)


def take(source: Source, events: int) -> None:
    """Take ``events`` tokens (at least one) of ``source``'s rate, from this process's lease or else from Redis.
    Raises the 429 when the bucket is short. Fails open when Redis is unreachable."""
    cost = max(1, events)
    key = (source.pk, source.rate_limit)
    now = time.monotonic()
    wait = _refused_until.get(key, 0.0) - now
    if wait > 0:
        raise _refusal(source, wait)
    lease = _leases.get(key)
    held = lease.tokens if lease is not None and lease.until > now else 0
    if held >= cost:
        lease.tokens -= cost
        return
    least = cost - held  # what the lease holds is spent first
    most = max(least, source.rate_limit // LEASES_PER_SECOND)
    try:
        taken, wait = script(TAKE)(keys=[f"rate:{source.pk}"], args=[source.rate_limit, burst_of(source), least, most])
    except (redis.RedisError, OSError) as e:
        log.warning("rate limit not applied (%s)", e)
        return
    if float(wait) > 0:
        raise _refusal(source, float(wait))
    _leases[key] = _Lease(tokens=held + int(taken) - cost, until=now + LEASE_SECONDS)


def _refusal(source: Source, wait: float) -> Refused:
    """The 429 for a source short of tokens for ``wait`` seconds (remembered by this process until then)."""
    seconds = max(1, math.ceil(wait))
    key = (source.pk, source.rate_limit)
    _refused_until[key] = max(_refused_until.get(key, 0.0), time.monotonic() + wait)
    return Refused(
        429,
        "rate_limited",
        f"Source '{source.name}' is over its rate of {source.rate_limit:,} events/s; retry in {seconds} s.",
        headers={"Retry-After": str(seconds)},
    )
