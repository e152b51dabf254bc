"""Execution strategies: where a job's code runs.

- `ProcessExecutor` (default): one long-lived executor process started with `spawn`
  (never `fork`: CUDA), which loads processors once and runs jobs one at a time. The
  supervisor talks to it over a pipe in JSON. A job past its timeout, or one that kills
  the process, costs only that process: the next job gets a fresh one.
- `InlineExecutor`: jobs run in the supervisor's own process, for debugging. Timeouts
  cannot be enforced and a crash takes the worker down.
"""

from __future__ import annotations

import abc
import contextlib
import json
import multiprocessing as mp
import select
import signal
import time
from multiprocessing.connection import Connection, wait
from typing import Any, Protocol

import structlog

from config import Settings
from processors.base import ConfigError
from worker.callbacks import JobCallbacks
from worker.duties import POLL_S, Abort
from worker.execution import JobRunner, Task, check_processor_config
from worker.executor_child import child_main
from worker.outcome import Outcome

log = structlog.get_logger("stoker.executor")


class ExecutorDied(RuntimeError):
    """The executor process died before it was ready (killed, out of memory)."""


class JobHandler(JobCallbacks, Protocol):
    """The supervisor's side of a running job: the job's callbacks, plus the executor's
    hand-over (`sent`) and the periodic duties (`poll`, every `poll_interval` s)."""

    poll_interval: float = POLL_S

    def sent(self) -> None:
        """The task is on its way to a separate executor: the next job may be prepared."""

    def poll(self) -> Abort:
        """The periodic duties: "stop" asks the job to stop, "kill" stops it now."""


class Executor(abc.ABC):
    device: str = "cpu"
    batch_sizes: dict[str, int]
    """Processors that batch, with their most jobs per call (known once started)."""
    preparers: frozenset[str] = frozenset()
    """Processors whose inputs are prepared ahead (they override `prepare`)."""

    @abc.abstractmethod
    def start(self) -> None:
        """Get ready to run jobs (load what is preloaded)."""

    @abc.abstractmethod
    def execute(self, task: Task, timeout: float | None, handler: JobHandler) -> Outcome:
        """Run one task to its outcome; never raises for the job's own failures."""

    @abc.abstractmethod
    def execute_batch(
        self, tasks: list[Task], timeout: float | None, handler: JobHandler
    ) -> Outcome | list[Outcome]:
        """Run tasks of one processor in one call: an Outcome per task, or one Outcome
        when the call failed as a whole (raised, crashed, timed out, was stopped)."""

    def reports_sent(self) -> bool:
        """Whether a task executed now is reported sent (`JobHandler.sent`) before it runs:
        a separate executor, already started. Inline execution never is."""
        return False

    def prepare(self, tasks: list[Task]) -> None:  # noqa: B027 - optional
        """Start preparing the next job or batch while the current one runs."""

    @abc.abstractmethod
    def close(self) -> None: ...


