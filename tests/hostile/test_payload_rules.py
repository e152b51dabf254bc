"""`parse_payload` against hostile bytes: it only ever raises BadPayload, with the id a
payload legibly carries (and none when the id is not a valid one)."""

from __future__ import annotations

import json

import pytest

from worker.protocol import MAX_DEPTH, BadPayload, job_id_of, parse_payload


def _nested(depth: int, job_id: str | None = "deep") -> bytes:
    inner = "[" * depth + "]" * depth
    head = f'"id": "{job_id}", ' if job_id else ""
    return f'{{{head}"processor": "echo", "params": {{"a": {inner}}}}}'.encode()


REJECTED = [
    # (what, payload, the id the failure is filed under)
    ("100,000 open brackets", b"[" * 100_000, None),
    ("nested 2,000 levels with an id", _nested(2000), None),
    ("nested 500 levels with an id (too deep carries no id)", _nested(500), None),
    ("nested one level past the limit", _nested(MAX_DEPTH - 1), None),
    ("epoch run_at past year 9999", b'{"id":"x","processor":"echo","run_at":1e20}', "x"),
    ("epoch queued_at past year 9999", b'{"id":"x","processor":"echo","queued_at":1e20}', "x"),
    ("queued_at as a huge epoch string", b'{"id":"x","processor":"echo","queued_at":"9e99"}', "x"),
    ("negative huge run_at", b'{"id":"x","processor":"echo","run_at":-1e300}', "x"),
    ("float id", b'{"id":2.5,"processor":"echo"}', None),
    ("integer id", b'{"id":123456789012345678,"processor":"echo"}', None),
    ("boolean id", b'{"id":true,"processor":"echo"}', None),
    ("null id", b'{"id":null,"processor":"echo"}', None),
    ("empty id", b'{"id":"","processor":"echo"}', None),
    ("id with a newline", b'{"id":"a\\nb","processor":"echo"}', None),
    ("id of 129 bytes", json.dumps({"id": "x" * 129, "processor": "echo"}).encode(), None),
    ("id of a lone surrogate", b'{"id":"\\ud800","processor":"echo"}', None),
    ("invalid UTF-8 beside a valid id", b'{"id":"ok","processor":"echo","x":"\xff"}', "ok"),
    ("invalid UTF-8 in the id", b'{"id":"a\xff","processor":"echo"}', None),
    ("infinite timeout", b'{"id":"t","processor":"echo","timeout":1e400}', "t"),
    ("NaN timeout", b'{"id":"t","processor":"echo","timeout":NaN}', "t"),
    ("params not an object", b'{"id":"p","processor":"echo","params":[1]}', "p"),
    ("a bare string", b'"hello"', None),
    ("empty bytes", b"", None),
    ("random bytes", bytes(range(256)), None),
]


@pytest.mark.parametrize(
    ("payload", "job_id"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED]
)
def test_hostile_payload_is_rejected_with_the_id_it_legibly_carries(
    payload: bytes, job_id: str | None
) -> None:
    with pytest.raises(BadPayload) as caught:
        parse_payload(payload)
    assert caught.value.job_id == job_id


def test_nesting_at_the_limit_is_accepted() -> None:
    job, _ = parse_payload(_nested(MAX_DEPTH - 2))
    assert job.id == "deep"


def test_an_id_of_128_multibyte_bytes_is_accepted() -> None:
    job_id = "é" * 64  # 128 bytes of UTF-8
    job, _ = parse_payload(json.dumps({"id": job_id, "processor": "echo"}).encode())
    assert job.id == job_id


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"id": "a"}, "a"),
        ({"id": "x" * 128}, "x" * 128),
        ({"id": "x" * 129}, None),
        ({"id": 7}, None),
        ({"id": "tab\there"}, None),
        ({"id": "del\x7f"}, None),
        ([{"id": "a"}], None),
        ({}, None),
    ],
)
def test_job_id_of_applies_one_rule(data: object, expected: str | None) -> None:
    assert job_id_of(data) == expected
