"""The job protocol: one JSON object per job, validated with pydantic.

```json
{"id": "optional, generated when absent", "processor": "echo", "params": {...},
 "max_attempts": 3, "timeout": 600, "queued_at": "2026-01-01T00:00:00Z", "run_at": 1767225600}
```

A queue may name a default processor (`WORKER_QUEUE_PROCESSORS`); a payload without
`processor` on such a queue is a *bare* payload and its other top-level fields become the
params (`{"session_id": "...", "queued_at": "..."}`).

Rules that hold for every payload, whoever pushed it:
- A job id is a JSON string of 1 to 128 bytes of UTF-8 with no control characters
  (`job_id_of`, mirrored by `job_id` in stoker.lua, so Redis and Python always agree on
  which id, if any, a payload carries). A payload whose `id` is anything else is rejected.
- A payload is at most `WORKER_MAX_PAYLOAD_BYTES` long and nested at most `MAX_DEPTH`
  levels deep; times are ISO 8601 or epoch seconds between the years 1 and 9999.
- `parse_payload` never raises anything but `BadPayload`.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: Deepest nesting of arrays and objects a payload may have.
MAX_DEPTH = 64
#: Longest job id, in bytes of UTF-8.
MAX_ID_BYTES = 128

#: Top-level fields that are the protocol's, not a bare payload's params.
RESERVED = frozenset(
    {"id", "processor", "params", "max_attempts", "timeout", "queued_at", "run_at", "attempts"}
)


class BadPayload(Exception):
    """A payload that can never run. `job_id` is set when the payload named one."""

    def __init__(self, reason: str, job_id: str | None = None, data: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.job_id = job_id
        self.data = data


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return uuid.uuid4().hex


def job_id_error(value: Any) -> str | None:
    """Why `value` is not a valid job id, or None when it is one."""
    if not isinstance(value, str):
        return f"a job id must be a string, got {type(value).__name__}"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "a job id must be valid UTF-8"
    if not 1 <= size <= MAX_ID_BYTES:
        return f"a job id must be 1 to {MAX_ID_BYTES} bytes long"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "a job id must not contain control characters"
    return None


def job_id_of(data: Any) -> str | None:
    """The job id a decoded payload carries, by the rule stoker.lua applies too."""
    if not isinstance(data, dict):
        return None
    value = data.get("id")
    return value if job_id_error(value) is None else None


def depth_of(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of decoded JSON, counted without recursion; stops past `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children)
    return deepest


_STRUCTURE = re.compile(rb'["\\\[\]{}]')


def nesting_depth(raw: bytes, limit: int = MAX_DEPTH) -> int:
    """How deeply arrays and objects nest in JSON text, read without decoding it (brackets
    inside strings do not count): a result above `limit` means too deep (the scan stops
    there); one at or below it is an upper bound.

    Used before `json.loads`, whose own limit depends on the caller's stack: a payload must
    be judged the same way wherever it is read (stoker.lua's cjson applies the same limit).
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return min(limit, raw.count(b"[") + raw.count(b"{"))
    depth = deepest = 0
    in_string, skip_to = False, -1
    for match in _STRUCTURE.finditer(raw):
        pos = match.start()
        if pos < skip_to:
            continue  # an escaped character
        char = raw[pos]
        if in_string:
            if char == 0x5C:  # backslash: the next character is escaped
                skip_to = pos + 2
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif char in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _from_epoch(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"epoch seconds out of range: {seconds!r}") from None


def _to_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        dt = _from_epoch(float(value))
    elif isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(f"not a time: {value[:64]!r}") from None
            dt = _from_epoch(seconds)
    else:
        raise ValueError(f"not a time: {type(value).__name__}")
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class Job(BaseModel):
    """A validated job. Unknown top-level fields are kept (producers may add their own)."""

    model_config = ConfigDict(extra="allow")

    id: str
    processor: str = Field(min_length=1, max_length=128)
    params: dict[str, Any] = Field(default_factory=dict)
    max_attempts: int | None = Field(default=None, ge=1, le=1000)
    timeout: float | None = Field(default=None, ge=0, le=10 * 365 * 86400, allow_inf_nan=False)
    queued_at: datetime | None = None
    run_at: datetime | None = None
    attempts: int = Field(default=0, ge=0)
    """Attempts already made; maintained by the worker across retries."""

    @field_validator("id", mode="before")
    @classmethod
    def _valid_id(cls, value: Any) -> Any:
        if (error := job_id_error(value)) is not None:
            raise ValueError(error)
        return value

    @field_validator("queued_at", "run_at", mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> datetime | None:
        return _to_datetime(value)

    def to_payload(self) -> str:
        """The job as the JSON text that goes back on a queue."""
        data = self.model_dump(mode="json", exclude_none=True)
        if not data.get("attempts"):
            data.pop("attempts", None)
        return json.dumps(data, separators=(",", ":"))


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _id_of_oversized(raw: bytes | str, size: int) -> str | None:
    """The id of an oversized payload, for its failed row; not searched past 16 MiB."""
    data = raw.encode("utf-8", errors="surrogateescape") if isinstance(raw, str) else raw
    if size > 16 * 2**20 or nesting_depth(data) > MAX_DEPTH:
        return None
    try:
        return job_id_of(json.loads(raw))
    except (ValueError, RecursionError):
        return None


def _decode(raw: bytes | str) -> Any:
    """json.loads with every failure turned into BadPayload (keeping the id if one is legible).

    Too deep a payload carries no id: it is never decoded (nor by stoker.lua).
    """
    data_bytes = raw.encode("utf-8", errors="surrogateescape") if isinstance(raw, str) else raw
    if nesting_depth(data_bytes) > MAX_DEPTH:
        raise BadPayload(f"payload nested deeper than {MAX_DEPTH} levels")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BadPayload(f"malformed JSON: nested deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError:
        assert isinstance(raw, bytes)
        try:
            legible = json.loads(raw.decode("utf-8", errors="surrogateescape"))
        except (ValueError, RecursionError):
            legible = None
        raise BadPayload("malformed JSON: not valid UTF-8", job_id_of(legible)) from None
    except ValueError as exc:
        raise BadPayload(f"malformed JSON: {exc}") from None
    if depth_of(data) > MAX_DEPTH:  # not reached: the scan above agrees with depth_of
        raise BadPayload(f"payload nested deeper than {MAX_DEPTH} levels") from None
    return data


def parse_payload(
    raw: bytes | str,
    *,
    default_processor: str | None = None,
    max_bytes: int = 1_048_576,
) -> tuple[Job, bool]:
    """Validate one queue entry. Returns the job and whether it had to be given an id.

    Raises BadPayload with a readable reason for anything that can never run, and nothing
    else, whatever the bytes.
    """
    size = len(raw.encode("utf-8", errors="surrogateescape") if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise BadPayload(
            f"payload of {size} bytes exceeds the limit of {max_bytes} bytes",
            _id_of_oversized(raw, size),
        )
    try:
        # The common case, a complete job, in one pass of pydantic's JSON parser; anything
        # else (no id, a bare payload, any error) takes the general path below.
        job = Job.model_validate_json(raw)
    except (ValidationError, ValueError, RecursionError):
        pass
    else:
        # Only a payload of more than 2 * MAX_DEPTH bytes can be nested too deeply (the
        # list stands in for the payload object, so depths match).
        if size <= 2 * MAX_DEPTH or depth_of([job.params, job.model_extra]) <= MAX_DEPTH:
            if job.queued_at is None:
                job.queued_at = utcnow()
            return job, False
    data = _decode(raw)
    if not isinstance(data, dict):
        raise BadPayload(f"a job must be a JSON object, got {type(data).__name__}", data=data)
    known_id = job_id_of(data)
    if "processor" not in data:
        if not default_processor:
            raise BadPayload(
                "no 'processor' named and this queue has no default processor",
                known_id,
                data,
            )
        extra = {k: v for k, v in data.items() if k not in RESERVED}
        data = {k: v for k, v in data.items() if k in RESERVED}
        data["processor"] = default_processor
        params = data.setdefault("params", {})
        if isinstance(params, dict):
            params.update(extra)
    generated = "id" not in data
    if generated:
        data["id"] = new_job_id()
    if "queued_at" not in data:
        data["queued_at"] = utcnow()
    try:
        job = Job.model_validate(data)
    except (ValidationError, ValueError, RecursionError) as exc:
        reason = _describe(exc) if isinstance(exc, ValidationError) else str(exc)[:500]
        raise BadPayload(f"invalid job: {reason}", known_id, data) from None
    return job, generated