class InlineExecutor(Executor):
    """Runs jobs in the calling process (no isolation, no timeouts)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runner: JobRunner | None = None
        self.batch_sizes = {}

    def start(self) -> None:
        if self.runner is None:
            check_processor_config(self.settings)
            self.runner = JobRunner(self.settings)
            self.device = self.runner.device
            self.runner.preload(self.settings.preload)
            self.batch_sizes = self.runner.capabilities()["batch_sizes"]

    def execute(self, task: Task, timeout: float | None, handler: JobHandler) -> Outcome:
        self.start()
        assert self.runner is not None
        return self.runner.run(task, handler)

    def execute_batch(
        self, tasks: list[Task], timeout: float | None, handler: JobHandler
    ) -> Outcome | list[Outcome]:
        self.start()
        assert self.runner is not None
        return self.runner.run_batch(tasks, handler)

    def close(self) -> None:
        if self.runner:
            self.runner.close()


class ProcessExecutor(Executor):
    """One spawned executor process, restarted only when it dies, hangs or is recycled."""

    def __init__(self, settings: Settings, worker_id: str = "") -> None:
        self.settings = settings
        self.worker_id = worker_id
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self.jobs_in_child = 0
        self.restarts = 0
        self._config_checked = False
        self._stop = self._ctx.Event()
        self._stop_used = False
        self._poller: Any = None
        self._prep: Connection | None = None
        self.batch_sizes = {}
        self.reports: list[dict[str, Any]] = []
        """Model loads and GPU memory the child reported (`worker.gpu`); `worker.ops` drains it."""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def reports_sent(self) -> bool:
        return self.alive()

    def start(self) -> None:
        if self.alive():
            return
        self._discard()
        parent, child = self._ctx.Pipe(duplex=True)
        prep_read, prep_write = self._ctx.Pipe(duplex=False)
        args = (child, self.settings, self.worker_id, not self._config_checked, self._stop)
        self._proc = self._ctx.Process(
            target=child_main,
            args=(*args, prep_read),
            name=f"stoker-executor-{self.worker_id}",
            daemon=True,
        )
        self._proc.start()
        child.close()
        prep_read.close()
        self._conn, self._prep = parent, prep_write
        self.jobs_in_child = 0
        # One poll set for the life of the process: building a selector per wait (as
        # `multiprocessing.connection.wait` does) costs more than the wait itself.
        self._poller = select.poll()
        self._poller.register(parent.fileno(), select.POLLIN)
        self._poller.register(self._proc.sentinel, select.POLLIN)
        ready = self._wait_ready()
        self.reports.append(ready)
        self._config_checked = True
        self.device = ready.get("device", "cpu")
        if "batch_sizes" in ready:  # only the first start reports them
            self.batch_sizes = dict(ready["batch_sizes"])
            self.preparers = frozenset(ready["preparers"])
        log.info("executor started", pid=self._proc.pid, device=self.device)

    def _wait_ready(self) -> dict[str, Any]:
        assert self._conn is not None and self._proc is not None
        while True:
            ready = wait([self._conn, self._proc.sentinel], timeout=600)
            if self._conn in ready:
                try:
                    msg = json.loads(self._conn.recv_bytes())
                except (EOFError, OSError):
                    msg = {}
                if msg.get("type") == "ready":
                    return msg
                if msg.get("type") == "config_error":
                    self._proc.join(5)
                    self._discard()
                    raise ConfigError(msg.get("error", "invalid configuration"))
                if msg.get("type") == "startup_error":
                    self._discard()
                    raise RuntimeError(f"executor failed to start: {msg.get('error')}")
            if self._proc.sentinel in ready or not ready:
                code = self._proc.exitcode
                self._discard()
                raise ExecutorDied(f"executor died during startup (exit code {code})")

    def _send(self, msg: dict[str, Any]) -> None:
        assert self._conn is not None
        self._conn.send_bytes(json.dumps(msg, separators=(",", ":")).encode())

    def execute(self, task: Task, timeout: float | None, handler: JobHandler) -> Outcome:
        result = self._execute({"type": "run", "task": task.to_dict()}, timeout, handler)
        assert isinstance(result, Outcome)
        return result

    def execute_batch(
        self, tasks: list[Task], timeout: float | None, handler: JobHandler
    ) -> Outcome | list[Outcome]:
        msg = {"type": "run_batch", "tasks": [task.to_dict() for task in tasks]}
        return self._execute(msg, timeout, handler)

    def prepare(self, tasks: list[Task]) -> None:
        """Best effort: a lost message only means the job is prepared when it runs."""
        if self._prep is None or not tasks:
            return
        msg = {"type": "prepare", "tasks": [task.to_dict() for task in tasks]}
        with contextlib.suppress(OSError):
            self._prep.send_bytes(json.dumps(msg, separators=(",", ":")).encode())

    def _execute(
        self, msg: dict[str, Any], timeout: float | None, handler: JobHandler
    ) -> Outcome | list[Outcome]:
        try:
            self.start()
        except ExecutorDied as exc:
            # Killed while starting: this attempt crashed; the worker carries on.
            log.warning("executor crashed", message=str(exc))
            self.restarts += 1
            return Outcome("crashed", error_type="ExecutorCrashed", message=str(exc))
        assert self._conn is not None and self._proc is not None
        started = time.monotonic()
        deadline = started + timeout if timeout else None
        if self._stop_used:  # clearing the shared Event costs semaphore syscalls
            self._stop.clear()
            self._stop_used = False
        try:
            self._send(msg)
        except OSError:  # it died between jobs, after the liveness check
            self._proc.join(1)
            return self._crashed(time.monotonic() - started)
        self.jobs_in_child += 1
        handler.sent()
        return self._wait(handler, started, deadline, timeout)

    def _wait(
        self, handler: JobHandler, started: float, deadline: float | None, timeout: float | None
    ) -> Outcome | list[Outcome]:
        """Wait for the running task's outcome, serving its messages and the duties."""
        assert self._conn is not None and self._proc is not None
        stop_sent = False
        conn, sentinel, poller = self._conn, self._proc.sentinel, self._poller
        conn_fd = conn.fileno()
        # The periodic duties (cancel, shutdown grace, recovery, prefetch hold) run on their
        # own clock: however fast the executor sends progress or rows, they are never late.
        next_poll = started + handler.poll_interval
        while True:
            now = time.monotonic()
            wait_for = max(0.0, next_poll - now)
            if deadline is not None:
                wait_for = max(0.0, min(wait_for, deadline - now))
            ready = [fd for fd, _ in poller.poll(wait_for * 1000)]
            if conn_fd in ready:
                try:
                    msg = json.loads(conn.recv_bytes())
                except (EOFError, OSError):
                    msg = None
                if msg is not None:
                    if msg["type"] == "done":
                        self._maybe_recycle()
                        if "outcomes" in msg:
                            return [Outcome(**o) for o in msg["outcomes"]]
                        return Outcome(**msg["outcome"])
                    self._dispatch(msg, handler)
            if sentinel in ready or (conn_fd in ready and not self._proc.is_alive()):
                self._proc.join(1)
                return self._crashed(time.monotonic() - started)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self.kill()
                message = f"job ran past its timeout of {timeout or 0:g} s; executor killed"
                return Outcome(
                    "timeout", error_type="Timeout", message=message, duration=now - started
                )
            if now < next_poll:
                continue
            next_poll = now + handler.poll_interval
            abort = handler.poll()
            if abort == "kill":
                self.kill()
                return Outcome(
                    "interrupted",
                    error_type="Interrupted",
                    message="stopped by worker shutdown or cancellation",
                    duration=time.monotonic() - started,
                )
            if abort == "stop" and not stop_sent:
                self._stop.set()
                self._stop_used = True
                stop_sent = True

    def _dispatch(self, msg: dict[str, Any], handler: JobHandler) -> None:
        """Hand one message from the running job to the supervisor's side."""
        kind = msg["type"]
        if kind == "progress":
            handler.progress(msg["job_id"], msg["fraction"], msg["stage"])
        elif kind == "rows":
            handler.rows(msg["job_id"], msg["kind"], msg["rows"])
        elif kind == "job_result":
            self._send({"type": "job_result", "result": handler.job_result(msg["id"])})
        elif kind == "report":
            self.reports.append(msg)

    def _crashed(self, duration: float) -> Outcome:
        code = self._proc.exitcode if self._proc is not None else None
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            message = f"executor killed by {name} ({-code})"
        else:
            message = f"executor exited with code {code}"
        log.warning("executor crashed", message=message)
        self._discard()
        self.restarts += 1
        return Outcome("crashed", error_type="ExecutorCrashed", message=message, duration=duration)

    def _maybe_recycle(self) -> None:
        limit_jobs = self.settings.max_jobs_per_child
        limit_mb = self.settings.max_memory_per_child
        reason = None
        if limit_jobs and self.jobs_in_child >= limit_jobs:
            reason = f"ran {self.jobs_in_child} jobs"
        elif limit_mb and self._proc is not None:
            import psutil

            try:
                rss_mb = psutil.Process(self._proc.pid).memory_info().rss / 2**20
            except psutil.Error:
                rss_mb = 0.0
            if rss_mb > limit_mb:
                reason = f"uses {rss_mb:.0f} MiB > {limit_mb} MiB"
        if reason:
            log.info("recycling executor", reason=reason)
            self.close()
            self.restarts += 1

    def kill(self) -> None:
        """Stop the executor now (SIGKILL); the next job starts a fresh one."""
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._discard()
        self.restarts += 1

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._prep is not None:
            self._prep.close()
        self._conn = self._prep = None
        self._proc = None

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            with contextlib.suppress(OSError):
                self._send({"type": "exit"})
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
        self._discard()


def make_executor(settings: Settings, worker_id: str) -> Executor:
    if settings.isolation == "inline":
        return InlineExecutor(settings)
    return ProcessExecutor(settings, worker_id)
