"""Bad input: straight to the failed list with a clear reason; nothing else is touched."""

from __future__ import annotations

import pytest

from tests.unit.conftest import Harness


def _only_failure(h: Harness) -> dict:
    (entry,) = h.failed()
    return entry


def test_malformed_json_goes_to_failed_list_with_reason(harness: Harness) -> None:
    harness.push("{not json")
    harness.drain()
    entry = _only_failure(harness)
    assert entry["error"]["type"] == "BadPayload"
    assert "malformed JSON" in entry["error"]["message"]
    assert entry["raw"] == "{not json"


def test_non_object_goes_to_failed_list(harness: Harness) -> None:
    harness.push("[1, 2, 3]")
    harness.drain()
    assert "JSON object, got list" in _only_failure(harness)["error"]["message"]


def test_unknown_processor_fails_with_a_row_naming_it(harness: Harness) -> None:
    harness.push({"id": "u1", "processor": "no_such_thing"})
    harness.drain()
    entry = _only_failure(harness)
    assert entry["error"]["type"] == "UnknownProcessor"
    assert "no_such_thing" in entry["error"]["message"]
    row = harness.row("u1")
    assert row is not None and row["status"] == "failed" and "no_such_thing" in row["error"]


def test_invalid_params_fail_permanently_without_retry(harness: Harness) -> None:
    harness.push({"id": "p1", "processor": "echo", "params": {"text": 5}})
    harness.drain()
    entry = _only_failure(harness)
    assert "invalid params for echo: text" in entry["error"]["message"]
    assert entry["attempts"] == 1
    assert harness.row("p1")["status"] == "failed"


def test_unexpected_param_is_rejected(harness: Harness) -> None:
    harness.push({"id": "p2", "processor": "echo", "params": {"txet": "typo"}})
    harness.drain()
    assert "txet" in _only_failure(harness)["error"]["message"]


def test_oversized_payload_goes_to_failed_list(harness: Harness) -> None:
    harness.push({"id": "big", "processor": "echo", "params": {"text": "x" * 5000}})
    harness.drain(max_payload_bytes=1000)
    entry = _only_failure(harness)
    assert "exceeds the limit of 1000 bytes" in entry["error"]["message"]
    assert harness.row("big")["status"] == "failed"


def test_missing_input_file_is_a_clear_permanent_failure(harness: Harness) -> None:
    from processors.base import PermanentError
    from processors.media import resolve_media_path

    with pytest.raises(PermanentError, match="does not exist"):
        resolve_media_path(harness.settings.media_root, "nope.wav")


def test_bad_jobs_do_not_disturb_good_ones(harness: Harness) -> None:
    harness.push({"id": "good1", "processor": "echo", "params": {"text": "a"}})
    harness.push("{broken")
    harness.push({"id": "bad", "processor": "nope"})
    harness.push({"id": "good2", "processor": "echo", "params": {"text": "b"}})
    worker = harness.drain()
    assert harness.row("good1")["result"] == {"text": "a"}
    assert harness.row("good2")["result"] == {"text": "b"}
    assert len(harness.failed()) == 2
    assert worker.stats.succeeded == 2 and worker.stats.rejected == 2
    assert harness.queue() == []


def test_failed_entry_carries_job_error_attempts_worker_and_times(harness: Harness) -> None:
    harness.push({"id": "f1", "processor": "echo", "params": {"fail": "permanent"}})
    harness.drain()
    entry = _only_failure(harness)
    assert entry["job"]["id"] == "f1" and entry["job"]["processor"] == "echo"
    assert entry["error"]["type"] == "PermanentError"
    assert "Traceback" in entry["error"]["traceback"]
    assert entry["attempts"] == 1
    assert entry["worker_id"] == "unit-worker"
    assert entry["failed_at"] and entry["queued_at"]
