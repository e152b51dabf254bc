"""Builds stoker-dashboard.json (after editing: python deploy/grafana/build_dashboard.py)."""

from __future__ import annotations

import json
from pathlib import Path

DS = {"type": "prometheus", "uid": "${datasource}"}
R = "[$__rate_interval]"


def rate(metric: str, by: str, where: str = "") -> str:
    return f"sum by ({by}) (rate({metric}{where}{R}))"


def quantile(q: float, metric: str, by: str) -> tuple[str, str]:
    expr = f"histogram_quantile({q}, {rate(metric + '_bucket', 'le, ' + by)})"
    return expr, f"p{round(q * 100)} {{{{{by}}}}}"


GPU = "{{instance}} gpu {{gpu}}"
LOAD_MEAN = (
    rate("stoker_model_load_seconds_sum", "processor")
    + " / "
    + rate("stoker_model_load_seconds_count", "processor")
)

# (title, unit, [(expr, legend)], width)
PANELS: list[tuple[str, str, list[tuple[str, str]], int]] = [
    ("Queue depth", "short", [("stoker_queue_jobs", "{{queue}}")], 8),
    ("Oldest waiting job", "s", [("stoker_queue_oldest_job_age_seconds", "{{queue}}")], 8),
    (
        "Workers",
        "short",
        [
            ("stoker_workers_live", "live"),
            ("stoker_workers_dead", "dead"),
            ("stoker_running_jobs", "running jobs"),
        ],
        8,
    ),
    (
        "Jobs settled per second by outcome",
        "ops",
        [(rate("stoker_jobs_total", "outcome"), "{{outcome}}")],
        12,
    ),
    (
        "Successes per second by queue and processor",
        "ops",
        [
            (
                rate("stoker_jobs_total", "queue, processor", '{outcome="succeeded"}'),
                "{{queue}} {{processor}}",
            )
        ],
        12,
    ),
    (
        "Job duration p50 / p95 / p99",
        "s",
        [quantile(q, "stoker_job_duration_seconds", "processor") for q in (0.5, 0.95, 0.99)],
        12,
    ),
    (
        "Wait before start p50 / p95",
        "s",
        [quantile(q, "stoker_job_wait_seconds", "queue") for q in (0.5, 0.95)],
        12,
    ),
    (
        "Worker utilization (busy fraction)",
        "percentunit",
        [(f"rate(stoker_worker_busy_seconds_total{R})", "{{instance}}")],
        12,
    ),
    ("GPU utilization (NVML)", "percentunit", [("stoker_gpu_utilization_ratio", GPU)], 12),
    (
        "GPU memory (torch, executor)",
        "bytes",
        [
            ("stoker_gpu_memory_allocated_bytes", "allocated " + GPU),
            ("stoker_gpu_memory_reserved_bytes", "reserved " + GPU),
            ("stoker_gpu_memory_total_bytes", "total " + GPU),
        ],
        12,
    ),
    ("GPU temperature", "celsius", [("stoker_gpu_temperature_celsius", GPU)], 12),
    (
        "Executor restarts",
        "short",
        [(f"sum by (reason) (increase(stoker_executor_restarts_total{R}))", "{{reason}}")],
        8,
    ),
    ("Mean model load time", "s", [(LOAD_MEAN, "{{processor}}")], 8),
    (
        "Failed list and scheduled",
        "short",
        [
            ("stoker_failed_list_jobs", "failed list"),
            ("stoker_scheduled_jobs", "scheduled"),
            ("stoker_scheduled_due_jobs", "due"),
        ],
        8,
    ),
    ("Jobs table by status", "short", [("stoker_jobs_by_status", "{{status}}")], 12),
    (
        "Fetch loop silence per worker",
        "s",
        [("stoker_worker_loop_silence_seconds", "{{worker}}")],
        12,
    ),
]


def build() -> dict:
    panels, x, y = [], 0, 0
    for i, (title, unit, targets, width) in enumerate(PANELS):
        if x + width > 24:
            x, y = 0, y + 8
        panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": title,
                "datasource": DS,
                "gridPos": {"h": 8, "w": width, "x": x, "y": y},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [
                    {"refId": chr(65 + j), "datasource": DS, "expr": e, "legendFormat": leg}
                    for j, (e, leg) in enumerate(targets)
                ],
            }
        )
        x += width
    variable = {"name": "datasource", "type": "datasource", "query": "prometheus"}
    return {
        "title": "Stoker",
        "uid": "stoker",
        "tags": ["stoker", "queue", "gpu"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [variable | {"label": "Prometheus"}]},
        "panels": panels,
    }


if __name__ == "__main__":
    out = Path(__file__).with_name("stoker-dashboard.json")
    out.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {out}")
