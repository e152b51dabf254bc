"""The job protocol: what a producer may push and how it is read."""

from __future__ import annotations

import json

import pytest

from worker.protocol import BadPayload, parse_payload


def test_full_payload_is_accepted_as_given() -> None:
    job, generated = parse_payload(
        json.dumps(
            {
                "id": "abc",
                "processor": "echo",
                "params": {"text": "hi"},
                "max_attempts": 5,
                "timeout": 30,
                "queued_at": "2026-01-01T00:00:00Z",
                "run_at": 1767225600,
            }
        )
    )
    assert (job.id, job.processor, job.params, job.max_attempts, job.timeout) == (
        "abc",
        "echo",
        {"text": "hi"},
        5,
        30.0,
    )
    assert job.queued_at is not None and job.queued_at.tzinfo is not None
    assert job.run_at is not None and job.run_at.year == 2026
    assert not generated


def test_missing_id_is_generated() -> None:
    job, generated = parse_payload(b'{"processor": "echo"}')
    assert generated and len(job.id) == 32


def test_numeric_id_is_rejected_because_ids_are_strings() -> None:
    with pytest.raises(BadPayload, match="must be a string"):
        parse_payload(b'{"processor": "echo", "id": 42}')


def test_bare_payload_uses_the_queue_default_processor() -> None:
    job, _ = parse_payload(
        b'{"session_id": "s-1", "queued_at": "2026-01-01T00:00:00"}',
        default_processor="diarization",
    )
    assert job.processor == "diarization"
    assert job.params == {"session_id": "s-1"}


def test_bare_payload_without_a_queue_default_is_rejected() -> None:
    with pytest.raises(BadPayload, match="no 'processor'"):
        parse_payload(b'{"session_id": "s-1"}')


def test_malformed_json_is_rejected_with_the_parser_message() -> None:
    with pytest.raises(BadPayload, match="malformed JSON"):
        parse_payload(b'{"processor": ')


def test_non_object_is_rejected() -> None:
    with pytest.raises(BadPayload, match="JSON object, got list"):
        parse_payload(b"[1, 2]")


def test_oversized_payload_is_rejected_before_parsing() -> None:
    with pytest.raises(BadPayload, match="exceeds the limit of 100 bytes"):
        parse_payload(
            b'{"processor": "echo", "params": {"t": "' + b"x" * 200 + b'"}}', max_bytes=100
        )


def test_invalid_field_is_rejected_naming_the_field_and_keeping_the_id() -> None:
    with pytest.raises(BadPayload, match="max_attempts") as info:
        parse_payload(b'{"id": "j9", "processor": "echo", "max_attempts": 0}')
    assert info.value.job_id == "j9"


def test_payload_round_trips_and_keeps_producer_fields() -> None:
    job, _ = parse_payload(b'{"id": "a", "processor": "echo", "trace": "t-1"}')
    again, _ = parse_payload(job.to_payload())
    assert again.model_dump() == job.model_dump()
    assert json.loads(job.to_payload())["trace"] == "t-1"
