"""The results tree: ``<results>/<suite>/<run_id>/`` with one directory per run.

Files in a run directory:
- ``spec.json``     the resolved RunSpec (written once, before the run starts)
- ``status.json``   state (pending/running/done/failed/not_applicable), attempts, error, log path
- ``checkpoint.pt`` ``train_curve.csv``  training state and curve (see benchmarks.trainer)
- ``result.json``   the immutable outcome: metrics, protocol, versions, commit, device, timing
Every write is atomic, and nothing is ever appended to a shared file, so concurrent jobs never
clobber each other.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path
from typing import Any

from benchmarks.artifacts import atomic_write_json, read_json

RESULT_SCHEMA_VERSION = 1
SPEC_FILE, STATUS_FILE, RESULT_FILE, LOG_FILE = "spec.json", "status.json", "result.json", "run.log"
STATES = ("pending", "running", "done", "failed", "not_applicable")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def suite_dir(results_root: str | Path, suite: str) -> Path:
    return Path(results_root) / suite


def write_status(run_dir: Path, state: str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``status.json`` with the new ``state`` (atomic)."""
    status = read_json(run_dir / STATUS_FILE) or {}
    status.update(fields)
    status.update(state=state, updated=now(), host=socket.gethostname(), pid=os.getpid())
    atomic_write_json(run_dir / STATUS_FILE, status)
    return status


def read_result(run_dir: Path) -> dict[str, Any] | None:
    return read_json(run_dir / RESULT_FILE)


def run_state(run_dir: Path) -> tuple[str, str]:
    """(state, reason) of a run directory from its files: result.json wins over status.json."""
    result = read_result(run_dir)
    if result is not None:
        return str(result.get("status", "done")), str(result.get("reason") or result.get("error") or "")
    status = read_json(run_dir / STATUS_FILE)
    if status is None:
        return "pending", ""
    return str(status.get("state", "pending")), str(status.get("error") or "")


def run_directories(results_dir: str | Path) -> list[Path]:
    """Every run directory (one holding spec.json) below ``results_dir``, sorted."""
    return sorted(path.parent for path in Path(results_dir).rglob(SPEC_FILE))
