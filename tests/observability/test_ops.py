"""The worker's operator hooks without a worker: executor reports, GPU figures, busy time."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker.keys import Keys
from worker.ops import Ops
from worker.stats import Stats


def fake_worker(settings: Any, executor: Any) -> SimpleNamespace:
    return SimpleNamespace(
        settings=settings,
        worker_id="fake",
        client=None,
        keys=Keys(),
        store=SimpleNamespace(url="sqlite://"),
        executor=executor,
        heartbeat=SimpleNamespace(fields={}),
        current=None,
        stopping=False,
        stats=Stats(),
        queues=["default"],
    )


def values(ops: Ops) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert ops.metrics is not None
    text = generate_latest(ops.metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_loads_and_gpu_memory_reported_by_the_executor_child_become_metrics(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    executor = SimpleNamespace(
        restarts=0,
        pid=None,
        reports=[
            {"type": "ready", "loads": [["diarization", 12.5]]},
            {"type": "report", "loads": [["echo", 0.001]], "gpu": {"0": [1e9, 2e9, 80e9]}},
        ],
    )
    ops = Ops(fake_worker(make_settings(metrics_port=9999, retention_interval=0), executor))
    ops.ready()
    got = values(ops)
    assert got[("stoker_model_loads_total", (("processor", "diarization"),))] == 1
    assert got[("stoker_model_load_seconds_sum", (("processor", "diarization"),))] == 12.5
    assert got[("stoker_model_loads_total", (("processor", "echo"),))] == 1
    # cuda:0 of worker@3 is the host's GPU 3.
    assert got[("stoker_gpu_memory_allocated_bytes", (("gpu", "3"),))] == 1e9
    assert got[("stoker_gpu_memory_reserved_bytes", (("gpu", "3"),))] == 2e9
    assert got[("stoker_gpu_memory_total_bytes", (("gpu", "3"),))] == 80e9
    assert executor.reports == []


def test_an_inline_runners_loads_are_read_in_process(make_settings: Any) -> None:
    runner = SimpleNamespace(loads=[("echo", 0.5)])
    ops = Ops(fake_worker(make_settings(metrics_port=9999), SimpleNamespace(runner=runner)))
    ops.executor_reports()
    assert values(ops)[("stoker_model_loads_total", (("processor", "echo"),))] == 1
    assert runner.loads == []


def test_busy_seconds_include_the_job_running_now_and_restarts_have_a_reason(
    make_settings: Any,
) -> None:
    executor = SimpleNamespace(restarts=0, pid=None, reports=[])
    ops = Ops(fake_worker(make_settings(metrics_port=9999), executor))
    ops.ready()
    job = SimpleNamespace(attempts=0, queued_at=None)
    ops.job_started("default", job, None)
    time.sleep(0.3)
    mid = values(ops)
    assert mid[("stoker_worker_busy", ())] == 1
    assert mid[("stoker_worker_busy_seconds_total", ())] >= 0.25
    executor.restarts = 1  # the job timed out: the executor was killed
    ops.job_ended("echo", SimpleNamespace(kind="timeout", duration=0.3))
    ops.settled("default", "echo", "retried", "timeout")
    end = values(ops)
    assert end[("stoker_worker_busy", ())] == 0
    assert (
        end[("stoker_worker_busy_seconds_total", ())]
        >= mid[("stoker_worker_busy_seconds_total", ())]
    )
    assert end[("stoker_executor_restarts_total", (("reason", "timeout"),))] == 1
    labels = (("outcome", "timeout"), ("processor", "echo"), ("queue", "default"))
    assert end[("stoker_jobs_total", labels)] == 1


def test_with_metrics_off_the_hooks_do_nothing_and_reports_do_not_pile_up(
    make_settings: Any,
) -> None:
    executor = SimpleNamespace(restarts=0, reports=[{"gpu": {"0": [1, 2, 3]}}])
    ops = Ops(fake_worker(make_settings(metrics_port=0), executor))
    assert ops.metrics is None and ops.endpoint is None
    ops.job_started("default", SimpleNamespace(attempts=0, queued_at=None), None)
    ops.job_ended("echo", SimpleNamespace(kind="succeeded", duration=0.1))
    ops.settled("default", "echo", "succeeded", "succeeded")
    assert executor.reports == []
