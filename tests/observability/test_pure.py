"""Table tests of the observability modules' pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from config import Settings
from worker.cluster_metrics import queued_at_epoch
from worker.gpu import gpu_label, parse_visible
from worker.health import judge
from worker.metrics import OUTCOMES, outcome_label, restart_reason
from worker.notify import notify_address, watchdog_interval
from worker.retention import parse_age, plan_from_days


@pytest.mark.parametrize(
    ("disposition", "kind", "label"),
    [
        ("succeeded", "succeeded", "succeeded"),
        ("retried", "error", "retried"),
        ("failed", "error", "failed"),
        ("retried", "timeout", "timeout"),
        ("failed", "timeout", "timeout"),
        ("failed", "crashed", "crashed"),
        ("cancelled", "interrupted", "cancelled"),
        ("rejected", None, "rejected"),
    ],
)
def test_an_attempt_is_labelled_by_its_cause_when_it_timed_out_or_crashed(
    disposition: str, kind: str | None, label: str
) -> None:
    assert outcome_label(disposition, kind) == label
    assert label in OUTCOMES


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("timeout", "timeout"),
        ("crashed", "crashed"),
        ("interrupted", "stopped"),
        ("succeeded", "recycled"),
    ],
)
def test_an_executor_restart_reason_follows_the_attempt(kind: str, reason: str) -> None:
    assert restart_reason(kind) == reason


@pytest.mark.parametrize(
    ("value", "visible"),
    [
        (None, None),
        ("", []),
        ("3", ["3"]),
        ("0, 2", ["0", "2"]),
        ("1,-1,2", ["1"]),
        ("GPU-8a2f,1", ["GPU-8a2f", "1"]),
    ],
)
def test_cuda_visible_devices_is_read_like_cuda_reads_it(
    value: str | None, visible: list[str] | None
) -> None:
    assert parse_visible(value) == visible


@pytest.mark.parametrize(
    ("index", "visible", "label"),
    [(0, ["3"], "3"), (1, ["3", "5"], "5"), (0, None, "0"), (2, ["1"], "2")],
)
def test_a_gpu_is_labelled_as_the_host_names_it(
    index: int, visible: list[str] | None, label: str
) -> None:
    assert gpu_label(index, visible) == label


@pytest.mark.parametrize(
    ("value", "address"),
    [
        (None, None),
        ("", None),
        ("relative/path", None),
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@abstract", "\0abstract"),
    ],
)
def test_notify_socket_addresses(value: str | None, address: str | None) -> None:
    assert notify_address(value) == address


@pytest.mark.parametrize(
    ("env", "pid", "seconds"),
    [
        ({}, 10, None),
        ({"WATCHDOG_USEC": "0"}, 10, None),
        ({"WATCHDOG_USEC": "60000000"}, 10, 60.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "10"}, 10, 2.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "11"}, 10, None),
        ({"WATCHDOG_USEC": "abc"}, 10, None),
    ],
)
def test_the_watchdog_applies_only_to_the_process_it_names(
    env: dict[str, str], pid: int, seconds: float | None
) -> None:
    assert watchdog_interval(env, pid) == seconds


NOW = 1_000_000.0
HEALTHY = {"alive": True, "ready": "1", "state": "idle", "loop_at": str(NOW - 1), "pid": "42"}


@pytest.mark.parametrize(
    ("info", "reason"),
    [
        (HEALTHY, None),
        (HEALTHY | {"state": "busy"}, None),
        (HEALTHY | {"alive": False}, "heartbeat expired"),
        (HEALTHY | {"ready": "0"}, "not ready"),
        (HEALTHY | {"state": "stopping"}, "stopping"),
        (HEALTHY | {"loop_at": str(NOW - 500)}, "fetch loop silent for 500 s"),
        (HEALTHY | {"loop_at": str(NOW - 500), "stall_s": "1000"}, None),
        (HEALTHY | {"host": "here", "pid": "43"}, "process 43 is gone"),
        (HEALTHY | {"host": "elsewhere", "pid": "43"}, None),
    ],
)
def test_a_worker_is_judged_from_its_hash_heartbeat_and_pid(info: dict, reason: str | None) -> None:
    got = judge(info, now=NOW, stall_s=120, host="here", pid_alive=lambda pid: pid == 42)
    assert (got is None) if reason is None else (got is not None and reason in got)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400),
        ("12h", 43200),
        ("90m", 5400),
        ("45s", 45),
        ("2w", 1209600),
        ("7", 604800),
        ("1.5h", 5400),
    ],
)
def test_ages_read_with_their_unit(text: str, seconds: float) -> None:
    assert parse_age(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "d", "30x", "-3d", "thirty days"])
def test_a_malformed_age_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_age(text)


def test_a_retention_plan_skips_statuses_kept_forever_and_unfinished_ones() -> None:
    now = datetime(2026, 1, 31, tzinfo=UTC)
    plan = plan_from_days({"succeeded": 30, "failed": 0, "running": 1}, now)
    assert plan == {"succeeded": datetime(2026, 1, 1, tzinfo=UTC)}


@pytest.mark.parametrize(
    ("raw", "epoch"),
    [
        (b'{"queued_at": 1700000000}', 1700000000.0),
        (b'{"queued_at": "2023-11-14T22:13:20Z"}', 1700000000.0),
        (b'{"queued_at": "2023-11-14T22:13:20+00:00"}', 1700000000.0),
        (b'{"queued_at": "2023-11-14T22:13:20"}', None),
        (b'{"queued_at": true}', None),
        (b'{"id": "x"}', None),
        (b"not json", None),
        (b"[1, 2]", None),
        (None, None),
    ],
)
def test_the_oldest_jobs_age_comes_from_its_queued_at(
    raw: bytes | None, epoch: float | None
) -> None:
    assert queued_at_epoch(raw) == epoch


@pytest.mark.parametrize(
    ("env", "port"), [("0", 0), ("9400", 9400), ("9400+3", 9403), ("9400+12", 9412)]
)
def test_the_metrics_port_may_be_a_sum_for_the_systemd_template(env: str, port: int) -> None:
    assert Settings(metrics_port=env).metrics_port == port


@pytest.mark.parametrize(
    ("env", "days"),
    [
        ("7", {"succeeded": 7.0, "failed": 7.0, "cancelled": 7.0}),
        ("succeeded=1,failed=2", {"succeeded": 1.0, "failed": 2.0}),
    ],
)
def test_retention_days_are_one_number_or_one_per_status(env: str, days: dict) -> None:
    assert Settings(retention_days=env).retention_days == days


def test_retention_days_refuse_an_unfinished_status() -> None:
    with pytest.raises(ValueError):
        Settings(retention_days="running=3")
