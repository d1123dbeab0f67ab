"""How submit spaces its attempts after a retryable failure, within one time budget."""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import AutoglmError, is_retryable


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of idempotent calls (submit) after UNAVAILABLE, or RESOURCE_EXHAUSTED with a retry-after."""

    max_attempts: int = 5
    """Attempts in all, the first included; 1 disables retrying."""
    initial_backoff: float = 0.1
    """Seconds before the second attempt, before jitter."""
    max_backoff: float = 5.0
    """Ceiling of the delay in seconds, before jitter."""


class Budget:
    """One deadline for every attempt of a call and the waits between them.

    Each attempt gets what is left rather than the whole timeout, so a caller's
    ``timeout`` bounds the call however many times it is retried.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._deadline = clock() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative (grpc takes 0 as "already past")."""
        return max(0.0, self._deadline - self._clock())


def backoff_delay(
    failures: int,
    policy: RetryPolicy,
    retry_after: float | None,
    random: Callable[[], float] = _random.random,
) -> float:
    """Seconds to wait after the ``failures``-th consecutive failure (1-based).

    Exponential, capped, with ±20 % jitter so that many clients failing together
    do not come back together; the server's retry-after is a floor.
    """
    exponential = min(policy.max_backoff, policy.initial_backoff * 2.0 ** max(0, failures - 1))
    return max(exponential * (0.8 + 0.4 * random()), retry_after or 0.0)


def retry_delay(
    failures: int,
    policy: RetryPolicy,
    error: AutoglmError,
    remaining: float,
    random: Callable[[], float] = _random.random,
) -> float | None:
    """Seconds to wait before the next attempt, or None when there is to be none.

    None when the error is not retryable, the attempts are spent, or the wait
    (the server's retry-after included) would leave no time for another
    attempt: failing now beats sleeping up to the deadline only to fail then.
    """
    if failures >= policy.max_attempts or not is_retryable(error):
        return None
    delay = backoff_delay(failures, policy, error.retry_after, random)
    return delay if delay < remaining else None
