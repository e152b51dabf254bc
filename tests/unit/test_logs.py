"""Logs never carry secrets."""

from __future__ import annotations

from worker.logs import _redact, redact_url


def test_password_in_a_url_is_redacted() -> None:
    assert redact_url("redis://:hunter2@db:6379/0") == "redis://:***@db:6379/0"
    assert redact_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"


def test_secret_looking_keys_are_redacted() -> None:
    event = _redact(None, "info", {"api_key": "sk-1", "password": "p", "text": "ok"})
    assert event == {"api_key": "***", "password": "***", "text": "ok"}
