"""When to try a job again: capped exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

from config import Settings


@dataclass(frozen=True)
class RetryPolicy:
    """Delay before attempt n+1 = min(cap, base * factor**(n-1)) scaled by 1 ± jitter."""

    max_attempts: int = 3
    base: float = 5.0
    factor: float = 2.0
    max_delay: float = 600.0
    jitter: float = 0.25

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.max_attempts,
            base=settings.retry_base,
            factor=settings.retry_factor,
            max_delay=settings.retry_max_delay,
            jitter=settings.retry_jitter,
        )

    def delay(self, attempts_made: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after `attempts_made` failed attempts (>= 1)."""
        raw = min(self.max_delay, self.base * self.factor ** max(attempts_made - 1, 0))
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return max(0.0, min(self.max_delay, raw * spread))

    def should_retry(self, attempts_made: int, max_attempts: int | None = None) -> bool:
        return attempts_made < (max_attempts or self.max_attempts)
