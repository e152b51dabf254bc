"""`python -m worker` — run the daemon and look after its jobs.

python -m worker [run] [--burst]          run the worker (the default command)
python -m worker status ID [--json]       where a job is, its result or error
python -m worker info [--json]            queues, in flight, scheduled, failed, workers
python -m worker failed list|show ID|requeue ID|requeue --all|purge
python -m worker enqueue PROCESSOR --params '{...}' [--queue Q] [--id ID] [--delay S]
python -m worker cancel ID                stop a queued or running job
python -m worker demo                     enqueue demo jobs, run them, show the results
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from config import Settings, get_settings
from worker.broker import Broker
from worker.heartbeat import live_workers
from worker.keys import Keys
from worker.logs import configure_logging
from worker.protocol import BadPayload, Job, new_job_id, parse_payload, utcnow
from worker.store import JobStore


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

    info = sub.add_parser("info", help="queues, in flight, scheduled, failed, workers")
    info.add_argument("--json", action="store_true")

    failed = sub.add_parser("failed", help="inspect and requeue failed jobs")
    fsub = failed.add_subparsers(dest="action", required=True)
    fl = fsub.add_parser("list")
    fl.add_argument("--json", action="store_true")
    fs = fsub.add_parser("show")
    fs.add_argument("id")
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

    sub.add_parser("demo", help="enqueue demo jobs, run them in burst mode, show them")
    return p


class App:
    """Connections shared by the CLI commands."""

    def __init__(self, settings: Settings) -> None:
        from worker.worker import connect_redis

        self.settings = settings
        self.keys = Keys.from_settings(settings)
        self.client, self.server = connect_redis(settings)
        self.broker = Broker(self.client, self.keys)
        self.store = JobStore(settings.resolved_database_url)
        self.store.migrate()

    def close(self) -> None:
        self.store.close()
        if self.server is not None:
            self.server.stop()


@contextmanager
def app(settings: Settings) -> Iterator[App]:
    a = App(settings)
    try:
        yield a
    finally:
        a.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    command = args.command or "run"
    if command == "run":
        updates: dict[str, Any] = {}
        if getattr(args, "queues", None):
            updates["queues"] = [q.strip() for q in args.queues.split(",") if q.strip()]
        if getattr(args, "id", None):
            updates["id"] = args.id
        if updates:
            settings = settings.model_copy(update=updates)
        return cmd_run(settings, burst=getattr(args, "burst", False))
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    with app(settings) as a:
        handler = {
            "status": cmd_status,
            "info": cmd_info,
            "failed": cmd_failed,
            "enqueue": cmd_enqueue,
            "cancel": cmd_cancel,
            "demo": cmd_demo,
        }[command]
        return handler(a, args)


def cmd_run(settings: Settings, *, burst: bool) -> int:
    from worker.worker import Worker

    configure_logging(settings)
    worker = Worker(settings, burst=burst)
    worker.install_signal_handlers()
    return worker.run()


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=None, default=str))


def find_in_redis(a: App, job_id: str) -> dict[str, Any] | None:
    """Look for a job the database does not know yet (pushed straight to Redis)."""
    for q in a.settings.queues:
        for raw in a.client.lrange(a.keys.queue(q), 0, -1):
            if _payload_id(raw) == job_id:
                return {"id": job_id, "status": "queued", "queue": q, "job": _loads(raw)}
    for member, score in a.client.zrange(a.keys.scheduled, 0, -1, withscores=True):
        _, _, payload = member.partition(b"\n")
        if _payload_id(payload) == job_id:
            return {"id": job_id, "status": "scheduled", "run_at": score, "job": _loads(payload)}
    for _, entry in a.broker.failed_entries():
        if entry.get("id") == job_id:
            return {"id": job_id, "status": "failed", "error": entry.get("error")}
    return None


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _payload_id(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return str(data["id"]) if isinstance(data, dict) and "id" in data else None


def cmd_status(a: App, args: argparse.Namespace) -> int:
    row = a.store.get(args.id)
    if row is None:
        row = find_in_redis(a, args.id)
    if row is None:
        if args.json:
            _print_json({"id": args.id, "status": "unknown"})
        else:
            print(f"job {args.id}: unknown", file=sys.stderr)
        return 1
    if args.json:
        _print_json(row)
        return 0
    print(f"job {row['id']}: {row['status']}")
    for key in (
        "queue",
        "processor",
        "attempts",
        "progress",
        "stage",
        "worker_id",
        "queued_at",
        "started_at",
        "finished_at",
        "run_at",
        "error_type",
        "error",
    ):
        if row.get(key) not in (None, ""):
            print(f"  {key:12} {row[key]}")
    if row.get("result") is not None:
        print(f"  {'result':12} {json.dumps(row['result'])[:2000]}")
    for att in a.store.attempts(args.id):
        detail = f" {att['error_type']}: {att['error']}" if att.get("error") else ""
        print(f"  attempt {att['number']}: {att['outcome']} on {att['worker_id']}{detail}")
    return 0


def gather_info(a: App) -> dict[str, Any]:
    c, k = a.client, a.keys
    queues = {q: c.llen(k.queue(q)) for q in a.settings.queues}
    workers = live_workers(c, k)
    for w in workers:
        # The in-flight lists are the truth about what a worker runs right now.
        held = [
            raw
            for q in (w.get("queues") or "").split(",")
            if q
            for raw in c.lrange(k.inflight(w["id"], q), 0, -1)
        ]
        w["in_flight"] = len(held)
        w["current_job"] = ",".join(filter(None, (_payload_id(raw) for raw in held)))
    return {
        "queues": queues,
        "scheduled": c.zcard(k.scheduled),
        "failed": c.llen(k.failed),
        "running": c.hlen(k.running),
        "workers": workers,
        "live_workers": sum(1 for w in workers if w["alive"]),
        "jobs_by_status": a.store.status_counts(),
    }


def cmd_info(a: App, args: argparse.Namespace) -> int:
    info = gather_info(a)
    if args.json:
        _print_json(info)
        return 0
    print("queues (priority order):")
    for q, n in info["queues"].items():
        print(f"  {a.keys.queue(q):40} {n}")
    print(f"scheduled (retries, run_at): {info['scheduled']}")
    print(f"failed:                      {info['failed']}  ({a.keys.failed})")
    print(f"running:                     {info['running']}")
    print(f"workers: {info['live_workers']} live")
    for w in info["workers"]:
        state = "alive" if w["alive"] else "DEAD (awaiting recovery)"
        print(
            f"  {w['id']:40} {state:8} in flight {w['in_flight']}"
            f"  job {w.get('current_job') or '-'}  device {w.get('device') or '?'}"
        )
    counts = sorted(info["jobs_by_status"].items())
    print("jobs by status:", ", ".join(f"{s} {n}" for s, n in counts))
    return 0


def cmd_failed(a: App, args: argparse.Namespace) -> int:
    entries = a.broker.failed_entries()
    if args.action == "list":
        if getattr(args, "json", False):
            _print_json([e for _, e in entries])
            return 0
        for _, e in entries:
            err = e.get("error") or {}
            print(
                f"{e.get('id')}  {e.get('failed_at', '')}  attempts={e.get('attempts')}  "
                f"{err.get('type')}: {(err.get('message') or '')[:120]}"
            )
        print(f"{len(entries)} failed", file=sys.stderr)
        return 0
    if args.action == "show":
        for _, e in entries:
            if e.get("id") == args.id:
                print(json.dumps(e, indent=2, default=str))
                return 0
        print(f"no failed job {args.id}", file=sys.stderr)
        return 1
    if args.action == "purge":
        n = a.client.delete(a.keys.failed) and len(entries)
        print(f"purged {n} failed jobs")
        return 0
    if args.action == "requeue":
        if not args.all and not args.id:
            print("requeue needs an ID or --all", file=sys.stderr)
            return 2
        done = 0
        for raw, e in entries:
            if not args.all and e.get("id") != args.id:
                continue
            job = e.get("job")
            if not isinstance(job, dict):
                print(f"{e.get('id')}: not a JSON object, cannot be requeued", file=sys.stderr)
                continue
            job = {**job, "id": e.get("id") or job.get("id")}
            job.pop("attempts", None)
            queue = e.get("queue") or a.settings.queues[0]
            try:
                spec, _ = parse_payload(json.dumps(job), max_bytes=a.settings.max_payload_bytes * 2)
            except BadPayload:
                spec = None
            payload = spec.to_payload() if spec else json.dumps(job)
            if a.broker.requeue_failed(raw, queue, payload):
                if spec is not None:
                    a.store.enqueued(spec, queue)
                done += 1
                print(f"requeued {e.get('id')} on {queue}")
        if done == 0:
            print("nothing requeued", file=sys.stderr)
            return 1
        return 0
    return 2


def cmd_enqueue(a: App, args: argparse.Namespace) -> int:
    try:
        params = json.loads(args.params)
    except ValueError as exc:
        print(f"--params is not JSON: {exc}", file=sys.stderr)
        return 2
    queue = args.queue or a.settings.queues[0]
    data: dict[str, Any] = {
        "id": args.id or new_job_id(),
        "processor": args.processor,
        "params": params,
        "queued_at": utcnow().isoformat(),
    }
    if args.max_attempts:
        data["max_attempts"] = args.max_attempts
    if args.timeout is not None:
        data["timeout"] = args.timeout
    run_at = time.time() + args.delay if args.delay > 0 else None
    if run_at:
        data["run_at"] = run_at
    try:
        job: Job = Job.model_validate(data)
    except Exception as exc:
        print(f"invalid job: {exc}", file=sys.stderr)
        return 2
    a.store.enqueued(job, queue)
    # In the scheduled set the score holds the due time: the promoted job runs at once.
    payload = job.model_copy(update={"run_at": None}).to_payload()
    a.broker.enqueue(queue, payload, run_at=run_at)
    print(job.id)
    return 0


def cmd_cancel(a: App, args: argparse.Namespace) -> int:
    removed = 0
    for q in a.settings.queues:
        for raw in a.client.lrange(a.keys.queue(q), 0, -1):
            if _payload_id(raw) == args.id and a.client.lrem(a.keys.queue(q), 1, raw):
                removed += 1
                if a.store.get(args.id) is None:
                    # Pushed straight to Redis: give it a row, so its cancellation shows.
                    default = a.settings.queue_processors.get(q)
                    try:
                        job, _ = parse_payload(raw, default_processor=default)
                        a.store.enqueued(job, q)
                    except BadPayload:
                        pass
    a.client.sadd(a.keys.cancel, args.id)
    a.store.cancel(args.id)
    print(f"cancelled {args.id}" + (f" (removed {removed} from its queue)" if removed else ""))
    return 0


def cmd_demo(a: App, args: argparse.Namespace) -> int:
    """Start the daemon, enqueue a few jobs (one of them bad), show where each ended."""
    import os
    import signal
    import subprocess

    queue = a.settings.queues[0]
    env = {**os.environ, "REDIS_URL": _client_url(a.client)}
    daemon = subprocess.Popen([sys.executable, "-m", "worker", "run"], env=env)
    ids = []
    try:
        for text in ("hello", "from", "stoker"):
            job = Job(id=new_job_id(), processor="echo", params={"text": text}, queued_at=utcnow())
            a.store.enqueued(job, queue)
            a.broker.enqueue(queue, job.to_payload())
            ids.append(job.id)
        a.client.lpush(a.keys.queue(queue), '{"id": "demo-bad", "processor": "no_such_processor"}')
        ids.append("demo-bad")
        print(f"enqueued {len(ids)} demo jobs on {a.keys.queue(queue)}", flush=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and daemon.poll() is None:
            rows = [a.store.get(i) or {} for i in ids]
            if all(r.get("status") in ("succeeded", "failed") for r in rows):
                break
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(90)
    print("demo jobs:")
    for job_id in ids:
        row = a.store.get(job_id) or {}
        detail = json.dumps(row.get("result")) if row.get("result") else row.get("error") or ""
        print(f"  {job_id:34} {row.get('status', '?'):10} {detail}")
    ok = all((a.store.get(i) or {}).get("status") == "succeeded" for i in ids[:-1])
    return 0 if ok else 1


def _client_url(client: redis.Redis) -> str:
    kw = client.connection_pool.connection_kwargs
    return f"redis://{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
