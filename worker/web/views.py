"""Formatting for the templates: ages, times, pretty JSON, the throughput chart, URLs.

Nothing here marks text safe: the templates escape everything they are given.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from models import STATUSES
from worker.queries import JobFilter


def job_url(job_id: str) -> str:
    return "/jobs/" + quote(str(job_id), safe="")


def filters_qs(flt: JobFilter) -> str:
    pairs = {k: v for k, v in vars(flt).items() if v}
    return urlencode(pairs)


def is_number(text: Any) -> bool:
    try:
        return math.isfinite(float(text))
    except Exception:  # None, text, or a template's undefined value
        return False


def duration(seconds: Any) -> str:
    """`3 s`, `4 min`, `2.5 h`, `3 d`; `-` for None."""
    if seconds is None or not is_number(seconds):
        return "-"
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return None


def ago(value: Any) -> str:
    """How long ago a time (ISO text, epoch or datetime) was: `12 s ago`."""
    t = _parse(value)
    if t is None:
        return "-"
    delta = time.time() - t.timestamp()
    return f"in {duration(-delta)}" if delta < 0 else f"{duration(delta)} ago"


def when(value: Any) -> str:
    t = _parse(value)
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def percent(value: Any) -> str:
    return f"{float(value) * 100:.0f} %" if is_number(value) else "-"


def mib(value: Any) -> str:
    return f"{float(value):.0f} MiB" if is_number(value) else "-"


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    label: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    peak: int
    total: int
    width: int = 600
    height: int = 80
    bar_width: float = 8.0


def bar_chart(rows: list[tuple[datetime, int]], width: int = 600, height: int = 80) -> Chart:
    """An SVG-ready bar chart of (minute, count) rows, oldest on the left."""
    peak = max((n for _, n in rows), default=0)
    step = width / max(len(rows), 1)
    bars = []
    for i, (minute, n) in enumerate(rows):
        h = 0.0 if peak == 0 else max(1.0, (height - 4) * n / peak) if n else 0.0
        label = f"{minute.strftime('%H:%M')} UTC: {n} finished"
        bars.append(
            Bar(x=round(i * step, 1), y=round(height - h, 1), height=round(h, 1), label=label)
        )
    total = sum(n for _, n in rows)
    return Chart(bars, peak, total, width, height, round(max(step - 1.5, 1.0), 1))


def status_class(status: Any) -> str:
    return f"st-{status}" if status in STATUSES or status in ("scheduled", "unknown") else "st-x"


FILTERS = {
    "ago": ago,
    "when": when,
    "pretty": pretty,
    "percent": percent,
    "duration": duration,
    "mib": mib,
    "job_url": job_url,
    "status_class": status_class,
    "urlquote": lambda v: quote(str(v), safe=""),
}

__all__ = ["FILTERS", "STATUSES", "bar_chart", "filters_qs", "job_url"]
