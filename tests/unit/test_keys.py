"""Key names: one place, renamable by config."""

from __future__ import annotations

from config import Settings
from worker.keys import Keys


def test_default_keys() -> None:
    keys = Keys.from_settings(Settings())
    assert keys.queue("default") == "stoker:queue:default"
    assert keys.failed == "stoker:failed"


def test_keys_of_an_existing_deployment_can_be_configured() -> None:
    settings = Settings(
        key_prefix="lahstats",
        queue_key_template="{prefix}:{queue}",
        failed_key="lahstats:failed",
        queues=["processing"],
    )
    keys = Keys.from_settings(settings)
    assert keys.queue("processing") == "lahstats:processing"
    assert keys.failed == "lahstats:failed"
    assert keys.scheduled.startswith("lahstats:")


def test_queues_setting_is_comma_separated_in_priority_order(monkeypatch) -> None:
    monkeypatch.setenv("WORKER_QUEUES", "high, default ,low")
    monkeypatch.setenv("WORKER_QUEUE_PROCESSORS", "processing=diarization")
    settings = Settings()
    assert settings.queues == ["high", "default", "low"]
    assert settings.queue_processors == {"processing": "diarization"}
