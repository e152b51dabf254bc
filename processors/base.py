"""The processor interface: what every processor implements and what it is given.

A processor knows nothing of Redis or SQL. The worker calls `load(device)` once per
executor process (models stay resident across jobs), validates each job's `params`
with the processor's pydantic `Params` model, and calls `process(params, ctx)`.

Two optional splits (both opt-in; a processor that uses neither runs as before):
- `prepare(params, ctx)` does a job's CPU work (decode, tokenize, read files) and returns
  the input `process` receives instead of the params. The executor prepares the next job
  on a CPU thread while the current one runs, so the device does not wait for decoding.
- `batch_size > 1` with `process_batch(items)`: several jobs of this processor in one
  call, one result or Exception per item, in order. A batch of one always runs `process`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from config import Settings, get_settings
from processors.errors import (
    ConfigError,
    PermanentError,
    ProcessorError,
    StopRequested,
    TransientError,
)
from processors.media import job_output_path, resolve_media_path

__all__ = [  # the errors are re-exported: processors import them from here too
    "ConfigError",
    "Context",
    "Item",
    "Params",
    "PermanentError",
    "Processor",
    "ProcessorError",
    "StopRequested",
    "TransientError",
    "resolve_device",
]


class Params(BaseModel):
    """Base for processors' parameter models: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Context:
    """What a running job may use. Built by the worker; processors only read it.

    - `progress(fraction, stage)`: report progress (0..1) and the current stage; the
      worker throttles it, saves it to the job's row and publishes it.
    - `emit(kind, rows)`: hand structured rows to the worker to persist (e.g.
      `"frame_results"`), in batches, while the job runs.
    - `job_result(job_id)`: the stored result of another job, or None.
    - `stop_requested()` / `check_stop()`: cooperative cancellation at safe points.
    """

    job_id: str
    device: str
    log: Any
    settings: Settings = field(default_factory=get_settings)
    attempt: int = 1
    _progress: Callable[[float, str | None], None] = lambda fraction, stage: None
    _emit: Callable[[str, list[dict[str, Any]]], None] = lambda kind, rows: None
    _job_result: Callable[[str], dict[str, Any] | None] = lambda job_id: None
    _stop: Callable[[], bool] = lambda: False

    def progress(self, fraction: float, stage: str | None = None) -> None:
        self._progress(min(max(float(fraction), 0.0), 1.0), stage)

    def emit(self, kind: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._emit(kind, rows)

    def job_result(self, job_id: str) -> dict[str, Any] | None:
        return self._job_result(job_id)

    def stop_requested(self) -> bool:
        return self._stop()

    def check_stop(self) -> None:
        if self._stop():
            raise StopRequested("the worker asked this job to stop")

    def input_path(self, path: str) -> Path:
        """Resolve a job's input path inside the media root (see `processors.media`)."""
        return resolve_media_path(self.settings.media_root, path)

    def output_path(self, name: str) -> Path:
        """A path for an output file of this job: `<output_dir>/<job_id>/<name>`."""
        return job_output_path(self.settings.output_dir, self.job_id, name)


@dataclass
class Item:
    """One job of a batch: its validated params, what `prepare` made of them, its ctx."""

    params: Any
    input: Any
    """`prepare(params, ctx)`'s return value (the params themselves by default)."""
    ctx: Context


class Processor(abc.ABC):
    """A named, pluggable unit of work.

    Subclasses set `name` and `Params`, may override `load` (called once per executor
    process with the torch device string, e.g. "cpu" or "cuda:0") and implement
    `process`, which returns a JSON-able result (dict, list, str, number, bool, None).
    """

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = Params
    batch_size: ClassVar[int] = 1
    """Most jobs per `process_batch` call (1: never batched). `WORKER_BATCH_SIZES`
    overrides it per processor."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.device = "cpu"

    @classmethod
    def batch_limit(cls, settings: Settings) -> int:
        """Most jobs per call under `settings` (`WORKER_BATCH_SIZES` over `batch_size`)."""
        return max(1, int(settings.batch_sizes.get(cls.name, cls.batch_size)))

    @classmethod
    def prepares(cls) -> bool:
        """Whether this processor splits CPU work into `prepare` (so it is done ahead)."""
        return cls.prepare is not Processor.prepare

    @classmethod
    def check_config(cls, settings: Settings) -> None:
        """Validate this processor's settings; raise ConfigError. Called at worker startup."""
        return None

    def load(self, device: str) -> None:
        """Load models onto `device`; keep them on `self` for every later job."""
        self.device = device

    def prepare(self, params: Any, ctx: Context) -> Any:
        """A job's CPU-side work, done ahead on a thread; its return value is what
        `process` (or the batch item's `input`) receives. Default: the params unchanged.
        May run while another job is on the device: it must not use the device."""
        return params

    @abc.abstractmethod
    def process(self, params: Any, ctx: Context) -> Any:
        """Run one job on what `prepare` returned (its params by default). Raise
        PermanentError or TransientError to steer retries."""

    def process_batch(self, items: list[Item]) -> list[Any]:
        """Run several jobs at once: one result or Exception per item, in order.

        An Exception in the list retries or fails only that job; raising fails the call,
        and the worker then retries its jobs in smaller batches down to single jobs, so a
        bad job is isolated before any attempt is charged. Default: one `process` each.
        """
        results: list[Any] = []
        for item in items:
            try:
                results.append(self.process(item.input, item.ctx))
            except Exception as exc:
                results.append(exc)
        return results

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources when the executor shuts down."""


def resolve_device(spec: str = "auto") -> str:
    """`auto` -> "cuda:0" when CUDA is available, else "cpu"; `cuda` -> "cuda:0"."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if spec == "cuda":
        return "cuda:0"
    return spec
