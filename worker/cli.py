"""`python -m worker` — run the daemon and look after its jobs.

python -m worker [run] [--burst]          run the worker (the default command)
python -m worker status ID [--json]       where a job is, its result or error
python -m worker info [--json]            queues, in flight, scheduled, failed, workers
python -m worker failed list|show ID|requeue ID|requeue --all|purge
python -m worker enqueue PROCESSOR --params '{...}' [--queue Q] [--id ID] [--delay S]
python -m worker cancel ID                stop a queued or running job
python -m worker watch ID                 follow a job live: progress and stage, then its result
python -m worker results ID [--frames] [--format json|csv] [-o FILE]
python -m worker demo                     enqueue demo jobs, run them, show the results
python -m worker health [--worker ID] [--json]   exit 0 if the worker is alive and ready
python -m worker exporter [--port P]      cluster metrics (queues, workers, jobs) for Prometheus
python -m worker prune --older-than 30d [--status S] [--dry-run]   delete old finished jobs
python -m worker reconcile [--dry-run] [--json]   restore unfinished jobs Redis lost
python -m worker web [--host H] [--port P]   the web dashboard and HTTP API (127.0.0.1:9181)

Every command finds the same data folder from any current folder (`WORKER_DATA_DIR`,
default the checkout's `var/`). Commands that only read never start the embedded Redis.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
from typing import Any

from config import Settings, get_settings
from worker import ledger_cli, ops_cli
from worker.admin import AdminError
from worker.app import App, app
from worker.cli_jobs import render_results, watch
from worker.cli_output import failed_table, format_failed_entry, format_info, format_status
from worker.lifecycle import JobStatus
from worker.logs import configure_logging
from worker.web import cli as web_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m worker", description="Stoker worker daemon")
    sub = p.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the worker (default)")
    run.add_argument("--burst", action="store_true", help="drain the queues, then exit 0")
    run.add_argument("--queues", help="comma-separated queues in priority order")
    run.add_argument("--id", help="worker id")

    st = sub.add_parser("status", help="show a job")
    st.add_argument("id")
    st.add_argument("--json", action="store_true")
    st.add_argument("--full", action="store_true", help="the whole result, indented")

    info = sub.add_parser("info", help="queues, in flight, scheduled, failed, workers")
    info.add_argument("--json", action="store_true")

    failed = sub.add_parser("failed", help="inspect and requeue failed jobs")
    fsub = failed.add_subparsers(dest="action", required=True)
    fl = fsub.add_parser("list")
    fl.add_argument("--json", action="store_true")
    fl.add_argument("--wide", action="store_true", help="never cut the error column")
    fs = fsub.add_parser("show")
    fs.add_argument("id")
    fs.add_argument("--json", action="store_true")
    fr = fsub.add_parser("requeue")
    fr.add_argument("id", nargs="?")
    fr.add_argument("--all", action="store_true")
    fsub.add_parser("purge")

    enq = sub.add_parser("enqueue", help="put a job on a queue")
    enq.add_argument("processor")
    enq.add_argument("--params", default="{}", help="JSON object")
    enq.add_argument("--queue", default=None)
    enq.add_argument("--id", default=None)
    enq.add_argument("--delay", type=float, default=0.0, help="seconds before it may run")
    enq.add_argument("--max-attempts", type=int, default=None)
    enq.add_argument("--timeout", type=float, default=None)

    cancel = sub.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("id")

    wa = sub.add_parser("watch", help="follow a job live until it ends")
    wa.add_argument("id")
    wa.add_argument("--timeout", type=float, default=None, help="give up after S seconds")

    res = sub.add_parser("results", help="print or export a job's result or frame_results")
    res.add_argument("id")
    res.add_argument("--frames", action="store_true", help="the frame_results rows")
    res.add_argument("--format", choices=("json", "csv"), default="json")
    res.add_argument("-o", "--output", help="write to this file instead of stdout")

    demo = sub.add_parser("demo", help="run a job on every installed processor, show them")
    demo.add_argument("--only", help="comma-separated processors (default: all installed)")
    ops_cli.add_parsers(sub)
    ledger_cli.add_parsers(sub)  # reconcile (worker/ledger_cli.py)
    web_cli.add_parsers(sub)  # web (worker/web/cli.py)
    return p


READ_ONLY = {
    ("status",),
    ("info",),
    ("failed", "list"),
    ("failed", "show"),
    ("watch",),
    ("results",),
}
"""Commands that only read: they never start the embedded Redis nor migrate the database."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValueError as exc:  # pydantic's ValidationError: one line per bad setting
        print(f"configuration error: {_one_line(exc)}", file=sys.stderr)
        return 2
    command = args.command or "run"
    if command in ops_cli.COMMANDS:  # health, exporter, prune (worker/ops_cli.py)
        return ops_cli.run(command, args, settings)
    if command in ledger_cli.COMMANDS:  # reconcile (worker/ledger_cli.py)
        return ledger_cli.run(command, args, settings)
    if command in web_cli.COMMANDS:  # web dashboard and HTTP API (worker/web/cli.py)
        return web_cli.run(command, args, settings)
    if command == "run":
        updates: dict[str, Any] = {}
        if getattr(args, "queues", None):
            updates["queues"] = [q.strip() for q in args.queues.split(",") if q.strip()]
        if getattr(args, "id", None):
            updates["id"] = args.id
        if updates:
            settings = settings.model_copy(update=updates)
        return cmd_run(settings, burst=getattr(args, "burst", False))
    # Ctrl-C interrupts the other commands at once (only `run` shuts down gracefully).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    if command == "demo":
        from worker.demo import run_demo

        only = {p.strip() for p in args.only.split(",")} if args.only else None
        return run_demo(settings, only=only)
    write = (command, *([args.action] if command == "failed" else [])) not in READ_ONLY
    with app(settings, write=write) as a:
        handler = {
            "status": cmd_status,
            "info": cmd_info,
            "failed": cmd_failed,
            "enqueue": cmd_enqueue,
            "cancel": cmd_cancel,
            "watch": cmd_watch,
            "results": cmd_results,
        }[command]
        return handler(a, args)


