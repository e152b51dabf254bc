"""The job runner: processors loaded once, failures classified."""

from __future__ import annotations

from collections.abc import Callable

from config import Settings
from processors.base import PermanentError, TransientError
from worker.execution import Hooks, JobRunner, Task, classify


def test_processor_is_loaded_once_and_stays_resident(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        processors=["tests.unit.sample_processors:UpperProcessor"], device="cpu"
    )
    runner = JobRunner(settings)
    results = [runner.run(Task(f"j{i}", "upper", {"text": "a"}, 1), Hooks()) for i in range(3)]
    assert [r.result["text"] for r in results] == ["A", "A", "A"]
    assert len({r.result["loads"] for r in results}) == 1


def test_non_json_result_is_a_permanent_error(make_settings: Callable[..., Settings]) -> None:
    runner = JobRunner(make_settings(device="cpu"))
    proc = runner.processor("echo")
    proc.process = lambda params, ctx: {"bad": object()}  # type: ignore[method-assign]
    outcome = runner.run(Task("j", "echo", {}, 1), Hooks())
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


def test_progress_reaches_the_hooks_clamped(make_settings: Callable[..., Settings]) -> None:
    seen: list[tuple[float, str | None]] = []
    runner = JobRunner(make_settings(device="cpu"))
    hooks = Hooks(progress=lambda job_id, f, s: seen.append((f, s)))
    outcome = runner.run(Task("j", "echo", {"sleep": 0.2}, 1), hooks)
    assert outcome.succeeded and seen and all(0 <= f <= 1 and s == "sleep" for f, s in seen)
