"""Test-only processors that misbehave on purpose: crash, hang, or run slowly.

Loaded into a worker with `WORKER_PROCESSORS=tests.chaos.chaos_processors:SlowProcessor,...`.
Each start (and each normal finish) drops a marker file in `marker_dir`, named
`<job id>.<attempt>.<pid>.<time_ns>.<event>`, so a test counts runs without trusting the
worker's own bookkeeping.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from processors.base import Context, Item, Params, PermanentError, Processor


def mark(marker_dir: str | None, ctx: Context, event: str) -> None:
    """Drop one marker file for this run of the job (nothing when `marker_dir` is unset)."""
    if not marker_dir:
        return
    name = f"{ctx.job_id}.{ctx.attempt}.{os.getpid()}.{time.time_ns()}.{event}"
    (Path(marker_dir) / name).touch()


def _started_before(marker_dir: str | None, ctx: Context) -> bool:
    """Whether an earlier run of this job left a start marker."""
    return bool(marker_dir) and any(Path(marker_dir).glob(f"{ctx.job_id}.*.start"))


def _applies(times: int, ctx: Context) -> bool:
    """`times` = 0: every attempt; else only the first `times` attempts."""
    return times == 0 or ctx.attempt <= times


class SlowParams(Params):
    seconds: float = Field(default=0.0, ge=0.0)
    first_seconds: float | None = None
    """Seconds for the job's first run (no earlier start marker); later runs use `seconds`."""
    cooperative: bool = False
    """Sleep in small steps honouring the stop flag (else one uninterruptible sleep)."""
    marker_dir: str | None = None


class SlowProcessor(Processor):
    """Sleeps, then answers with its pid; marks every start and finish."""

    name = "chaos_slow"
    Params = SlowParams

    def process(self, params: SlowParams, ctx: Context) -> Any:
        seconds = params.seconds
        if params.first_seconds is not None and not _started_before(params.marker_dir, ctx):
            seconds = params.first_seconds
        mark(params.marker_dir, ctx, "start")
        if params.cooperative:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                ctx.check_stop()
                time.sleep(min(left, 0.05))
        elif seconds:
            time.sleep(seconds)
        mark(params.marker_dir, ctx, "done")
        return {"pid": os.getpid(), "attempt": ctx.attempt}


class CrashParams(Params):
    mode: Literal["exit", "sigkill", "kill_supervisor"] = "sigkill"
    """`exit`: os._exit(code); `sigkill`: SIGKILL itself; `kill_supervisor`: SIGKILL its parent."""
    code: int = 3
    times: int = Field(default=0, ge=0)
    """Crash on the first `times` attempts only (0 = always); later attempts succeed."""
    marker_dir: str | None = None


class CrashProcessor(Processor):
    """Takes down its executor (or its whole worker) the hard way."""

    name = "chaos_crash"
    Params = CrashParams

    def process(self, params: CrashParams, ctx: Context) -> Any:
        mark(params.marker_dir, ctx, "start")
        if not _applies(params.times, ctx):
            mark(params.marker_dir, ctx, "done")
            return {"pid": os.getpid(), "attempt": ctx.attempt}
        if params.mode == "exit":
            os._exit(params.code)
        if params.mode == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(3600)  # the executor exits once it sees its supervisor is gone
        return None


class HangParams(Params):
    seconds: float = Field(default=3600.0, ge=0.0)
    times: int = Field(default=0, ge=0)
    """Hang on the first `times` attempts only (0 = always)."""
    hold_gil: bool = False
    """Block in native code *holding the GIL* (libc sleep through ctypes.PyDLL)."""
    marker_dir: str | None = None


class HangProcessor(Processor):
    """Blocks in native code, ignoring any stop request."""

    name = "chaos_hang"
    Params = HangParams

    def process(self, params: HangParams, ctx: Context) -> Any:
        mark(params.marker_dir, ctx, "start")
        if _applies(params.times, ctx):
            if params.hold_gil:
                # PyDLL keeps the GIL through the call: no Python thread of this process
                # runs until it returns.
                ctypes.PyDLL(None).sleep(ctypes.c_uint(int(params.seconds)))
            else:
                time.sleep(params.seconds)
        mark(params.marker_dir, ctx, "done")
        return {"pid": os.getpid(), "attempt": ctx.attempt}


