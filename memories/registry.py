"""One generic name -> class registry, instantiated for memories, datasets and benchmarks.

Built-ins register themselves with a decorator when their module is imported; external packages
plug in through an entry-point group that is read lazily on first lookup. A plugin that fails to
import is reported once and skipped, so a broken plugin never breaks ``memorybench list``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import warnings
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """An unknown or duplicate registry name; ``str()`` is a one-line user-facing message."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


def suggest(name: str, choices: list[str]) -> str:
    """A ' (did you mean X?)' hint for a mistyped name, or ''."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Maps names to registered classes of one kind (``kind`` is used in messages).

    ``builtin_modules`` are imported on first use so registration does not depend on import
    order; ``entry_point_group`` names the group external packages use.
    """

    def __init__(self, kind: str, entry_point_group: str, builtin_modules: tuple[str, ...] = ()):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._builtin_modules = builtin_modules
        self._entries: dict[str, T] = {}
        self._loaded = False
        self.plugin_errors: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``target`` under ``name``; a second, different target is an error."""

        def decorator(target: T) -> T:
            existing = self._entries.get(name)
            if existing is not None and existing is not target:
                raise RegistryError(
                    f"{self.kind} {name!r} is already registered by "
                    f"{_qualname(existing)}; cannot register {_qualname(target)} under the same name"
                )
            self._entries[name] = target
            if isinstance(target, type):
                target.registry_name = name  # type: ignore[attr-defined]
            return target

        return decorator

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)
        for entry_point in importlib.metadata.entry_points(group=self.entry_point_group):
            if entry_point.name in self._entries:
                continue
            try:
                loaded = entry_point.load()
            except Exception as error:  # a broken plugin must not break the suite
                message = f"{type(error).__name__}: {error}"
                self.plugin_errors[entry_point.name] = message
                warnings.warn(
                    f"skipping {self.kind} plugin {entry_point.name!r} ({entry_point.value}): {message}",
                    stacklevel=2,
                )
                continue
            if entry_point.name not in self._entries:
                self.register(entry_point.name)(loaded)

    def get(self, name: str) -> T:
        """The target registered as ``name``; unknown names raise with the valid choices."""
        self._load()
        if name not in self._entries:
            choices = self.available()
            raise RegistryError(
                f"unknown {self.kind} {name!r}{suggest(name, choices)}; available: {', '.join(choices) or '(none)'}"
            )
        return self._entries[name]

    def available(self) -> list[str]:
        """Sorted registered names."""
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.available())

    def describe(self, name: str) -> str:
        """First line of the target's docstring: the one-line description ``list`` prints."""
        doc = (getattr(self.get(name), "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""


def _qualname(target: object) -> str:
    module = getattr(target, "__module__", "?")
    return f"{module}.{getattr(target, '__qualname__', repr(target))}"


def import_user_module(path_or_module: str) -> None:
    """Import unpublished plugin code the user names explicitly (``--include``).

    Accepts a dotted module name or a path to a ``.py`` file; nothing else is ever imported.
    """
    import importlib.util
    import pathlib
    import sys

    path = pathlib.Path(path_or_module)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"--include: no such Python file {str(path)!r}")
        module_name = f"memorybench_user_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"--include: cannot import {str(path)!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]  # a half-imported plugin must not linger
            raise
    else:
        importlib.import_module(path_or_module)
