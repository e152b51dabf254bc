"""structlog setup: JSON or console lines, secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

from config import Settings

_SECRET_KEYS = re.compile(r"(pass(word)?|secret|token|api_?key|authorization|credential)", re.I)
# Counts and rates of tokens (`prompt_tokens`, `max_new_tokens`, `tokens_per_s`) are not secrets.
_TOKEN_COUNTS = re.compile(r"tokens|token_(count|len|ids?)$|^(n|num)_token", re.I)
_URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^:/@\s]*:)([^@\s]+)(@)")
# Credentials SQLAlchemy and redis-py accept as query options or DSN fields:
# `?password=`, `&sslpassword=`, `?sslkey=...`, libpq `password=... ` key/value strings.
_QUERY_SECRET = re.compile(
    r"(?i)([?&;\s]|^)((?:ssl)?pass(?:word)?|passwd|pwd|secret|token|api_?key|access_?key"
    r"|auth(?:orization)?|credentials?|sslkey|sslcert)=([^&;\s]*)"
)


def redact_url(text: str) -> str:
    """`redis://:hunter2@host` -> `redis://:***@host`; `?password=x` -> `?password=***`."""
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    return _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}=***", text)


def _redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and value is not None and not _TOKEN_COUNTS.search(key):
            event[key] = "***"
        elif isinstance(value, str) and ("://" in value or "=" in value):
            event[key] = redact_url(value)
    return event


def configure_logging(settings: Settings) -> None:
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
