"""What the subcommands share: the one-line user error and the output-directory check."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path


class UsageError(Exception):
    """A user-facing error; the CLI prints it on one line and exits with status 2."""


def command_main(name: str, argv: Sequence[str] | None) -> int:
    """``memorybench NAME ARGV...`` through the front door (its error handling included)."""
    from memorybench.runners.cli import main

    return main([name, *(sys.argv[1:] if argv is None else argv)])


def check_writable(directory: Path) -> None:
    """Refuse an output directory that cannot be created or written; nothing is left behind.

    Permission bits are not enough (root passes them; /proc, read-only mounts and full disks do
    not show in them): a temporary directory is really created in the nearest existing ancestor
    and removed again."""
    import tempfile

    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--out {directory}: {probe} is not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".memorybench-probe-", dir=probe))
    except OSError as error:
        raise UsageError(
            f"--out {directory}: cannot create a directory in {probe} ({error.strerror or error})"
        ) from None