def _one_line(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in errors()
        )
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def cmd_run(settings: Settings, *, burst: bool) -> int:
    from worker.connection import connect_redis
    from worker.worker import Worker

    configure_logging(settings)
    client, server = connect_redis(settings)
    worker = Worker(settings, burst=burst, client=client, redis_server=server)
    worker.install_signal_handlers()
    print(startup_banner(settings, worker), file=sys.stderr, flush=True)
    return worker.run()


def startup_banner(settings: Settings, worker: Any) -> str:
    """Where the worker's Redis and database are, and the exact line that pushes a job."""
    from worker.logs import redact_url
    from worker.redis_server import redis_cli_command

    server = getattr(worker, "_redis_server", None)
    url = settings.redis_url or (server.url if server else "")
    where = f"{url} (embedded, data {server.folder})" if server else redact_url(url)
    queue_key = worker.keys.queue(worker.queues[0])
    push = redis_cli_command(
        url if server else "redis://127.0.0.1:6379/0",
        queue_key,
        '{"processor": "echo", "params": {"text": "hi"}}',
    )
    return "\n".join(
        [
            f"stoker worker {worker.worker_id}: queues {', '.join(worker.queues)}",
            f"  redis     {where}",
            f"  database  {redact_url(settings.resolved_database_url)}",
            f"  push a job:  {push if server else push + '  (with your Redis: -u URL)'}",
            "  follow it:   python -m worker watch ID    (Ctrl-C stops after the running job)",
        ]
    )


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=None, default=str))


def cmd_status(a: App, args: argparse.Namespace) -> int:
    row = a.admin.job(args.id) if a.admin else a.store.get(args.id)
    if row is None:
        if args.json:
            _print_json({"id": args.id, "status": "unknown"})
        else:
            print(f"job {args.id}: unknown (looked in {a.where()['database']})", file=sys.stderr)
        return 1
    if args.json:
        _print_json(row)
        return 0
    print(format_status(row, a.store.attempts(args.id), full=args.full))
    return 0


