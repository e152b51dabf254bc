"""The group commit's statements: compiled once, run with executemany."""

from __future__ import annotations

from typing import Any

from worker.store.encoding import _aware_utc, _sqlite_time, dumps_json

_JSON_PARAMS = frozenset({"params", "result", "b_result"})
_TIME_PARAMS = frozenset(
    {"queued_at", "started_at", "finished_at", "run_at", "updated_at", "b_now"}
)


class _Batch:
    """A hot statement compiled once, run with executemany on values prepared here.

    The group commit writes a few rows per job; SQLAlchemy's per-row bind processing
    costs more than SQLite's own work on them. The values are converted the way the
    column types would convert them (JSON text; UTC times: SQLite's text format, or
    aware datetimes for PostgreSQL), then handed to the driver as they are.
    """

    def __init__(self, stmt: Any, dialect: Any, columns: tuple[str, ...] = ()) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(columns), for_executemany=True)
        self.sql = compiled.string
        self.positional = bool(dialect.positional)
        names = compiled.positiontup if self.positional else list(compiled.binds)
        time = _sqlite_time if dialect.name == "sqlite" else _aware_utc
        # Per parameter: its name, its converter, and its value when a row leaves it out
        # (the statement's literal values, e.g. `status='succeeded'`).
        self._plan = [
            (
                name,
                dumps_json if name in _JSON_PARAMS else time if name in _TIME_PARAMS else None,
                compiled.binds[name].value,
            )
            for name in names or []
        ]
        self.names = [name for name, _, _ in self._plan]

    def rows(self, params: list[dict[str, Any]]) -> list[Any]:
        out: list[Any] = []
        for p in params:
            values = [
                constant
                if (v := p.get(name, _MISSING)) is _MISSING
                else convert(v)
                if convert
                else v
                for name, convert, constant in self._plan
            ]
            out.append(
                tuple(values) if self.positional else dict(zip(self.names, values, strict=True))
            )
        return out


_MISSING = object()
