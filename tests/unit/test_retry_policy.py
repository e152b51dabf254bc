"""Capped exponential backoff with jitter."""

from __future__ import annotations

import random

from worker.retry_policy import RetryPolicy


def test_delays_grow_by_the_factor_without_jitter() -> None:
    policy = RetryPolicy(base=5, factor=2, max_delay=600, jitter=0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]


def test_delay_is_capped() -> None:
    policy = RetryPolicy(base=5, factor=2, max_delay=600, jitter=0)
    assert policy.delay(20) == 600


def test_jitter_stays_within_its_band_and_varies() -> None:
    policy = RetryPolicy(base=10, factor=2, max_delay=600, jitter=0.25)
    rng = random.Random(1)
    delays = [policy.delay(1, rng) for _ in range(200)]
    assert all(7.5 <= d <= 12.5 for d in delays)
    assert len({round(d, 3) for d in delays}) > 100


def test_jitter_never_exceeds_the_cap() -> None:
    policy = RetryPolicy(base=5, factor=2, max_delay=600, jitter=0.5)
    assert all(policy.delay(30, random.Random(i)) <= 600 for i in range(100))


def test_retries_stop_at_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.should_retry(n) for n in (1, 2, 3)] == [True, True, False]
    assert policy.should_retry(3, max_attempts=5)
