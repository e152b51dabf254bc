"""What a worker shows its operators, in one place: metrics, health, systemd, retention.

The worker calls `Ops` at a few well-defined points (one line each); everything else
here runs in threads of its own, started by `start()`:

- `/metrics`, `/healthz`, `/readyz` on `WORKER_METRICS_PORT` (0: no server, and the
  per-job calls below cost one attribute check);
- the systemd notifier: `READY=1` once processors are loaded, `STATUS=` with the current
  job and counts, `WATCHDOG=1` every half watchdog period while the fetch loop ticks
  (while a job runs, the supervisor's wait loop ticks, so no job is ever too long), and
  `STOPPING=1` on shutdown (pings and statuses come from a thread, gated on the loop's
  ticks: a frozen process sends nothing, a hung loop stops the pings);
- the fields `ready`, `loop_at`, `stall_s`, `state`, `job` in the worker's Redis hash
  (refreshed by the heartbeat), read by `python -m worker health`;
- the retention thread (`worker.retention`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog

from processors.base import ConfigError
from worker.endpoint import Endpoint, check_route, metrics_route
from worker.gpu import visible_from_env
from worker.health import Lazy, Pulse, Readiness
from worker.metrics import WorkerMetrics, outcome_label, restart_reason
from worker.notify import Notifier
from worker.retention import Retention

log = structlog.get_logger("stoker.ops")


class Ops:
    def __init__(self, worker: Any) -> None:
        s = self.settings = worker.settings
        self.worker = worker
        self.pulse = Pulse()
        self.health = Readiness(worker, self.pulse, s.stall_timeout)
        self.notifier = Notifier()
        self.metrics: WorkerMetrics | None = None
        self.endpoint: Endpoint | None = None
        if s.metrics_port:
            self.metrics = WorkerMetrics(
                worker.worker_id,
                executor_pid=lambda: getattr(worker.executor, "pid", None) or "self",
                visible_gpus=visible_from_env(),
            )
            self.endpoint = Endpoint(
                s.metrics_host,
                s.metrics_port,
                {
                    "/metrics": metrics_route(self.metrics.registry),
                    "/healthz": check_route(self.health.live),
                    "/readyz": check_route(self.health.check),
                },
            )
        self.retention = Retention(s, worker.client, worker.keys, worker.store.url)
        self._restarts_seen = 0
        self._stopping_sent = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._job_started = 0.0

    def restored(self, where: str, reason: str) -> None:
        """The ledger put a job back into Redis (labelled by the row's status: bounded)."""
        if self.metrics is not None:
            self.metrics.restored(where, reason.split()[0])

    # Lifecycle
    def start(self) -> None:
        """Publish health fields, open the endpoint, start the notifier and retention."""
        self.worker.heartbeat.fields.update(
            ready=Lazy(lambda: int(self.health.ready)),
            loop_at=Lazy(lambda: round(self.pulse.wall(), 3)),
            stall_s=self.settings.stall_timeout,
            state=Lazy(self.state),
            job=Lazy(lambda: self.worker.current.id if self.worker.current else ""),
            jobs_done=Lazy(lambda: self.worker.stats.processed),
            metrics_port=self.settings.metrics_port,
        )
        if self.endpoint is not None:
            try:
                self.endpoint.start()
            except OSError as exc:
                raise ConfigError(
                    f"metrics port {self.settings.metrics_host}:{self.settings.metrics_port}: "
                    f"{exc.strerror or exc}"
                ) from None
        self.notifier.status("starting: loading processors")
        self.retention.start()

    def ready(self) -> None:
        """Processors are loaded and the executor is up: the loop starts now."""
        self.pulse.tick()
        self.health.ready = True
        if self.metrics is not None:
            self.metrics.ready.set(1)
            self.executor_reports()
        self._restarts_seen = getattr(self.worker.executor, "restarts", 0)
        self.notifier.ready(self.status_text())
        if self.notifier.enabled:  # systemd arms the watchdog once READY=1 arrives
            self._thread = threading.Thread(target=self._notify, name="stoker-notify", daemon=True)
            self._thread.start()

    def stopping(self) -> None:
        if not self._stopping_sent:
            self._stopping_sent = True
            self.notifier.stopping(self.status_text())
        if self.metrics is not None:
            self.metrics.ready.set(0)

    def close(self) -> None:
        self.stopping()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.retention.stop()
        if self.endpoint is not None:
            self.endpoint.stop()
        self.notifier.close()

    # The loop (hot path)
    def tick(self) -> None:
        self.pulse.at = time.monotonic()

    def job_started(self, queue: str, job: Any, started_at: Any) -> None:
        m = self.metrics
        if m is None:
            return
        m.busy.start()
        if job.attempts == 0 and job.queued_at is not None:
            m.waited(queue, (started_at - job.queued_at).total_seconds())

    def job_ended(self, processor: str, outcome: Any) -> None:
        m = self.metrics
        if m is None:
            reports = getattr(self.worker.executor, "reports", None)
            if reports:  # nobody reads them: keep the list from growing
                reports.clear()
            return
        m.busy.stop()
        m.ran(processor, outcome.duration)
        self.restarts_since(outcome.kind)
        self.executor_reports()

    def restarts_since(self, kind: Any) -> None:
        """Count executor restarts since the last call, caused by an outcome of `kind`
        (also called for a batch that failed as a whole: `worker.batches`)."""
        m = self.metrics
        restarts = getattr(self.worker.executor, "restarts", 0)
        if m is not None and restarts != self._restarts_seen:
            m.restarted(restart_reason(kind), restarts - self._restarts_seen)
            self._restarts_seen = restarts

    def settled(self, queue: str, processor: str | None, disposition: str, kind: Any) -> None:
        """One delivery is settled (`disposition`: succeeded, retried, failed, cancelled,
        rejected; `kind`: the outcome's kind, which names timeouts and crashes)."""
        if self.metrics is not None:
            self.metrics.settled(queue, processor or "", outcome_label(disposition, kind))

    def executor_reports(self) -> None:
        """Model loads and GPU memory the executor child reported since the last call."""
        m, executor = self.metrics, self.worker.executor
        if m is None:
            return
        reports = getattr(executor, "reports", None)
        if reports is None:  # inline: the runner is in this process
            from worker.gpu import child_report

            reports = [child_report(executor.runner)] if getattr(executor, "runner", None) else []
        while reports:
            report = reports.pop(0)
            if report.get("loads"):
                m.loaded(report["loads"])
            if report.get("gpu"):
                m.gpu.update(report["gpu"])

    # systemd
    def state(self) -> str:
        if self.worker.stopping:
            return "stopping"
        if not self.health.ready:
            return "starting"
        return "busy" if self.worker.current is not None else "idle"

    def status_text(self) -> str:
        w, st = self.worker, self.worker.stats
        job = w.current
        now = f"running {job.id} ({job.processor})" if job is not None else self.state()
        return (
            f"{now}; {st.succeeded} succeeded, {st.failed} failed, {st.retried} retried, "
            f"{st.timeouts} timeouts, {st.crashes} crashes; queues {','.join(w.queues)}"
        )

    def _notify(self) -> None:
        """Ping the watchdog while the fetch loop ticks; refresh STATUS when it changes."""
        watchdog = self.notifier.watchdog_s
        period = min(2.0, watchdog / 2) if watchdog else 2.0
        last_status = ""
        stalled = False
        while not self._stop.wait(period):
            live, _ = self.health.live()
            if live and watchdog:
                self.notifier.watchdog()
            silent = self.pulse.age()
            status = self.status_text() if live else f"HUNG: fetch loop silent {silent:.0f} s"
            if not live and not stalled:
                log.error("fetch loop stalled; watchdog pings stopped", silent_s=self.pulse.age())
            stalled = not live
            if status != last_status:
                self.notifier.status(status)
                last_status = status
