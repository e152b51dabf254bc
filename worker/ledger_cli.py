"""`python -m worker reconcile [--dry-run] [--json]`: restore the jobs Redis lost, by hand.

The worker holding the recovery lock does the same on its own (at startup, after Redis
lost its data or its connection, and every `WORKER_RECONCILE_INTERVAL`).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from config import Settings
from worker.keys import Keys
from worker.reconciler import Reconciler, Report
from worker.store import JobStore

COMMANDS = ("reconcile",)

#: Seconds to wait for the recovery lock held by a worker's pass.
LOCK_WAIT_S = 30.0


def add_parsers(sub: Any) -> None:
    """Register the commands on the main parser's subparsers."""
    r = sub.add_parser("reconcile", help="restore unfinished jobs that Redis lost (from SQL)")
    r.add_argument("--dry-run", action="store_true", help="show what would be restored")
    r.add_argument("--json", action="store_true")


def run(command: str, args: argparse.Namespace, settings: Settings) -> int:
    from worker.connection import connect_redis
    from worker.logs import configure_logging

    configure_logging(settings)  # to stderr: stdout carries the report
    client, server = connect_redis(settings)
    store = JobStore(settings.resolved_database_url)
    try:
        store.migrate()
        reconciler = Reconciler(client, Keys.from_settings(settings), store.engine, settings)
        deadline = time.monotonic() + LOCK_WAIT_S
        while (report := reconciler.run(dry_run=args.dry_run)) is None:
            if time.monotonic() > deadline:
                print("the recovery lock stayed busy; try again", flush=True)
                return 1
            time.sleep(0.2)
        print_report(report, as_json=args.json)
        return 0
    finally:
        store.close()
        client.close()
        if server is not None:
            server.stop()


def report_dict(report: Report) -> dict[str, Any]:
    return {
        "dry_run": report.dry_run,
        "unfinished": report.unfinished,
        "restored": [
            {"id": r.job_id, "to": r.where, "queue": r.queue, "due": r.due, "reason": r.reason}
            for r in report.restored
        ],
        "held": [{"id": h.job_id, "reason": h.reason} for h in report.held],
        "unrestorable": report.unrestorable,
        "seconds": round(report.seconds, 4),
    }


def print_report(report: Report, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report_dict(report)))
        return
    verb = "would restore" if report.dry_run else "restored"
    for r in report.restored:
        where = f"queue {r.queue}" if r.where == "queue" else f"scheduled ({r.queue})"
        print(f"{verb} {r.job_id} -> {where}: {r.reason}")
    for h in report.held:
        print(f"left {h.job_id}: {h.reason}")
    print(
        f"{report.unfinished} unfinished rows; {verb} {len(report.restored)}"
        f" ({report.count('queue')} to queues, {report.count('scheduled')} scheduled);"
        f" {len(report.held)} left for later; {report.seconds * 1000:.1f} ms"
    )
