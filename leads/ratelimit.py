"""Per-source rate limit: an atomic token bucket in Redis, taken in the same Lua call as ingest's rescore nudge
(crm.freshness.nudge), inside the transaction that stores the events, so that a refused request stores nothing.

A process that was refused for a source refuses its requests at once, without storing them first, until the wait
it told the client has passed: an over-limit flood costs no database work.
"""

from __future__ import annotations

import math
import time

from crm.freshness import Bucket
from leads import errors
from leads.models import Source

# (source id, its rate) -> time.monotonic() until which this process refuses it; a new rate starts afresh
_refused_until: dict[tuple[int, int], float] = {}


def burst_of(source: Source) -> int:
    """Twice the rate, and never less than one full batch of 1,000 events."""
    return max(2 * source.rate_limit, 1000)


def bucket(source: Source, events: int) -> Bucket:
    """The tokens ``events`` events of ``source`` take; raises the 429 at once while this process knows the
    source is over its rate."""
    wait = _refused_until.get((source.pk, source.rate_limit), 0.0) - time.monotonic()
    if wait > 0:
        raise refusal(source, wait)
    return Bucket(key=f"rate:{source.pk}", rate=source.rate_limit, burst=burst_of(source), cost=max(1, events))


def refusal(source: Source, wait: float) -> errors.ApiError:
    """The 429 for a source short of tokens for ``wait`` seconds (remembered by this process until then)."""
    seconds = max(1, math.ceil(wait))
    key = (source.pk, source.rate_limit)
    _refused_until[key] = max(_refused_until.get(key, 0.0), time.monotonic() + wait)
    return errors.ApiError(
        429,
        "rate_limited",
        f"Source '{source.name}' is over its rate of {source.rate_limit:,} events/s; retry in {seconds} s.",
        headers={"Retry-After": str(seconds)},
    )
