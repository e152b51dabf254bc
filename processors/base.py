"""The processor interface: what every processor implements and what it is given.

A processor knows nothing of Redis or SQL. The worker calls `load(device)` once per
executor process (models stay resident across jobs), validates each job's `params`
with the processor's pydantic `Params` model, and calls `process(params, ctx)`.
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


class Processor(abc.ABC):
    """A named, pluggable unit of work.

    Subclasses set `name` and `Params`, may override `load` (called once per executor
    process with the torch device string, e.g. "cpu" or "cuda:0") and implement
    `process`, which returns a JSON-able result (dict, list, str, number, bool, None).
    """

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = Params

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.device = "cpu"

    @classmethod
    def check_config(cls, settings: Settings) -> None:
        """Validate this processor's settings; raise ConfigError. Called at worker startup."""
        return None

    def load(self, device: str) -> None:
        """Load models onto `device`; keep them on `self` for every later job."""
        self.device = device

    @abc.abstractmethod
    def process(self, params: Any, ctx: Context) -> Any:
        """Run one job. Raise PermanentError or TransientError to steer retries."""

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
