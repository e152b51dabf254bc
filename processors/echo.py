"""`echo`: a tiny processor for smoke tests and benchmarks (it batches: the default
`process_batch`, one `process` per job)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from processors.base import Context, Params, PermanentError, Processor, TransientError
from processors.registry import register


class EchoParams(Params):
    text: str = ""
    sleep: float = Field(default=0.0, ge=0.0, le=86400.0)
    """Seconds to sleep (in small steps, honouring the stop flag)."""
    fail: str | None = None
    """`transient` or `permanent`: raise that error instead of answering."""
    fail_times: int = Field(default=0, ge=0)
    """With `fail`, fail only the first N attempts (0 = always)."""


@register
class EchoProcessor(Processor):
    """Returns its text; can sleep and fail on request."""

    name = "echo"
    Params = EchoParams
    batch_size = 32  # batches of echo jobs measure the worker's own overhead per job

    def process(self, params: EchoParams, ctx: Context) -> Any:
        if params.sleep:
            deadline = time.monotonic() + params.sleep
            while (left := deadline - time.monotonic()) > 0:
                ctx.check_stop()
                time.sleep(min(left, 0.05))
                ctx.progress(1 - left / params.sleep, "sleep")
        if params.fail and (params.fail_times == 0 or ctx.attempt <= params.fail_times):
            if params.fail == "permanent":
                raise PermanentError(f"echo was asked to fail: {params.text}")
            raise TransientError(f"echo was asked to fail: {params.text}")
        return {"text": params.text}