def cmd_info(a: App, args: argparse.Namespace) -> int:
    if a.admin is not None:
        info = a.admin.info()
    else:
        info = {
            "redis_down": "no worker runs in this data folder: queues unknown",
            "jobs_by_status": a.store.status_counts(),
        }
    info["where"] = a.where()
    if args.json:
        _print_json(info)
        return 0
    queue_keys = {q: a.keys.queue(q) for q in a.settings.queues}
    print(format_info(info, queue_keys, a.keys.failed))
    return 0


def cmd_failed(a: App, args: argparse.Namespace) -> int:
    if a.admin is None:
        print("no worker runs here (its Redis holds the failed list)", file=sys.stderr)
        return 1
    if args.action == "list":
        entries = [e for _, e in a.admin.failed()]
        if args.json:
            _print_json(entries)
            return 0
        width = None if args.wide or not sys.stdout.isatty() else shutil.get_terminal_size()[0]
        if entries:
            print(failed_table(entries, width))
        hint = "; `failed show ID` for the whole message and traceback" if entries else ""
        print(f"{len(entries)} failed{hint}", file=sys.stderr)
        return 0
    if args.action == "show":
        entry = a.admin.failed_entry(args.id)
        if entry is None:
            print(f"no failed job {args.id}", file=sys.stderr)
            return 1
        print(json.dumps(entry, indent=2, default=str) if args.json else format_failed_entry(entry))
        return 0
    if args.action == "purge":
        print(f"purged {a.admin.purge_failed()} failed jobs")
        return 0
    if args.action == "requeue":
        if not args.all and not args.id:
            print("requeue needs an ID or --all", file=sys.stderr)
            return 2
        try:
            done = a.admin.requeue_failed(None if args.all else args.id)
        except AdminError as exc:
            print(exc.message, file=sys.stderr)
            return 1
        for job_id, queue in done:
            print(f"requeued {job_id} on {queue}")
        if not done:
            print("nothing requeued", file=sys.stderr)
            return 1
        return 0
    return 2


def cmd_enqueue(a: App, args: argparse.Namespace) -> int:
    try:
        params = json.loads(args.params)
    except (ValueError, RecursionError) as exc:
        print(f"--params is not JSON: {exc}", file=sys.stderr)
        return 2
    try:
        job = a.admin.enqueue(
            args.processor,
            params,
            queue=args.queue,
            job_id=args.id,
            delay=args.delay,
            max_attempts=args.max_attempts,
            timeout=args.timeout,
        )
    except AdminError as exc:
        print(f"not enqueued: {exc.message}", file=sys.stderr)
        return 2
    print(job.id)
    return 0


def cmd_cancel(a: App, args: argparse.Namespace) -> int:
    result = a.admin.cancel(args.id)
    print(result.message, file=sys.stdout if result.acted else sys.stderr)
    return 0 if result.acted else 1


def cmd_watch(a: App, args: argparse.Namespace) -> int:
    def load() -> dict[str, Any] | None:
        return a.admin.job(args.id) if a.admin else a.store.get(args.id)

    def subscribe() -> Any:
        pubsub = a.client.pubsub()  # type: ignore[union-attr]
        pubsub.subscribe(a.keys.progress_channel(args.id))
        return pubsub

    if load() is None:
        print(f"job {args.id}: unknown (looked in {a.where()['database']})", file=sys.stderr)
        return 1
    try:
        return watch(load, subscribe=subscribe if a.client else None, timeout=args.timeout)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def cmd_results(a: App, args: argparse.Namespace) -> int:
    row = a.store.get(args.id)
    if row is None:
        print(f"job {args.id}: unknown (looked in {a.where()['database']})", file=sys.stderr)
        return 1
    frames = a.store.frame_rows(args.id) if args.frames else None
    if frames is None and row["status"] != JobStatus.SUCCEEDED:
        print(f"job {args.id} is {row['status']}: no result yet", file=sys.stderr)
        return 1
    text = render_results(row, frames, args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        what = f"{len(frames)} frame rows" if frames is not None else "the result"
        print(f"wrote {what} of job {args.id} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
