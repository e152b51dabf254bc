"""The errors processors raise on purpose, shared by every processor family.

- `PermanentError`: bad input or an unsupported format; the job fails at once.
- `TransientError`: worth retrying (`retry_after` seconds at the least, when given).
- `StopRequested`: the worker asked the job to stop (raised by `Context.check_stop`).
- `ConfigError`: unusable configuration, found at worker startup, not at job time.
"""

from __future__ import annotations


class ProcessorError(Exception):
    """Base of the errors a processor raises on purpose."""


class PermanentError(ProcessorError):
    """Bad input or an unsupported format: the job fails at once, without retries."""


class TransientError(ProcessorError):
    """A failure worth retrying (a busy server, a lost connection, out of GPU memory).

    `retry_after` (seconds), when given, is the shortest delay before the next attempt.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigError(Exception):
    """A processor's configuration is unusable; raised at worker startup, not at job time."""


class StopRequested(ProcessorError):
    """Raised by `Context.check_stop()` when the worker asked the job to stop."""
