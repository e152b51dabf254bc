"""Where processors are found: built-ins, the `stoker.processors` entry-point group,
and `module:Class` paths from config (`WORKER_PROCESSORS`).

Built-ins are imported lazily, so a queue-only install never imports torch-heavy
families it does not use; each built-in module registers its class with `@register`.
"""

from __future__ import annotations

import importlib
from typing import TypeVar

from processors.base import ConfigError, PermanentError, Processor
from processors.plugins import PluginRegistry

ENTRY_POINT_GROUP = "stoker.processors"

P = TypeVar("P", bound=type[Processor])

#: name -> (module, extra that provides its dependencies)
BUILTINS: dict[str, tuple[str, str | None]] = {
    "echo": ("processors.echo", None),
    "transcription": ("processors.audio.transcription", "audio"),
    "diarization": ("processors.audio.diarization", "audio"),
    "video_pipeline": ("processors.video.processor", "video"),
    "llm_analysis": ("processors.llm.processor", "llm"),
}


class UnknownProcessor(PermanentError):
    """No processor of that name is installed or configured."""


plugins: PluginRegistry[type[Processor]] = PluginRegistry(
    kind="processor",
    base=Processor,
    group=ENTRY_POINT_GROUP,
    builtins={name: module for name, (module, _) in BUILTINS.items()},
    error=PermanentError,
)


def register(cls: P) -> P:
    """Class decorator: make a processor findable by its `name`."""
    return plugins.register(cls)


def load_dotted(path: str) -> type[Processor]:
    """Import `module:Class` (or `module.Class`) and register it; ConfigError if it can't."""
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"WORKER_PROCESSORS: {path!r} is not a module:Class path")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise ConfigError(f"WORKER_PROCESSORS: cannot import {module_name!r}: {exc}") from None
    except AttributeError:
        raise ConfigError(f"WORKER_PROCESSORS: {module_name!r} has no {attr!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, Processor)):
        raise ConfigError(f"WORKER_PROCESSORS: {path} is not a Processor subclass")
    return register(cls)


def load_configured(paths: list[str]) -> None:
    """Import the `WORKER_PROCESSORS` classes (fails loudly at startup on a bad path)."""
    for path in paths:
        load_dotted(path)


def known_names() -> set[str]:
    """Every processor name this worker could run, without importing built-ins."""
    return plugins.names()


def get_processor_class(name: str) -> type[Processor]:
    """The class for `name`, importing its module on first use."""
    if name not in plugins.names():
        raise UnknownProcessor(
            f"unknown processor {name!r}; known: {', '.join(sorted(known_names()))}"
        )
    try:
        return plugins.get(name)
    except ImportError as exc:
        extra = BUILTINS.get(name, ("", None))[1]
        hint = f" (install the '{extra}' extra: pip install 'stoker[{extra}]')" if extra else ""
        raise PermanentError(f"processor {name!r} cannot be imported: {exc}{hint}") from exc
