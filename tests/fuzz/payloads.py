"""Hostile payloads for the fuzz suite and `bench/fuzz.py`: Hypothesis strategies, and the
corpus of payloads that broke workers once (issue: hostile input).

Every payload is bytes as `redis-cli LPUSH` would push them. Ids carry a drawn number, so
most are distinct and each one's fate can be checked; colliding forms (`2.5` vs `"2.5"`,
integers, ids that differ after Unicode normalization) are drawn too.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

FIELDS = ["id", "processor", "params", "max_attempts", "timeout", "queued_at", "run_at", "attempts"]

#: Once-fatal payloads, kept forever.
CORPUS: list[bytes] = [
    b"[" * 100_000,
    b'{"id":"corpus-deep","processor":"echo","params":{"a":' + b"[" * 995 + b"]" * 995 + b"}}",
    b'{"id":"corpus-ts","processor":"echo","run_at":1e20}',
    b'{"id":"corpus-qts","processor":"echo","queued_at":1e20}',
    b'{"id":2.5,"processor":"echo"}',
    b'{"id":"2.5","processor":"echo"}',
    b'{"id":123456789012345678,"processor":"echo"}',
    b'{"id":123456789012345679,"processor":"echo"}',
    b'{"id":"corpus-utf8","processor":"echo","x":"\xff"}',
    b'{"id":true,"processor":"echo"}',
    b'{"id":"..","processor":"echo"}',
    b'{"id":".","processor":"echo"}',
    b'{"id":"a/b","processor":"echo"}',
    b'{"id":"a_b","processor":"echo"}',
    b'{"id":"corpus-nan","processor":"echo","timeout":NaN}',
    b'{"id":"corpus-inf","processor":"echo","timeout":1e999}',
    b'{"id":"caf\\u00e9","processor":"echo"}',
    b'{"id":"cafe\\u0301","processor":"echo"}',
    b'{"id":"\\ud800","processor":"echo"}',
    b'{"id":"corpus-dup","id":"corpus-dup2","processor":"echo"}',
    b"",
    b"null",
    b'{"processor":"echo","params":{"text":"\\u0000"}}',
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def job_ids(draw: st.DrawFn) -> Any:
    # Drawn, not counted: generation must not depend on outside state (Hypothesis replays).
    # Repeated ids are fine: a job's later copies are acknowledged or run again, in place.
    n = draw(st.integers(0, 10**9))
    return draw(
        st.sampled_from(
            [
                f"fz-{n}",
                f"fz-{n}-\u00e9\u2603",
                f"fz/{n}/..",
                float(f"{n}.5"),
                10**17 + n,
                True,
                "",
                f"fz-{n}\n",
                "x" * 129,
            ]
        )
    )


@st.composite
def job_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object shaped like a job, with fields of every type."""
    obj: dict[str, Any] = {}
    if draw(st.booleans()):
        obj["id"] = draw(job_ids())
    obj["processor"] = draw(st.sampled_from(["echo", "echo", "nope", "", "echo\n"]) | json_scalars)
    params = draw(
        st.dictionaries(
            st.sampled_from(["text", "fail", "fail_times", "x"]) | st.text(max_size=6),
            json_values,
            max_size=3,
        ).filter(lambda p: "sleep" not in p)
    )
    if draw(st.integers(0, 9)) == 0:
        params["deep"] = _deep(draw(st.integers(50, 1200)))
    obj["params"] = params if draw(st.integers(0, 5)) else draw(json_values)
    for field in ("max_attempts", "timeout", "queued_at", "run_at", "attempts"):
        if draw(st.integers(0, 4)) == 0:
            obj[field] = draw(
                json_scalars | st.sampled_from([1e20, -1e20, "9e99", "2026-13-45", 0, 1.0])
            )
    return obj


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """Raw bytes as a producer could push them."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return json.dumps(draw(json_values)).encode()
    text = json.dumps(draw(job_objects()), ensure_ascii=draw(st.booleans()))
    if kind == 2:  # invalid UTF-8 somewhere
        cut = draw(st.integers(0, len(text)))
        return text[:cut].encode() + b"\xff" + text[cut:].encode()
    if kind == 3 and draw(st.booleans()):  # oversized
        return text.encode()[:-1] + b',"pad":"' + b"x" * 5000 + b'"}'
    return text.encode()
