"""How submit spaces its attempts after a retryable failure."""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of idempotent calls (submit) after UNAVAILABLE, or RESOURCE_EXHAUSTED with a retry-after."""

    max_attempts: int = 5
    """Attempts in all, the first included; 1 disables retrying."""
    initial_backoff: float = 0.1
    """Seconds before the second attempt, before jitter."""
    max_backoff: float = 5.0
    """Ceiling of the delay in seconds, before jitter."""


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
