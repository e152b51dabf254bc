"""The shipped deployment files: the systemd unit, Prometheus alert rules, the Grafana
dashboard, the KEDA example."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT

DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "worker@.service"


def directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_the_unit_is_a_notify_service_with_a_watchdog_and_a_port_per_instance() -> None:
    d = directives(UNIT)
    assert d["Type"] == ["notify"]
    assert int(d["WatchdogSec"][0]) >= 30
    assert "WORKER_METRICS_PORT=9400+%i" in d["Environment"]
    assert "DevicePolicy" in d and any("/dev/nvidia%i" in v for v in d["DeviceAllow"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze")
def test_systemd_analyze_rates_the_unit_5_or_lower(tmp_path: Path) -> None:
    unit = tmp_path / "worker@0.service"
    shutil.copy(UNIT, unit)
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout + proc.stderr)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= 5.0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_promtool_accepts_the_alert_rules_and_their_tests() -> None:
    rules = DEPLOY / "prometheus" / "stoker-alerts.yml"
    tests = rules.with_suffix(".test.yml")
    for args in (["check", "rules", str(rules)], ["test", "rules", str(tests)]):
        proc = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_grafana_dashboard_queries_only_metrics_stoker_exports() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "stoker-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    known: set[str] = set()
    for module in ("metrics.py", "cluster_metrics.py", "gpu.py"):
        known |= set(re.findall(r"\"(stoker_[a-z_]+)\"", (ROOT / "worker" / module).read_text()))
    known |= {f"stoker_gpu_memory_{n}_bytes" for n in ("allocated", "reserved", "total")}
    for expr in exprs:
        for name in re.findall(r"\bstoker_[a-z_]+", expr):
            base = re.sub(r"_(total|bucket|sum|count)$", "", name)
            assert name in known or base in known, f"{name} in {expr!r}"


def test_the_keda_example_reads_the_queue_list_directly() -> None:
    text = (DEPLOY / "keda" / "scaledobject.yaml").read_text()
    assert "type: redis" in text and "listName: stoker:queue:default" in text
