"""The job runner: processors loaded once, failures classified."""

from __future__ import annotations

from collections.abc import Callable

from config import Settings
from processors.base import PermanentError, TransientError
from worker.callbacks import NoCallbacks
from worker.execution import JobRunner, Task, classify


def test_processor_is_loaded_once_and_stays_resident(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        processors=["tests.unit.sample_processors:UpperProcessor"], device="cpu"
    )
    runner = JobRunner(settings)
    results = [
        runner.run(Task(f"j{i}", "upper", {"text": "a"}, 1), NoCallbacks()) for i in range(3)
    ]
    assert [r.result["text"] for r in results] == ["A", "A", "A"]
    assert len({r.result["loads"] for r in results}) == 1


def test_non_json_result_is_a_permanent_error(make_settings: Callable[..., Settings]) -> None:
    runner = JobRunner(make_settings(device="cpu"))
    proc = runner.processor("echo")
    proc.process = lambda params, ctx: {"bad": object()}  # type: ignore[method-assign]
    outcome = runner.run(Task("j", "echo", {}, 1), NoCallbacks())
    assert outcome.permanent and "JSON-serializable" in (outcome.message or "")


def test_permanent_error_is_permanent() -> None:
    assert classify(PermanentError("bad input")).permanent


def test_transient_error_keeps_retry_after() -> None:
    outcome = classify(TransientError("busy", retry_after=7))
    assert not outcome.permanent and outcome.retry_after == 7


def test_unknown_exception_counts_as_transient() -> None:
    outcome = classify(KeyError("x"))
    assert outcome.kind == "error" and not outcome.permanent and outcome.error_type == "KeyError"


def test_cuda_out_of_memory_is_transient_and_flagged() -> None:
    outcome = classify(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert outcome.oom and not outcome.permanent


class _Recorder(NoCallbacks):
    def __init__(self) -> None:
        self.seen: list[tuple[float, str | None]] = []

    def progress(self, job_id: str, fraction: float, stage: str | None) -> None:
        self.seen.append((fraction, stage))


def test_progress_reaches_the_callbacks_clamped(make_settings: Callable[..., Settings]) -> None:
    recorder = _Recorder()
    runner = JobRunner(make_settings(device="cpu"))
    outcome = runner.run(Task("j", "echo", {"sleep": 0.2}, 1), recorder)
    seen = recorder.seen
    assert outcome.succeeded and seen and all(0 <= f <= 1 and s == "sleep" for f, s in seen)


def test_progress_is_throttled_once_where_it_is_reported(
    make_settings: Callable[..., Settings],
) -> None:
    recorder = _Recorder()
    runner = JobRunner(make_settings(device="cpu", progress_interval=10.0))
    outcome = runner.run(Task("j", "echo", {"sleep": 0.3}, 1), recorder)
    # The first report of a stage passes, the rest within the interval do not.
    assert outcome.succeeded and len(recorder.seen) == 1
