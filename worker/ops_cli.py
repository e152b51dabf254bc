"""`python -m worker health | exporter | prune`: the operator's commands.

python -m worker health [--worker ID] [--json]     exit 0: alive and ready; 1: why not
python -m worker exporter [--port P] [--host H]    cluster metrics on /metrics
python -m worker prune --older-than 30d [--status S] [--dry-run] [--batch N]

None of them starts an embedded Redis or migrates the database: a probe must only look.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import Engine, create_engine, text

from config import Settings
from models import FINISHED
from worker.keys import Keys

COMMANDS = ("health", "exporter", "prune")


def add_parsers(sub: Any) -> None:
    """Register the commands on the main parser's subparsers."""
    h = sub.add_parser("health", help="exit 0 if the worker is alive and ready (exec probes)")
    h.add_argument("--worker", help="worker id (default: WORKER_ID, else every worker here)")
    h.add_argument("--json", action="store_true")

    e = sub.add_parser("exporter", help="serve cluster metrics (queues, workers, jobs)")
    e.add_argument("--port", type=int, default=9470)
    e.add_argument("--host", default="0.0.0.0")

    p = sub.add_parser("prune", help="delete finished jobs older than an age")
    p.add_argument("--older-than", required=True, help="age: 30d, 12h, 90m, 2w")
    p.add_argument(
        "--status",
        action="append",
        choices=sorted(FINISHED),
        help="only this status (repeatable; default: succeeded, failed, cancelled)",
    )
    p.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    p.add_argument("--batch", type=int, default=None, help="jobs per transaction")
    p.add_argument(
        "--pause-ratio",
        type=float,
        default=1.0,
        help="seconds of pause per second of deleting (default 1: half the database's time)",
    )
    p.add_argument("--json", action="store_true")


def run(command: str, args: argparse.Namespace, settings: Settings) -> int:
    return {"health": cmd_health, "exporter": cmd_exporter, "prune": cmd_prune}[command](
        args, settings
    )


def probe_redis_url(settings: Settings) -> str | None:
    """`REDIS_URL`, or the embedded server's URL when one is running; never starts one."""
    if settings.redis_url:
        return settings.redis_url
    info = Path(settings.data_dir) / "redis" / "server.json"
    try:
        return str(json.loads(info.read_text())["url"])
    except (OSError, ValueError, KeyError):
        return None


def probe_engine(url: str) -> Engine:
    """An engine that gives up connecting after a few seconds (a probe must not hang)."""
    if url.startswith("postgresql"):
        return create_engine(url, connect_args={"connect_timeout": 3}, pool_pre_ping=True)
    from worker.store import make_engine

    return make_engine(url)


def _emit(args: argparse.Namespace, ok: bool, report: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps({"healthy": ok} | report, default=str))
    else:
        for w in report.get("workers", []):
            print(f"{w['id'] or '-'}: {'ok' if w['healthy'] else 'UNHEALTHY'}: {w['reason']}")
        if report.get("error"):
            print(f"UNHEALTHY: {report['error']}")
    return 0 if ok else 1


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    from worker.health import check_workers
    from worker.heartbeat import live_workers

    url = probe_redis_url(settings)
    if url is None:
        return _emit(args, False, {"error": "no REDIS_URL and no embedded Redis running"})
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        workers = live_workers(client, Keys.from_settings(settings))
    except redis.RedisError as exc:
        return _emit(args, False, {"error": f"redis unreachable: {exc}"})
    finally:
        client.close()
    ok, reports = check_workers(
        workers, worker_id=args.worker or settings.id, stall_s=settings.stall_timeout
    )
    report: dict[str, Any] = {"workers": reports}
    engine = probe_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        ok = False
        report["error"] = f"database unreachable: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        engine.dispose()
    return _emit(args, ok, report)


def cmd_exporter(args: argparse.Namespace, settings: Settings) -> int:
    from worker import signals
    from worker.cluster_metrics import cluster_registry
    from worker.endpoint import Endpoint, metrics_route

    url = probe_redis_url(settings)
    if url is None:
        print("exporter: set REDIS_URL (no embedded Redis is running)", file=sys.stderr)
        return 2
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
    engine = probe_engine(settings.resolved_database_url)
    registry = cluster_registry(client, Keys.from_settings(settings), settings.queues, engine)

    def healthz(_headers: Any) -> tuple[int, str, bytes]:
        return 200, "text/plain", b"ok\n"

    endpoint = Endpoint(
        args.host, args.port, {"/metrics": metrics_route(registry), "/healthz": healthz}
    )
    try:
        endpoint.start()
    except OSError as exc:
        print(f"exporter: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    print(f"stoker exporter on http://{args.host}:{endpoint.port}/metrics", flush=True)
    try:
        while not signals.pending:  # `python -m worker` catches SIGTERM/SIGINT there
            time.sleep(0.2)
    finally:
        endpoint.stop()
        engine.dispose()
    return 0


def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    from worker.protocol import utcnow
    from worker.retention import count_prunable, parse_age, prune
    from worker.store import make_engine

    try:
        age = parse_age(args.older_than)
    except ValueError as exc:
        print(f"prune: {exc}", file=sys.stderr)
        return 2
    cutoff = utcnow() - age
    plan = dict.fromkeys(args.status or sorted(FINISHED), cutoff)
    engine = make_engine(settings.resolved_database_url)
    try:
        if args.dry_run:
            result = count_prunable(engine, plan)
        else:
            batch = args.batch or settings.retention_batch
            result = prune(engine, plan, batch=batch, pause_ratio=args.pause_ratio)
    finally:
        engine.dispose()
    summary = {
        "dry_run": result.dry_run,
        "older_than": args.older_than,
        "cutoff": cutoff.isoformat(),
        "jobs": result.jobs,
        "total": result.total,
        "attempts": result.attempts,
        "frame_results": result.frame_results,
        "seconds": round(result.seconds, 3),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    verb = "would delete" if result.dry_run else "deleted"
    detail = ", ".join(f"{s} {n}" for s, n in result.jobs.items())
    print(f"{verb} {result.total} jobs finished before {cutoff:%Y-%m-%d %H:%M} UTC ({detail})")
    if result.dry_run:
        print(f"  with {result.attempts} attempts and {result.frame_results} frame_results")
    return 0
