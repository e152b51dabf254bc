"""structlog setup: JSON or console lines, secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

from config import Settings

_SECRET_KEYS = re.compile(r"(pass(word)?|secret|token|api_?key|authorization|credential)", re.I)
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)([^@\s]+)(@)")


def redact_url(text: str) -> str:
    """`redis://:hunter2@host` -> `redis://:***@host`."""
    return _URL_PASSWORD.sub(r"\1***\3", text)


def _redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key) and value is not None:
            event[key] = "***"
        elif isinstance(value, str) and "://" in value:
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
