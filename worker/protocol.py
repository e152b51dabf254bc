"""The job protocol: one JSON object per job, validated with pydantic.

```json
{"id": "optional, generated when absent", "processor": "echo", "params": {...},
 "max_attempts": 3, "timeout": 600, "queued_at": "2026-01-01T00:00:00Z", "run_at": 1767225600}
```

A queue may name a default processor (`WORKER_QUEUE_PROCESSORS`); a payload without
`processor` on such a queue is a *bare* payload and its other top-level fields become the
params (`{"session_id": "...", "queued_at": "..."}`).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


def _to_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        dt = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            dt = datetime.fromtimestamp(float(text), UTC)
    else:
        raise ValueError(f"not a time: {value!r}")
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class Job(BaseModel):
    """A validated job. Unknown top-level fields are kept (producers may add their own)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=128)
    processor: str = Field(min_length=1, max_length=128)
    params: dict[str, Any] = Field(default_factory=dict)
    max_attempts: int | None = Field(default=None, ge=1, le=1000)
    timeout: float | None = Field(default=None, ge=0)
    queued_at: datetime | None = None
    run_at: datetime | None = None
    attempts: int = Field(default=0, ge=0)
    """Attempts already made; maintained by the worker across retries."""

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
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
    if size > 16 * 2**20:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    job_id = data.get("id") if isinstance(data, dict) else None
    return str(job_id) if isinstance(job_id, str | int) and job_id != "" else None


def parse_payload(
    raw: bytes | str,
    *,
    default_processor: str | None = None,
    max_bytes: int = 1_048_576,
) -> tuple[Job, bool]:
    """Validate one queue entry. Returns the job and whether it had to be given an id.

    Raises BadPayload with a readable reason for anything that can never run.
    """
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise BadPayload(
            f"payload of {size} bytes exceeds the limit of {max_bytes} bytes",
            _id_of_oversized(raw, size),
        )
    try:
        # The common case, a complete job, in one pass of pydantic's JSON parser; anything
        # else (no id, a bare payload, any error) takes the general path below.
        job = Job.model_validate_json(raw)
    except ValidationError:
        pass
    else:
        if job.queued_at is None:
            job.queued_at = utcnow()
        return job, False
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadPayload(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadPayload(f"a job must be a JSON object, got {type(data).__name__}", data=data)
    job_id = data.get("id")
    known_id = str(job_id) if isinstance(job_id, str | int) and job_id != "" else None
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
    generated = known_id is None and "id" not in data
    if generated:
        data["id"] = new_job_id()
    if "queued_at" not in data:
        data["queued_at"] = utcnow()
    try:
        job = Job.model_validate(data)
    except ValidationError as exc:
        raise BadPayload(f"invalid job: {_describe(exc)}", known_id, data) from None
    return job, generated
