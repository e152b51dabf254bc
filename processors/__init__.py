"""Pluggable processors and their common interface (see `processors.base`)."""

from processors.base import (
    ConfigError,
    Context,
    Params,
    PermanentError,
    Processor,
    ProcessorError,
    StopRequested,
    TransientError,
    resolve_device,
)
from processors.registry import get_processor_class, known_names, register

__all__ = [
    "ConfigError",
    "Context",
    "Params",
    "PermanentError",
    "Processor",
    "ProcessorError",
    "StopRequested",
    "TransientError",
    "get_processor_class",
    "known_names",
    "register",
    "resolve_device",
]
