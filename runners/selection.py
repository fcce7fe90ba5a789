"""``--only KEY=VALUE[,VALUE...]``: a subset of a suite or of a results tree, without editing files.

``run``, ``status`` and ``report`` share the option: ``--only memory=gpm,vae --only seed=0``
keeps the runs whose memory label is gpm or vae *and* whose seed is 0 (values of one key are
alternatives, keys combine). Labels are the suite's own (a memory's label, not its registry name).
A key or a value that selects nothing known is a one-line :class:`SelectionError` naming the
valid choices, raised before anything is written. Standard library only: ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from memorybench.runners.commands.common import UsageError

RUN_KEYS = ("memory", "dataset", "benchmark", "seed")
TREE_KEYS = ("suite", *RUN_KEYS)


class SelectionError(UsageError):
    """An ``--only`` option that cannot select anything: printed on one line, exit status 2."""


Selection = dict[str, tuple[str, ...]]


def add_only_argument(parser: argparse.ArgumentParser, keys: Sequence[str], what: str) -> None:
    """The repeatable ``--only KEY=VALUE[,VALUE]`` option of ``run``, ``status`` and ``report``."""
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY=VALUE[,VALUE]",
        help=f"{what} only these runs: {', '.join(f'{key}=' for key in keys)} (repeatable, keys combine)",
    )


def parse_only(options: Sequence[str] | None, keys: Sequence[str]) -> Selection:
    """``["memory=gpm,vae", "seed=0"]`` → ``{"memory": ("gpm", "vae"), "seed": ("0",)}``.

    A key given twice adds its values. Unknown keys, a missing ``=`` or empty values raise."""
    selection: Selection = {}
    for option in options or []:
        key, equals, text = option.partition("=")
        key = key.strip()
        if not equals:
            raise SelectionError(f"--only {option!r}: expected KEY=VALUE[,VALUE...] with KEY one of {', '.join(keys)}")
        if key not in keys:
            raise SelectionError(f"--only {option!r}: unknown key {key!r}; choose from {', '.join(keys)}")
        values = tuple(value.strip() for value in text.split(",") if value.strip())
        if not values:
            raise SelectionError(f"--only {option!r}: no value given for {key}")
        selection[key] = tuple(dict.fromkeys((*selection.get(key, ()), *values)))
    return selection


def check_choices(selection: Selection, available: Mapping[str, Iterable[Any]], where: str) -> None:
    """Every selected value must exist in ``available[key]`` (what ``where`` holds)."""
    for key, values in selection.items():
        choices = sorted({str(value) for value in available.get(key, ()) if value is not None}, key=_natural)
        unknown = [value for value in values if value not in choices]
        if unknown:
            listed = ", ".join(choices) if choices else "none"
            raise SelectionError(
                f"--only {key}={unknown[0]}: {where} has no {key} {unknown[0]!r}; choose from {listed}"
            )


def matches(selection: Selection, labels: Mapping[str, Any]) -> bool:
    """Whether a run with these labels (``{"memory": "gpm", "seed": 0, ...}``) is selected."""
    return all(str(labels.get(key)) in values for key, values in selection.items())


def describe(selection: Selection) -> str:
    """``memory=gpm,vae seed=0`` (for the lines that say what was selected)."""
    return " ".join(f"{key}={','.join(values)}" for key, values in selection.items())


def _natural(text: str) -> tuple[int, int | str]:
    return (0, int(text)) if text.isdigit() else (1, text)


__all__ = ["RUN_KEYS", "TREE_KEYS", "SelectionError", "check_choices", "describe", "matches", "parse_only"]
