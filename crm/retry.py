"""Transactions that lost a deadlock are run again: the database broke the cycle by failing one of them."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from django.db import OperationalError, connection
from psycopg import errors

log = logging.getLogger(__name__)
ATTEMPTS = 8


def retrying[T](work: Callable[[], T]) -> T:
    """Run ``work`` (one transaction of its own); after a deadlock or a serialization failure, again, up to
    ATTEMPTS times with a short random pause. Inside a caller's transaction it runs once: the caller's
    transaction is the one to repeat."""
    if connection.in_atomic_block:
        return work()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return work()
        except OperationalError as e:
            if attempt == ATTEMPTS or not isinstance(
                e.__cause__, errors.DeadlockDetected | errors.SerializationFailure
            ):
                raise
            log.warning("transaction lost a deadlock, running it again (%d of %d)", attempt + 1, ATTEMPTS)
            time.sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))
    raise AssertionError("unreachable")
