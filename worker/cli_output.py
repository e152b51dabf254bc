"""How the command line shows jobs, failures and the system: pure functions over rows.

Nothing here is cut silently: a shortened value ends with a marker that says how much is
left out and how to see it all.
"""

from __future__ import annotations

import json
from typing import Any

STATUS_FIELDS = (
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
)
RESULT_LIMIT = 2000


def shorten(text: str, limit: int | None, hint: str = "") -> str:
    """`text`, or its first `limit` characters and a marker saying how many are left out."""
    if limit is None or len(text) <= limit:
        return text
    more = f"; {hint}" if hint else ""
    return f"{text[:limit]}… [{len(text) - limit:,} more characters{more}]"


def format_status(
    row: dict[str, Any], attempts: list[dict[str, Any]], *, full: bool = False
) -> str:
    """`status ID`: the row's fields, the result (whole with `full`) and each attempt."""
    lines = [f"job {row['id']}: {row['status']}"]
    for key in STATUS_FIELDS:
        value = row.get(key)
        if value in (None, ""):
            continue
        if key == "progress" and isinstance(value, int | float):
            value = f"{value:.0%}"
        text = str(value)
        if "\n" in text:
            text = text.replace("\n", "\n" + " " * 15)
        lines.append(f"  {key:12} {text}")
    if row.get("result") is not None:
        if full:
            body = json.dumps(row["result"], indent=2, default=str)
            lines.append(f"  {'result':12} " + body.replace("\n", "\n  "))
        else:
            body = shorten(json.dumps(row["result"], default=str), RESULT_LIMIT, "--full shows all")
            lines.append(f"  {'result':12} {body}")
    for att in attempts:
        detail = f" {att['error_type']}: {att['error']}" if att.get("error") else ""
        duration = att.get("duration")
        took = f" in {duration:.2f} s" if isinstance(duration, int | float) else ""
        lines.append(
            f"  attempt {att['number']}: {att['outcome']}{took} on {att['worker_id']}{detail}"
        )
        if full and att.get("traceback"):
            lines.append("    " + str(att["traceback"]).rstrip().replace("\n", "\n    "))
    return "\n".join(lines)


def _error_of(entry: dict[str, Any]) -> dict[str, Any]:
    err = entry.get("error")
    return err if isinstance(err, dict) else {"message": err} if err else {}


def _first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0] if lines else ""


def failed_table(entries: list[dict[str, Any]], width: int | None = None) -> str:
    """`failed list`: one row per entry under a header; the error column fits `width`
    (None: never cut) and a cut message ends with `…`."""
    head = ("ID", "FAILED AT", "TRIES", "QUEUE", "ERROR")
    rows = []
    for e in entries:
        err = _error_of(e)
        message = _first_line(err.get("message") or e.get("raw"))
        kind = err.get("type") or "?"
        rows.append(
            (
                str(e.get("id") or "-"),
                str(e.get("failed_at") or "")[:19].replace("T", " "),
                str(e.get("attempts") if e.get("attempts") is not None else "-"),
                str(e.get("queue") or "-"),
                f"{kind}: {message}" if message else kind,
            )
        )
    widths = [max([len(head[i])] + [len(r[i]) for r in rows]) for i in range(4)]
    out = []
    for r in [head, *rows]:
        left = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:4]))
        error = r[4]
        if width is not None and len(left) + 2 + len(error) > width:
            error = error[: max(10, width - len(left) - 3)] + "…"
        out.append(f"{left}  {error}".rstrip())
    return "\n".join(out)


def format_failed_entry(entry: dict[str, Any]) -> str:
    """`failed show ID`: the entry's fields, the job as JSON, the traceback as written."""
    err = _error_of(entry)
    job = entry.get("job") if isinstance(entry.get("job"), dict) else {}
    kind = ", ".join(
        str(x) for x in (err.get("kind"), "permanent" * bool(err.get("permanent"))) if x
    )
    fields = [
        ("queue", entry.get("queue")),
        ("processor", job.get("processor")),
        ("error", f"{err.get('type') or '?'}" + (f" ({kind})" if kind else "")),
        ("attempts", entry.get("attempts")),
        ("worker", entry.get("worker_id")),
        ("queued_at", entry.get("queued_at")),
        ("failed_at", entry.get("failed_at")),
    ]
    lines = [f"failed job {entry.get('id')}"]
    lines += [f"  {k:10} {v}" for k, v in fields if v not in (None, "")]
    message = str(err.get("message") or "")
    if message:
        lines.append("  message    " + message.replace("\n", "\n             "))
    if job:
        lines.append("  job        " + json.dumps(job, default=str))
    elif entry.get("raw"):
        lines.append("  raw        " + str(entry["raw"]))
    if err.get("traceback"):
        lines += ["", str(err["traceback"]).rstrip()]
    return "\n".join(lines)


def format_info(info: dict[str, Any], queue_keys: dict[str, str], failed_key: str) -> str:
    """`info`: where the CLI looks (Redis, database, data folder), queues, workers, jobs."""
    where = info.get("where") or {}
    lines = [f"{k + ':':10}{v}" for k, v in where.items()]
    if info.get("redis_down"):
        lines.append(f"  ({info['redis_down']})")
    else:
        lines.append("queues (priority order):")
        lines += [f"  {queue_keys.get(q, q):40} {n}" for q, n in info["queues"].items()]
        lines.append(f"scheduled (retries, run_at): {info['scheduled']}")
        lines.append(f"failed:                      {info['failed']}  ({failed_key})")
        lines.append(f"running:                     {info['running']}")
        lines.append(f"workers: {info['live_workers']} live")
        for w in info["workers"]:
            state = "alive" if w["alive"] else "DEAD (awaiting recovery)"
            lines.append(
                f"  {w['id']:40} {state:8} in flight {w['in_flight']}"
                f"  job {w.get('current_job') or '-'}  device {w.get('device') or '?'}"
            )
    counts = sorted(info["jobs_by_status"].items())
    lines.append("jobs by status: " + (", ".join(f"{s} {n}" for s, n in counts) or "none"))
    return "\n".join(lines)


def progress_bar(fraction: float | None, stage: str | None, width: int = 30) -> str:
    """`[#########.....]  42%  stage`."""
    f = min(1.0, max(0.0, fraction or 0.0))
    filled = round(f * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {f:4.0%}  {stage or ''}".rstrip()
