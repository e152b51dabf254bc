"""Finding processors: built-ins, dotted paths from config, the entry-point group."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from processors import registry
from processors.base import ConfigError, PermanentError, Processor
from processors.echo import EchoProcessor


def test_builtin_echo_registers_itself() -> None:
    assert registry.get_processor_class("echo") is EchoProcessor


def test_dotted_path_loads_and_registers_a_processor() -> None:
    cls = registry.load_dotted("tests.unit.sample_processors:UpperProcessor")
    assert issubclass(cls, Processor) and registry.get_processor_class("upper") is cls


def test_dotted_path_to_a_non_processor_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a Processor"):
        registry.load_dotted("pathlib:Path")


def test_unknown_name_is_a_permanent_error_listing_known_ones() -> None:
    with pytest.raises(PermanentError, match=r"unknown processor 'nope'.*echo"):
        registry.get_processor_class("nope")


def test_entry_point_group_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "stoker_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: stoker-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[stoker.processors]\nshout = tests.unit.sample_processors:ShoutProcessor\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.plugins.rescan()
    try:
        assert "shout" in registry.known_names()
        assert registry.get_processor_class("shout").name == "shout"
    finally:
        registry.plugins.rescan()
        registry.plugins.unregister("shout")
        sys.modules.pop("tests.unit.sample_processors", None)
