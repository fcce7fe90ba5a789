"""Typed config dataclasses from user mappings, with one-line errors naming the bad key.

Every config in the suite (models, datasets, benchmarks, training, runners) is a frozen,
keyword-only dataclass; :func:`from_mapping` is the only way user YAML becomes one, so unknown
keys, wrong types and invalid values are all caught before any work starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from memorybench.memories.registry import suggest

C = TypeVar("C")


class ConfigError(ValueError):
    """Invalid user configuration; ``str()`` is a one-line message naming the key."""


def _type_name(expected: Any) -> str:
    return getattr(expected, "__name__", None) or str(expected).replace("typing.", "")


def _coerce(value: Any, expected: Any, key: str) -> Any:
    """Check ``value`` against a type hint (int, float, bool, str, tuples, lists, unions)."""
    origin = typing.get_origin(expected)
    if expected is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(expected)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(expected)}, got {value!r}")
    if origin is typing.Literal:
        choices = typing.get_args(expected)
        if value not in choices:
            raise ConfigError(
                f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}{suggest(str(value), [str(c) for c in choices])}"
            )
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            value = [value]
        args = typing.get_args(expected)
        item_type = args[0] if args else Any
        items = [_coerce(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or expected is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if expected is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if expected is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond any float
                number = math.inf
        elif isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is None:
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
    if expected is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def from_mapping(cls: type[C], mapping: Mapping[str, Any] | None, where: str) -> C:
    """Build dataclass ``cls`` from ``mapping``; ``where`` prefixes keys in error messages.

    Unknown keys raise with a did-you-mean and the valid keys; values are type-checked against
    the field annotations; a ``validate()`` method on the class runs last.
    """
    if mapping is not None and not isinstance(mapping, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(mapping).__name__} {mapping!r}")
    mapping = dict(mapping or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    public = sorted(name for name, f in fields.items() if f.init and not name.startswith("_"))
    values: dict[str, Any] = {}
    for key, value in mapping.items():
        if key not in fields or not fields[key].init:
            raise ConfigError(
                f"{where}: unknown key {key!r}{suggest(str(key), public)}; valid keys: {', '.join(public)}"
            )
        values[key] = _coerce(value, hints[key], f"{where}.{key}")
    config = cls(**values)
    validate = getattr(config, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError as error:
            raise ConfigError(f"{where}.{error}") from None
    return config


def require(condition: bool, key: str, message: str) -> None:
    """Raise ``ConfigError("key: message")`` unless ``condition`` holds (used in ``validate``)."""
    if not condition:
        raise ConfigError(f"{key}: {message}")


def as_dict(config: Any) -> dict[str, Any]:
    """A plain, JSON-friendly dict of a config dataclass (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
