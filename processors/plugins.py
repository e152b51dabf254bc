"""One plugin registry for every kind of plugin: processors and video-pipeline stages.

A plugin is found, in order, among the classes registered with `register` (built-ins
register themselves when their module is imported), the built-in modules the registry
names (imported lazily, on first use), and the installed distributions' entry points of
its group (scanned once per registry). A class that is not a subclass of the registry's
base, or an entry point that fails to load, is an error of the registry's kind.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=type)


class PluginRegistry(Generic[T]):
    """Plugins of one kind, by name."""

    def __init__(
        self,
        *,
        kind: str,
        base: type,
        group: str,
        builtins: Mapping[str, str] | None = None,
        modules: Sequence[str] = (),
        error: Callable[[str], Exception] = LookupError,
    ) -> None:
        """`builtins`: name -> module of lazily imported built-ins; `modules`: modules of
        built-ins imported on the first lookup (their names are not known before)."""
        self.kind = kind
        self.base = base
        self.group = group
        self.builtins = dict(builtins or {})
        self.modules = tuple(modules)
        self.error = error
        self._registered: dict[str, T] = {}
        self._eps: dict[str, Any] | None = None
        self._modules_loaded = False

    def register(self, cls: T) -> T:
        """Class decorator: make `cls` findable by its `name`."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise self.error(f"{self.kind} class {cls.__qualname__} has no name")
        self._registered[name] = cls
        return cls

    def unregister(self, name: str) -> None:
        self._registered.pop(name, None)

    def rescan(self) -> None:
        """Forget the scanned entry points (after distributions were installed)."""
        self._eps = None

    def entry_points(self) -> dict[str, Any]:
        # Scanning installed distributions costs milliseconds: once per registry.
        if self._eps is None:
            self._eps = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._eps

    def _load_modules(self) -> None:
        if not self._modules_loaded:
            for module in self.modules:
                importlib.import_module(module)
            self._modules_loaded = True

    def names(self) -> set[str]:
        """Every name this install knows, importing no plugin but the eager built-ins."""
        self._load_modules()
        return set(self.builtins) | set(self._registered) | set(self.entry_points())

    def get(self, name: str) -> T:
        """The class registered as `name`, importing its module on first use.

        Raises ImportError when a built-in's module cannot be imported (the caller may
        name the extra that provides it), else the registry's error.
        """
        self._load_modules()
        if name in self._registered:
            return self._registered[name]
        if name in self.builtins:
            importlib.import_module(self.builtins[name])
            if name in self._registered:
                return self._registered[name]
        eps = self.entry_points()
        if name not in eps:
            known = ", ".join(sorted(self.names()))
            raise self.error(f"unknown {self.kind} {name!r}; known: {known}")
        try:
            cls = eps[name].load()
        except Exception as exc:  # a broken plugin must name itself, whatever it raised
            raise self.error(f"{self.kind} plugin {name!r} failed to load: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise self.error(
                f"entry point {name!r} in {self.group} is not a {self.base.__name__} subclass"
            )
        if getattr(cls, "name", None) != name:
            raise self.error(f"entry point {name!r} loads a {self.kind} named {cls.name!r}")
        self._registered[name] = cls
        return cls
