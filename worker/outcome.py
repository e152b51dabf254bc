"""What running one job produced, as the executor reports it to the supervisor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["succeeded", "error", "timeout", "crashed", "interrupted"]


@dataclass
class Outcome:
    kind: Kind
    result: Any = None
    error_type: str | None = None
    message: str | None = None
    traceback: str | None = None
    permanent: bool = False
    retry_after: float | None = None
    duration: float = 0.0
    oom: bool = False

    @property
    def succeeded(self) -> bool:
        return self.kind == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        # Shallow: `result` is already plain JSON (the runner round-trips it).
        return dict(self.__dict__)
