"""`watch` (follow one job live) and `results` (print or export its result and rows)."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from worker.cli_output import progress_bar, shorten
from worker.lifecycle import FINAL as FINAL_STATUSES
from worker.lifecycle import JobStatus

FINAL = tuple(sorted(FINAL_STATUSES))


def outcome_line(row: dict[str, Any]) -> str:
    """The last line `watch` prints: the result (shortened) or the error."""
    status = row["status"]
    if status == JobStatus.SUCCEEDED:
        body = shorten(json.dumps(row.get("result"), default=str), 1000, "`results ID` shows all")
        return f"job {row['id']} succeeded: {body}"
    error = f"{row.get('error_type') or ''}: {row.get('error') or ''}".strip(": ")
    return f"job {row['id']} {status}" + (f": {error}" if error else "")


def watch(
    load: Callable[[], dict[str, Any] | None],
    *,
    subscribe: Callable[[], Any] | None = None,
    out: TextIO = sys.stdout,
    tty: bool | None = None,
    timeout: float | None = None,
    interval: float = 0.25,
) -> int:
    """Follow a job until it ends: a progress bar with its stage (redrawn in place on a
    terminal, one line per change elsewhere), then the result or error.

    `load()` reads the job's row; `subscribe()`, when given, returns a pub/sub subscribed to
    its progress channel, so updates show as they are published. Exit code: 0 succeeded,
    1 failed, cancelled or unknown, 3 still unfinished after `timeout` seconds.
    """
    tty = out.isatty() if tty is None else tty
    pubsub = subscribe() if subscribe else None
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = ""
    try:
        while True:
            row = load()
            if row is None:
                print("job unknown", file=out)
                return 1
            status = row["status"]
            fraction = 1.0 if status == JobStatus.SUCCEEDED else row.get("progress")
            label = row.get("stage") if status == JobStatus.RUNNING else status
            if status == JobStatus.RUNNING and row.get("stage"):
                label = f"running: {row['stage']}"
            line = progress_bar(fraction, label)
            if line != shown:
                print(
                    ("\r" + line.ljust(len(shown))) if tty else line,
                    end="" if tty else "\n",
                    file=out,
                    flush=True,
                )
                shown = line
            if status in FINAL:
                if tty:
                    print(file=out)
                print(outcome_line(row), file=out, flush=True)
                return 0 if status == JobStatus.SUCCEEDED else 1
            if deadline is not None and time.monotonic() > deadline:
                if tty:
                    print(file=out)
                print(f"job {row['id']} still {status} after {timeout:g} s", file=out)
                return 3
            _wait(pubsub, interval)
    finally:
        if pubsub is not None:
            pubsub.close()


def _wait(pubsub: Any, interval: float) -> None:
    if pubsub is None:
        time.sleep(interval)
        return
    try:
        pubsub.get_message(ignore_subscribe_messages=True, timeout=interval)
    except Exception:  # a lost connection only slows the updates down
        time.sleep(interval)


def frame_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """frame_results rows as a table: frame_index, timestamp, then each value's key."""
    keys: list[str] = []
    for r in rows:
        for k in r.get("values") or {}:
            if k not in keys:
                keys.append(k)
    table = [
        [r["frame_index"], r["timestamp"], *[_cell((r.get("values") or {}).get(k)) for k in keys]]
        for r in rows
    ]
    return ["frame_index", "timestamp", *keys], table


def _cell(value: Any) -> Any:
    return json.dumps(value, default=str) if isinstance(value, dict | list) else value


def render_csv(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def render_results(row: dict[str, Any], frames: list[dict[str, Any]] | None, fmt: str) -> str:
    """A job's result (or, with `frames`, its frame_results rows) as JSON or CSV."""
    if frames is not None:
        if fmt == "csv":
            return render_csv(*frame_table(frames))
        keep = [{k: r[k] for k in ("frame_index", "timestamp", "values")} for r in frames]
        return json.dumps(keep, indent=2, default=str) + "\n"
    result = row.get("result")
    if fmt == "csv":
        items = result.items() if isinstance(result, dict) else [("result", result)]
        return render_csv(["key", "value"], [[k, _cell(v)] for k, v in items])
    return json.dumps(result, indent=2, default=str) + "\n"
