"""The results tree: ``<results>/<suite>/<run_id>/`` with one directory per run.

Files in a run directory:
- ``spec.json``     the resolved RunSpec (written once, before the run starts)
- ``status.json``   state (pending/running/done/failed/not_applicable), attempts, error, log path
- ``checkpoint.pt`` ``train_curve.csv``  training state and curve (see benchmarks.trainer)
- ``result.json``   the immutable outcome: metrics, protocol, versions, commit, device, timing
- ``.lock``        the run's lock: the process running the run holds an ``flock`` on it
Every write is atomic, and nothing is ever appended to a shared file, so concurrent jobs never
clobber each other. Readers (``status``, ``report``, the planner) go through
:func:`result_record`/:func:`status_record`, which tell a missing file from a damaged one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memorybench.benchmarks.artifacts import atomic_write_json

RESULT_SCHEMA_VERSION = 1
SPEC_FILE, STATUS_FILE, RESULT_FILE, LOG_FILE = "spec.json", "status.json", "result.json", "run.log"
LOCK_FILE = ".lock"
# interrupted: its process died without a result (kill -9, OOM, a lost node): a plain rerun resumes it.
# damaged: a file of the run directory cannot be read (truncated, not UTF-8, wrong field types).
STATES = ("pending", "running", "interrupted", "done", "failed", "not_applicable", "damaged")
# An OSError with one of these errnos is the machine's fault, not the run's: the run stays
# resumable and the command stops with one line (disk full, quota, read-only filesystem).
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


class RunBusyError(RuntimeError):
    """Another process holds the run's lock: it is running this run right now."""


def is_storage_error(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in STORAGE_ERRNOS


def lock_held(run_dir: Path) -> bool | None:
    """Whether a process holds the run's lock now (None: the run never took it, e.g. older results)."""
    try:
        handle = open(Path(run_dir) / LOCK_FILE)  # noqa: SIM115 - closed below; read-only: nothing is written
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's exclusive lock (``flock`` on ``RUN_DIR/.lock``) without waiting.

    Raises :class:`RunBusyError` when another process holds it. The kernel releases the lock
    when the holder dies, so a killed process never leaves a run locked.
    """
    with open(Path(run_dir) / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusyError(f"{Path(run_dir).name} is being run by another process") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def suite_dir(results_root: str | Path, suite: str) -> Path:
    return Path(results_root) / suite


def write_status(run_dir: Path, state: str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``status.json`` with the new ``state`` (atomic; a damaged file is replaced)."""
    status = status_record(run_dir)[0] or {}
    status.update(fields)
    status.update(state=state, updated=now(), host=socket.gethostname(), pid=os.getpid())
    atomic_write_json(run_dir / STATUS_FILE, status)
    return status


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's result, or None when it has none or it is damaged (see :func:`result_record`)."""
    return result_record(run_dir)[0]


def run_state(run_dir: Path) -> tuple[str, str]:
    """(state, reason) of a run directory from its files: result.json wins over status.json;
    a damaged file makes the run ``damaged``, with the problem (naming the file) as the reason."""
    result, problem = result_record(run_dir)
    if problem:
        return "damaged", problem
    if result is not None:
        return str(result.get("status", "done")), str(result.get("reason") or result.get("error") or "")
    status, problem = status_record(run_dir)
    if problem:
        return "damaged", problem
    if status is None:
        return "pending", ""
    return str(status.get("state", "pending")), str(status.get("error") or "")


def run_directories(results_dir: str | Path) -> list[Path]:
    """Every run directory (one holding spec.json) below ``results_dir``, sorted."""
    return sorted(path.parent for path in Path(results_dir).rglob(SPEC_FILE))


# ---------------------------------------------------------------------------- damaged files
_TEXT = (str, type(None))
_NUMBER = (int, float, type(None))
RESULT_FIELDS: dict[str, tuple[type, ...]] = {
    "status": (str,),
    "metrics": (dict,),
    "units": (dict,),
    "higher_is_better": (dict,),
    "attempts": (int,),
    "seed": (int, type(None)),
    "start_step": (int, type(None)),
    "wall_time_s": _NUMBER,
    **dict.fromkeys(("error", "reason", "run_id", "memory", "dataset", "benchmark", "finished", "log"), _TEXT),
}
STATUS_FIELDS: dict[str, tuple[type, ...]] = {
    "state": (str,),
    "attempts": (int,),
    "pid": (int, type(None)),
    **dict.fromkeys(("error", "note", "log", "slurm_job_id", "updated", "host", "run_id"), _TEXT),
}
TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", dict: "a mapping", type(None): "null"}


def read_record(path: Path, fields: dict[str, tuple[type, ...]]) -> tuple[dict[str, Any] | None, str]:
    """``(payload, problem)`` of a JSON record: (None, "") when the file is missing, (None, problem
    naming the file) when it is damaged — unreadable, truncated, not UTF-8, not an object, or a
    field of the wrong type (``fields``) — else (payload, "")."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, ""
    except OSError as error:
        return None, f"{path}: cannot be read ({error.strerror or error})"
    try:
        payload = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None, f"{path}: not UTF-8 text"
    except ValueError:
        return None, f"{path}: truncated or not JSON"
    if not isinstance(payload, dict):
        return None, f"{path}: a JSON {type(payload).__name__}, not an object"
    for key, allowed in fields.items():
        if key in payload and not _has_type(payload[key], allowed):
            expected = " or ".join(TYPE_NAMES.get(t, t.__name__) for t in allowed)
            return None, f"{path}: field {key!r} is {payload[key]!r}, expected {expected}"
    state = payload.get("state", payload.get("status"))
    if isinstance(state, str) and state not in STATES:
        return None, f"{path}: unknown state {state!r} (valid: {', '.join(STATES)})"
    metrics = payload.get("metrics")
    if isinstance(metrics, dict):
        odd = [k for k, v in metrics.items() if not (_has_type(v, _NUMBER) or isinstance(v, dict))]
        if odd:
            return None, f"{path}: metric {odd[0]!r} is {metrics[odd[0]]!r}, expected a number"
    return payload, ""


def _has_type(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # JSON true/false are not numbers here
        return False
    return isinstance(value, allowed) or (float in allowed and isinstance(value, int))


def result_record(run_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """``result.json`` of a run: (payload, "") / (None, "") when missing / (None, problem) when damaged."""
    return read_record(Path(run_dir) / RESULT_FILE, RESULT_FIELDS)


def status_record(run_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """``status.json`` of a run, like :func:`result_record`."""
    return read_record(Path(run_dir) / STATUS_FILE, STATUS_FIELDS)
