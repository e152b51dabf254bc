"""Running one job against resident processors: the executor's side of the work.

Used in-process (`WORKER_ISOLATION=inline`) or inside the long-lived executor process.
Knows processors, not Redis or SQL: the supervisor hands it a task and callbacks.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError

from config import Settings
from processors.base import (
    Context,
    Item,
    PermanentError,
    Processor,
    StopRequested,
    TransientError,
    resolve_device,
)
from processors.registry import get_processor_class, load_configured
from worker.callbacks import JobCallbacks, NoCallbacks, ProgressThrottle
from worker.outcome import Outcome


@dataclass
class Task:
    """What the supervisor hands the executor for one job (JSON over the pipe)."""

    job_id: str
    processor: str
    params: dict[str, Any]
    attempt: int
    worker_id: str = ""

    @classmethod
    def of(cls, job: Any, worker_id: str) -> Task:
        """The task for the next attempt of `job` (a `worker.protocol.Job`)."""
        return cls(job.id, job.processor, job.params, job.attempts + 1, worker_id)

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
    prepare_seconds: float = 0.0
    """Seconds spent in `prepare` on the prepare thread."""
    prepare_waited: float = 0.0
    """Seconds jobs waited for an input still being prepared."""
    device_idle: float = 0.0
    """Seconds between the end of one processing call and the start of the next."""
    _free_since: float | None = None
    _prepared: dict[str, Future[Any]] = field(default_factory=dict)
    _pool: ThreadPoolExecutor | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

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

    def capabilities(self) -> dict[str, Any]:
        """What the supervisor plans fetches with: the batch size of every processor that
        batches, and the processors whose inputs are prepared ahead."""
        from processors.registry import known_names

        batch_sizes, preparers = {}, []
        for name in sorted(known_names()):
            try:
                cls = get_processor_class(name)
            except Exception:
                continue  # not installed: its jobs fail with the reason when they run
            if (size := cls.batch_limit(self.settings)) > 1:
                batch_sizes[name] = size
            if cls.prepares():
                preparers.append(name)
        return {"batch_sizes": batch_sizes, "preparers": preparers}

    def run(self, task: Task, callbacks: JobCallbacks) -> Outcome:
        """Run one task; never raises (every failure becomes an Outcome)."""
        started = time.perf_counter()
        try:
            proc = self.processor(task.processor)
            params, ctx = self._params(proc, task), self._context(task, callbacks)
            prepared = self._input(proc, task, params, ctx)
            self._device_busy()
            try:
                result = proc.process(prepared, ctx)
            finally:
                self._device_free()
            return _succeeded(result, time.perf_counter() - started)
        except BaseException as exc:
            return self._failed(exc, started)

    def run_batch(self, tasks: list[Task], callbacks: JobCallbacks) -> Outcome | list[Outcome]:
        """Run tasks of one processor in one `process_batch` call: one Outcome per task,
        or one Outcome for the whole call when it failed as a whole (it raised, or
        broke its contract). Never raises."""
        started = time.perf_counter()
        outcomes: list[Outcome | None] = [None] * len(tasks)
        items: list[tuple[int, Item]] = []
        try:
            proc = self.processor(tasks[0].processor)
        except BaseException as exc:
            return self._failed(exc, started)
        for i, task in enumerate(tasks):
            try:
                params, ctx = self._params(proc, task), self._context(task, callbacks)
                items.append((i, Item(params, self._input(proc, task, params, ctx), ctx)))
            except BaseException as exc:
                outcomes[i] = self._failed(exc, started)
        if items:
            self._device_busy()
            try:
                results = proc.process_batch([item for _, item in items])
                if not isinstance(results, list) or len(results) != len(items):
                    count = len(results) if isinstance(results, list) else type(results).__name__
                    raise PermanentError(
                        f"process_batch returned {count} results for {len(items)} jobs"
                    )
            except BaseException as exc:
                return self._failed(exc, started)
            finally:
                self._device_free()
            duration = time.perf_counter() - started
            for (i, _), result in zip(items, results, strict=True):
                if isinstance(result, BaseException):
                    outcomes[i] = self._failed(result, started)
                else:
                    try:
                        outcomes[i] = _succeeded(result, duration)
                    except BaseException as exc:
                        outcomes[i] = self._failed(exc, started)
        return [o for o in outcomes if o is not None]

    # Device idle time: from the end of one `process`/`process_batch` call to the start of
    # the next (what preparing inputs ahead shrinks).
    def _device_busy(self) -> None:
        if self._free_since is not None:
            self.device_idle += time.perf_counter() - self._free_since
            self._free_since = None

    def _device_free(self) -> None:
        self._free_since = time.perf_counter()

    def _params(self, proc: Processor, task: Task) -> Any:
        try:
            return proc.Params.model_validate(task.params)
        except ValidationError as exc:
            raise PermanentError(f"invalid params for {task.processor}: {_describe(exc)}") from None

    def _context(self, task: Task, callbacks: JobCallbacks) -> Context:
        # A lazy proxy: the logger is only built if the job logs.
        log = structlog.get_logger(
            "stoker.job", job_id=task.job_id, worker_id=task.worker_id, processor=task.processor
        )
        return Context(
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

    # Inputs prepared ahead: `prepare` of the next job runs on one CPU thread while the
    # current job runs; at most one batch is held ahead (older, unused ones are dropped).
    def prepare_ahead(self, tasks: list[Task]) -> None:
        """Start preparing `tasks` (the next job or batch) on the prepare thread. Its
        context reports nothing (another job is running) and never asks to stop."""
        with self._lock:
            self.drop_prepared()
            for task in tasks:
                # Only a loaded processor: loading is the running thread's business.
                proc = self.processors.get(task.processor)
                if proc is None or not proc.prepares():
                    continue
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="stoker-prepare")
                self._prepared[task.job_id] = self._pool.submit(
                    self._prepare_one, proc, task, self._context(task, NoCallbacks())
                )

    def _prepare_one(self, proc: Processor, task: Task, ctx: Context) -> Any:
        began = time.perf_counter()
        prepared = proc.prepare(self._params(proc, task), ctx)
        self.prepare_seconds += time.perf_counter() - began
        return prepared

    def _input(self, proc: Processor, task: Task, params: Any, ctx: Context) -> Any:
        """What `process` receives: the input prepared ahead, else prepared now."""
        with self._lock:
            future = self._prepared.pop(task.job_id, None)
        if future is not None:
            waited = time.perf_counter()
            try:
                return future.result()
            finally:
                self.prepare_waited += time.perf_counter() - waited
        if not proc.prepares():
            return params
        return proc.prepare(params, ctx)

    def drop_prepared(self) -> None:
        """Forget inputs prepared for jobs that will not run here (closing them).
        Called with the lock held, or when no other thread prepares."""
        for future in self._prepared.values():
            future.add_done_callback(_close_prepared)
        self._prepared.clear()

    def close(self) -> None:
        with self._lock:
            self.drop_prepared()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for proc in self.processors.values():
            proc.close()

    def _failed(self, exc: BaseException, started: float) -> Outcome:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise exc
        outcome = classify(exc)
        outcome.duration = time.perf_counter() - started
        if outcome.oom:
            free_gpu_memory()
        return outcome


def _succeeded(result: Any, duration: float) -> Outcome:
    try:
        result = json.loads(json.dumps(result))
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"result is not JSON-serializable: {exc}") from None
    return Outcome("succeeded", result=result, duration=duration)


def _close_prepared(future: Future[Any]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    close = getattr(future.result(), "close", None)
    if callable(close):
        with contextlib.suppress(Exception):  # best effort on an input nobody will use
            close()


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