class FloodParams(Params):
    seconds: float = Field(default=10.0, ge=0.0)
    rows: bool = True
    """Also emit a frame-result row with every progress report."""
    cooperative: bool = False
    marker_dir: str | None = None


class FloodProcessor(Processor):
    """Floods the supervisor with progress (a new stage each time, so no throttle holds it
    back) and rows for `seconds`, never pausing: the periodic duties must still run."""

    name = "chaos_flood"
    Params = FloodParams

    def process(self, params: FloodParams, ctx: Context) -> Any:
        mark(params.marker_dir, ctx, "start")
        end = time.monotonic() + params.seconds
        i = 0
        while time.monotonic() < end:
            if params.cooperative:
                ctx.check_stop()
            ctx.progress(min(0.99, i / 1e6), f"stage-{i % 7}")
            if params.rows:
                ctx.emit("frame_results", [{"frame_index": i, "timestamp": i / 25}])
            i += 1
            time.sleep(0.001)
        mark(params.marker_dir, ctx, "finish")
        return {"reports": i}


class BatchParams(Params):
    mode: Literal["ok", "segv", "hang", "raise", "fail"] = "ok"
    """`segv`: the executor segfaults whenever this job is in the call; `hang`: the call
    never returns; `raise`: the whole call raises; `fail`: only this item fails."""
    seconds: float = Field(default=0.0, ge=0.0)
    first_seconds: float | None = None
    """Seconds for the job's first run (no earlier start marker); later runs use `seconds`."""
    marker_dir: str | None = None


class BatchProcessor(Processor):
    """Batches up to 8 jobs; one bad member can sink the whole call on purpose."""

    name = "chaos_batch"
    Params = BatchParams
    batch_size = 8

    def process(self, params: BatchParams, ctx: Context) -> Any:
        return self._call([Item(params, params, ctx)])[0]

    def process_batch(self, items: list[Item]) -> list[Any]:
        return self._call(items)

    def _call(self, items: list[Item]) -> list[Any]:
        seconds = 0.0
        for item in items:
            p = item.params
            first = p.first_seconds is not None and not _started_before(p.marker_dir, item.ctx)
            seconds = max(seconds, p.first_seconds if first and p.first_seconds else p.seconds)
            mark(p.marker_dir, item.ctx, "start")
        modes = {item.params.mode for item in items}
        if "segv" in modes:
            ctypes.string_at(0)  # a real segfault of the executor process
        if "hang" in modes:
            time.sleep(600)
        if "raise" in modes:
            raise RuntimeError("a member broke the whole call")
        time.sleep(seconds)
        out: list[Any] = []
        for item in items:
            mark(item.params.marker_dir, item.ctx, "done")
            if item.params.mode == "fail":
                out.append(PermanentError(f"{item.ctx.job_id} failed on its own"))
            else:
                out.append({"pid": os.getpid(), "batch": len(items)})
        return out


class PrepareProcessor(Processor):
    """Prepares on the executor's prepare thread when it can (a `prepare` marker), then
    sleeps in `process`; the result says on which thread its input was prepared."""

    name = "chaos_prepare"
    Params = SlowParams

    def prepare(self, params: SlowParams, ctx: Context) -> dict[str, Any]:
        mark(params.marker_dir, ctx, "prepare")
        return {"params": params, "thread": threading.current_thread().name}

    def process(self, prepared: dict[str, Any], ctx: Context) -> Any:
        params = prepared["params"]
        mark(params.marker_dir, ctx, "start")
        time.sleep(params.seconds)
        mark(params.marker_dir, ctx, "done")
        return {"prepared_on": prepared["thread"], "pid": os.getpid()}


PROCESSORS = ",".join(
    f"{__name__}:{cls.__name__}"
    for cls in (
        SlowProcessor,
        CrashProcessor,
        HangProcessor,
        FloodProcessor,
        BatchProcessor,
        PrepareProcessor,
    )
)
"""The `WORKER_PROCESSORS` value that loads every chaos processor."""
