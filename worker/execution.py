"""Running one job against resident processors: the executor's side of the work.

Used in-process (`WORKER_ISOLATION=inline`) or inside the long-lived executor process.
Knows processors, not Redis or SQL: the supervisor hands it a task and callbacks.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError

from config import Settings
from processors.base import (
    Context,
    PermanentError,
    Processor,
    StopRequested,
    TransientError,
    resolve_device,
)
from processors.registry import get_processor_class, load_configured
from worker.callbacks import JobCallbacks, ProgressThrottle
from worker.outcome import Outcome


@dataclass
class Task:
    """What the supervisor hands the executor for one job (JSON over the pipe)."""

    job_id: str
    processor: str
    params: dict[str, Any]
    attempt: int
    worker_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class JobRunner:
    """Keeps processors loaded (once per process) and runs tasks on them."""

    settings: Settings
    device: str = ""
    processors: dict[str, Processor] = field(default_factory=dict)
    loads: list[tuple[str, float]] = field(default_factory=list)
    """(processor, seconds) of each load since `worker.gpu.child_report` last took them."""
    on_load: Callable[[], None] | None = None
    """Called after each load (the executor child reports it at once: the job may crash)."""

    def __post_init__(self) -> None:
        if not self.device:
            self.device = resolve_device(self.settings.device)
        if self.settings.torch_threads > 0:
            import torch

            torch.set_num_threads(self.settings.torch_threads)
        load_configured(self.settings.processors)

    def processor(self, name: str) -> Processor:
        """The loaded processor for `name`, loading it on first use."""
        proc = self.processors.get(name)
        if proc is None:
            cls = get_processor_class(name)
            loading = time.perf_counter()
            proc = cls(self.settings)
            proc.load(self.device)
            self.loads.append((name, time.perf_counter() - loading))
            if self.on_load is not None:
                self.on_load()
            self.processors[name] = proc
        return proc

    def preload(self, names: list[str]) -> None:
        for name in names:
            self.processor(name)

    def run(self, task: Task, callbacks: JobCallbacks) -> Outcome:
        """Run one task; never raises (every failure becomes an Outcome)."""
        started = time.perf_counter()
        # A lazy proxy: the logger is only built if the job logs.
        log = structlog.get_logger(
            "stoker.job", job_id=task.job_id, worker_id=task.worker_id, processor=task.processor
        )
        try:
            proc = self.processor(task.processor)
            try:
                params = proc.Params.model_validate(task.params)
            except ValidationError as exc:
                raise PermanentError(
                    f"invalid params for {task.processor}: {_describe(exc)}"
                ) from None
            ctx = Context(
                job_id=task.job_id,
                device=self.device,
                log=log,
                settings=self.settings,
                attempt=task.attempt,
                _progress=_throttled(callbacks, task.job_id, self.settings.progress_interval),
                _emit=lambda kind, rows: callbacks.rows(task.job_id, kind, rows),
                _job_result=callbacks.job_result,
                _stop=callbacks.stop_requested,
            )
            result = proc.process(params, ctx)
            try:
                result = json.loads(json.dumps(result))
            except (TypeError, ValueError) as exc:
                raise PermanentError(f"result is not JSON-serializable: {exc}") from None
            return Outcome("succeeded", result=result, duration=time.perf_counter() - started)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            outcome = classify(exc)
            outcome.duration = time.perf_counter() - started
            if outcome.oom:
                free_gpu_memory()
            return outcome


def _throttled(
    callbacks: JobCallbacks, job_id: str, interval: float
) -> Callable[[float, str | None], None]:
    throttle = ProgressThrottle(interval)

    def progress(fraction: float, stage: str | None) -> None:
        if throttle.ready(stage, fraction):
            callbacks.progress(job_id, fraction, stage)

    return progress


def check_processor_config(settings: Settings) -> None:
    """Run every available processor's `check_config`: a bad configuration fails at startup.

    Raises ConfigError. Processors whose optional dependencies are not installed are skipped.
    """
    from processors.registry import BUILTINS, known_names

    load_configured(settings.processors)
    for name in sorted(known_names()):
        try:
            cls = get_processor_class(name)
        except Exception as exc:
            if name not in BUILTINS or BUILTINS[name][1] is None:
                structlog.get_logger("stoker.executor").warning(
                    "processor unavailable", processor=name, error=str(exc)
                )
            continue
        cls.check_config(settings)


def classify(exc: BaseException) -> Outcome:
    """Permanent for PermanentError; interrupted for a requested stop; else transient."""
    tb = "".join(traceback.format_exception(exc))
    name = type(exc).__name__
    if isinstance(exc, StopRequested):
        return Outcome("interrupted", error_type=name, message=str(exc), traceback=tb)
    if isinstance(exc, PermanentError):
        return Outcome("error", error_type=name, message=str(exc), traceback=tb, permanent=True)
    retry_after = exc.retry_after if isinstance(exc, TransientError) else None
    oom = _is_cuda_oom(exc)
    message = str(exc) or name
    return Outcome(
        "error", error_type=name, message=message, traceback=tb, retry_after=retry_after, oom=oom
    )


def _is_cuda_oom(exc: BaseException) -> bool:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    return "CUDA out of memory" in str(exc)


def free_gpu_memory() -> None:
    """Release cached CUDA memory (after an out-of-memory error)."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
    )
