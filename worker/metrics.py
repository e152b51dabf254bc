"""Per-worker Prometheus metrics: jobs, durations, executor restarts, model loads, GPU.

Every figure lives in the supervisor's own `CollectorRegistry`; the executor child never
touches prometheus_client. What only the child knows (model loads, torch's GPU memory)
reaches the supervisor in the child's pipe messages (`worker.gpu.child_report`), so no
multiprocess mode, shared folder or file cleanup is needed, and a killed child can never
leave stale figures behind.

The per-job figures (`stoker_jobs_total`, the duration and wait histograms) are plain
Python numbers written by the fetch loop and turned into families at scrape time
(`worker.tally`): about 0.2 µs per update, no lock, no label dict per job. The rare ones
(restarts, model loads) are ordinary prometheus_client metrics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from worker.gpu import GpuCollector
from worker.tally import CounterTally, HistogramTally

#: Seconds, from a few milliseconds (echo) to hours (a long GPU job).
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
)  # fmt: skip
#: Model loads: sub-second (tiny CPU models) to many minutes (de-quantizing an LLM).
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

#: Every value of the `outcome` label of `stoker_jobs_total`.
OUTCOMES = ("succeeded", "failed", "retried", "timeout", "crashed", "cancelled", "rejected")


def outcome_label(disposition: str, kind: str | None) -> str:
    """The `outcome` label of one settled delivery.

    An attempt that timed out or crashed its executor is labelled by that cause, whether
    it is then retried or failed; any other by what became of the job (`succeeded`,
    `retried`, `failed`, `cancelled`, `rejected`). So each attempt counts once, and the
    counts match the attempts table: error attempts = retried + failed.
    """
    if kind in ("timeout", "crashed"):
        return kind
    return disposition


def restart_reason(kind: str) -> str:
    """Why the executor was replaced during an attempt that ended as `kind`."""
    return {"timeout": "timeout", "crashed": "crashed", "interrupted": "stopped"}.get(
        kind, "recycled"
    )


class _Busy:
    """Busy flag and busy seconds, including the job running now (read at scrape time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None
        self._total = 0.0

    def start(self) -> None:
        with self._lock:
            self._since = time.monotonic()

    def stop(self) -> None:
        with self._lock:
            if self._since is not None:
                self._total += time.monotonic() - self._since
                self._since = None

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            busy = self._since is not None
            total = self._total + (time.monotonic() - self._since if busy else 0.0)
        yield GaugeMetricFamily(
            "stoker_worker_busy", "1 while the worker runs a job, else 0", value=int(busy)
        )
        yield CounterMetricFamily(
            "stoker_worker_busy_seconds",
            "Seconds spent running jobs; rate() is the worker's (and its GPU's) utilization",
            value=total,
        )


class WorkerMetrics:
    """The metrics of one worker process, in a registry of its own."""

    def __init__(
        self, worker_id: str, *, executor_pid: Any = None, visible_gpus: str | None = None
    ) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)
        if executor_pid is not None:
            ProcessCollector(namespace="stoker_executor", pid=executor_pid, registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.busy = _Busy()
        r.register(self.busy)
        self.gpu = GpuCollector(visible_gpus)
        r.register(self.gpu)
        self.jobs = CounterTally(
            "stoker_jobs",
            "Settled job deliveries by queue, processor and outcome",
            ["queue", "processor", "outcome"],
        )
        self.duration = HistogramTally(
            "stoker_job_duration_seconds",
            "Run time of each attempt in the executor",
            "processor",
            DURATION_BUCKETS,
        )
        self.wait = HistogramTally(
            "stoker_job_wait_seconds",
            "Time from queued_at to the first start of a job",
            "queue",
            DURATION_BUCKETS,
        )
        for tally in (self.jobs, self.duration, self.wait):
            r.register(tally)
        self.restarts = Counter(
            "stoker_executor_restarts",
            "Executor processes replaced, by reason (timeout, crashed, stopped, recycled)",
            ["reason"],
            registry=r,
        )
        self.reconciled = Counter(
            "stoker_reconcile_restored",
            "Jobs the ledger put back into Redis (reconcile), by where and the row's status",
            ["where", "status"],
            registry=r,
        )
        self.model_loads = Counter(
            "stoker_model_loads", "Processor loads in the executor", ["processor"], registry=r
        )
        self.model_load_seconds = Histogram(
            "stoker_model_load_seconds",
            "Time to load a processor's models",
            ["processor"],
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.info = Gauge(
            "stoker_worker_info", "Constant 1, labelled with the worker", ["worker_id"], registry=r
        )
        self.info.labels(worker_id).set(1)
        self.ready = Gauge(
            "stoker_worker_ready", "1 once processors are loaded and the loop runs", registry=r
        )

    # Per job (hot path; the fetch loop's thread only)
    def settled(self, queue: str, processor: str, outcome: str) -> None:
        self.jobs.inc((queue, processor, outcome))

    def ran(self, processor: str, seconds: float) -> None:
        self.duration.observe(processor, seconds)

    def waited(self, queue: str, seconds: float) -> None:
        self.wait.observe(queue, max(0.0, seconds))

    # Rare events
    def restored(self, where: str, status: str) -> None:
        self.reconciled.labels(where, status).inc()

    def restarted(self, reason: str, count: int = 1) -> None:
        self.restarts.labels(reason).inc(count)

    def loaded(self, loads: Iterable[tuple[str, float]]) -> None:
        for processor, seconds in loads:
            self.model_loads.labels(processor).inc()
            self.model_load_seconds.labels(processor).observe(seconds)


__all__ = ["OUTCOMES", "WorkerMetrics", "outcome_label", "restart_reason"]
