"""The executor process: loads processors once, then runs tasks until told to exit.

It talks to the supervisor over one pipe in JSON: `ready` (or `config_error`,
`startup_error`), then per task (`run`, or `run_batch` for several jobs of one processor)
the job's callbacks (`progress`, `rows`, `job_result`, each carried over by
`PipeCallbacks`), `report` (model loads, GPU memory) and `done`. A second, one-way pipe
carries `prepare` messages (the next job or batch), read by a thread of their own, so
inputs are prepared while the current job runs.
The stop flag is a shared Event, so no reader thread is needed. It dies with the
supervisor (PDEATHSIG, or a watcher thread where that is unavailable).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from config import Settings
from processors.base import ConfigError
from worker.execution import JobRunner, Task, check_processor_config


class PipeCallbacks:
    """`JobCallbacks` over the pipe: each call becomes a message to the supervisor."""

    def __init__(
        self,
        send: Callable[[dict[str, Any]], None],
        send_unlocked: Callable[[dict[str, Any]], None],
        send_lock: threading.Lock,
        receive: Callable[[], dict[str, Any]],
        stop: Any,
    ) -> None:
        self._send = send
        self._send_unlocked = send_unlocked
        self._lock = send_lock
        self._receive = receive
        self._stop = stop

    def progress(self, job_id: str, fraction: float, stage: str | None) -> None:
        self._send({"type": "progress", "job_id": job_id, "fraction": fraction, "stage": stage})

    def rows(self, job_id: str, kind: str, rows: list[dict[str, Any]]) -> None:
        self._send({"type": "rows", "job_id": job_id, "kind": kind, "rows": rows})

    def job_result(self, job_id: str) -> Any:
        # The job runs on the only reading thread, so the reply is read right here.
        with self._lock:
            self._send_unlocked({"type": "job_result", "id": job_id})
            return self._receive().get("result")

    def stop_requested(self) -> bool:
        return bool(self._stop.is_set())


def _exit_with_parent() -> None:
    """Die with the supervisor, even in the middle of a long job (Linux: PDEATHSIG)."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(0)

    def watch() -> None:
        # A fallback where prctl is unavailable; cheap: it sleeps almost all the time.
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="stoker-parent-watch", daemon=True).start()


def _serve_prepares(prep: Connection, runner: JobRunner) -> None:
    """The prepare thread's reader: each message names the next tasks to prepare."""
    while True:
        try:
            msg = json.loads(prep.recv_bytes())
        except (EOFError, OSError):
            return
        runner.prepare_ahead([Task(**task) for task in msg["tasks"]])


def child_main(
    conn: Connection,
    settings: Settings,
    worker_id: str,
    check: bool,
    stop: Any,
    prep: Connection | None = None,
) -> None:
    """The executor process: load processors once, then run tasks until told to exit."""
    # Signals are the supervisor's business: it decides when to stop a running job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from worker.logs import configure_logging

    configure_logging(settings)
    send_lock = threading.Lock()

    def send_unlocked(msg: dict[str, Any]) -> None:
        conn.send_bytes(json.dumps(msg, separators=(",", ":"), default=str).encode())

    def send(msg: dict[str, Any]) -> None:
        with send_lock:
            send_unlocked(msg)

    try:
        if check:
            check_processor_config(settings)
    except ConfigError as exc:
        send({"type": "config_error", "error": str(exc)})
        return
    try:
        runner = JobRunner(settings)
        runner.preload(settings.preload)
    except BaseException as exc:
        send({"type": "startup_error", "error": f"{type(exc).__name__}: {exc}"})
        return
    _exit_with_parent()

    def receive() -> dict[str, Any]:
        try:
            return json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            # The supervisor is gone: nobody will record what we do, so stop now.
            os._exit(0)

    callbacks = PipeCallbacks(send, send_unlocked, send_lock, receive, stop)
    from worker.gpu import child_report

    ready = {"type": "ready", "device": runner.device, "pid": os.getpid()}
    # Capabilities import every processor class: once, with the configuration check.
    send({**ready, **(runner.capabilities() if check else {}), **child_report(runner)})
    runner.on_load = lambda: send({"type": "report", **child_report(runner)})
    if prep is not None:
        reader = threading.Thread(
            target=_serve_prepares, args=(prep, runner), name="stoker-prepares", daemon=True
        )
        reader.start()
    # One thread reads the pipe: tasks arrive here between jobs; the stop flag is a shared
    # Event, so no reader thread (and no thread hand-off per job) is needed.
    while (msg := receive()).get("type") in ("run", "run_batch"):
        if msg["type"] == "run":
            done = {"outcome": runner.run(Task(**msg["task"]), callbacks).to_dict()}
        else:
            result = runner.run_batch([Task(**t) for t in msg["tasks"]], callbacks)
            if isinstance(result, list):
                done = {"outcomes": [outcome.to_dict() for outcome in result]}
            else:
                done = {"outcome": result.to_dict()}
        if report := child_report(runner):
            send({"type": "report", **report})
        send({"type": "done", **done})
    runner.close()
