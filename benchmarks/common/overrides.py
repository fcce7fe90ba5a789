"""The hand-run scripts' repeatable ``--set KEY=VALUE`` model-config overrides (speed, parity)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import yaml


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: yaml.safe_load(value)}`` (so 32 is an int, 1e-3 a float)."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        settings[key.strip()] = yaml.safe_load(value)
    return settings


def add_override_argument(parser: argparse.ArgumentParser, help: str = "model config override") -> None:
    """Add ``--set KEY=VALUE`` (repeatable; read back with :func:`parse_overrides`)."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=f"{help} (repeatable)"
    )
