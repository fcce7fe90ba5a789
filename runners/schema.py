"""The result schema: run files, run states and the result record, in one place.

Runners write through this module and reports read through it; it imports nothing heavy (no
torch, no models, no benchmarks), so ``reports/`` may import it. A suite's directory holds one
directory per run, named by the run's id, and ``_training/<training id>/`` per trained model::

    spec.json        the resolved RunSpec (written once, before the run starts)
    status.json      state, attempts, error, log path, host and pid (updated during the run)
    result.json      the immutable outcome (schema 2, below), written once, atomically
    run.log          the run's log;  .lock: held (``flock``) by the process running the run
    train_curve.csv  the training curve up to the evaluated step;  any files the benchmark wrote

``result.json`` (schema 2): the run's identity (``run_id suite memory memory_class dataset
benchmark seed config training_run``), ``status`` (done, failed, not_applicable) with ``error``
or ``reason``, ``measurements`` — one object per measured number: ``name value unit
higher_is_better stderr tags`` (standard error and tags as data) —, ``metrics`` (a flat
``{name: value}`` view of the untagged measurements, e.g. ``metrics.nelbo_cond``), ``figures``
(the charts the benchmark declared: ``name kind file title x y error facet …``), ``protocol``,
``files``, ``environment``, ``git_commit``, ``provenance`` (for ``memory`` and ``benchmark``: the
class, the distribution ``package`` and ``version`` that provides it — or the ``--include``
``file`` —, and ``code_hash``, see :func:`code_hashes`), timing and training fields. Older records are read
through :func:`convert_result`: schema 1 encoded standard errors as ``<name>_stderr`` metrics
and tags in the name (``success_rate/T16/salt_pepper/0.1``); schema 0 nested its metrics.

A run's state is decided by :func:`run_state` alone, for ``status``, ``report`` and the planner.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import math
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
SPEC_FILE, STATUS_FILE, RESULT_FILE, LOG_FILE, LOCK_FILE = "spec.json", "status.json", "result.json", "run.log", ".lock"
CURVE_FILE = "train_curve.csv"
TRAINING_DIR, TRAINING_FILE = "_training", "training.json"
# interrupted: its process died without a result (kill -9, OOM, a lost node): a plain rerun resumes it.
# damaged: a file of the run directory cannot be read (truncated, not UTF-8, wrong field types).
STATES = ("pending", "running", "interrupted", "done", "failed", "not_applicable", "damaged")
MEASUREMENT_KEYS = ("name", "value", "unit", "higher_is_better", "stderr", "tags", "descriptive")
# An OSError with one of these errnos is the machine's fault, not the run's: the run stays
# resumable and the command stops with one line (disk full, quota, read-only filesystem).
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


class RunBusyError(RuntimeError):
    """Another process holds the run's lock: it is running this run right now."""


def is_storage_error(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in STORAGE_ERRNOS


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def suite_dir(results_root: str | Path, suite: str) -> Path:
    return Path(results_root) / suite


def run_directories(results_dir: str | Path) -> list[Path]:
    """Every run directory (one holding spec.json) below ``results_dir``, sorted."""
    return sorted(path.parent for path in Path(results_dir).rglob(SPEC_FILE))


# ---------------------------------------------------------------------------- atomic writes
def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same directory, fsynced, renamed.

    Deliberately the same few lines as ``benchmarks/common/artifacts.py``: the schema must not
    import benchmarks (reports import the schema and may not load benchmarks or torch)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)  # mkstemp makes 0600 files; results are shared like any file
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, payload: Mapping[str, Any]) -> None:
    """JSON with sorted keys; NaN and infinities written as null (strict JSON readers reject them)."""
    atomic_write_text(path, json.dumps(_finite(payload), indent=2, sort_keys=True) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return str(value) if isinstance(value, Path) else value


# ---------------------------------------------------------------------------- the run's lock
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


UNLOCKED_WRITES = ("status.json", "spec.json")  # written by planners without the run's lock
STALE_AFTER_S = 600.0  # an atomic write takes milliseconds: a temporary this old has no writer


def remove_stale_temporaries(directory: Path, unlocked: tuple[str, ...] = ()) -> None:
    """Delete the temporaries of atomic writes that a killed writer left in ``directory``.

    Call it holding the directory's lock: every writer that takes the lock is then dead. A
    temporary of a file in ``unlocked`` (written without the lock) goes only when it is stale.
    """
    for temp in Path(directory).glob(".*.tmp"):
        target = temp.name[1:].rsplit(".", 2)[0]
        with contextlib.suppress(OSError):
            if target not in unlocked or time.time() - temp.stat().st_mtime > STALE_AFTER_S:
                temp.unlink()


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
        remove_stale_temporaries(Path(run_dir), UNLOCKED_WRITES)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------- reading records
_TEXT = (str, type(None))
_NUMBER = (int, float, type(None))
RESULT_FIELDS: dict[str, tuple[type, ...]] = {
    "status": (str,),
    "metrics": (dict,),
    "measurements": (list,),
    "figures": (list,),
    "units": (dict,),
    "higher_is_better": (dict,),
    "attempts": (int,),
    "seed": (int, type(None)),
    "start_step": (int, type(None)),
    "wall_time_s": _NUMBER,
    "provenance": (dict,),
    **dict.fromkeys(("error", "reason", "run_id", "memory", "dataset", "benchmark", "finished", "log"), _TEXT),
}
STATUS_FIELDS: dict[str, tuple[type, ...]] = {
    "state": (str,),
    "attempts": (int,),
    "pid": (int, type(None)),
    **dict.fromkeys(("error", "note", "log", "slurm_job_id", "updated", "host", "run_id"), _TEXT),
}
TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", dict: "a mapping", list: "a list"}
TYPE_NAMES[type(None)] = "null"


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
    problem = _field_problem(payload, fields)
    return (None, f"{path}: {problem}") if problem else (payload, "")


def _field_problem(payload: dict[str, Any], fields: dict[str, tuple[type, ...]]) -> str:
    for key, allowed in fields.items():
        if key in payload and not _has_type(payload[key], allowed):
            expected = " or ".join(TYPE_NAMES.get(t, t.__name__) for t in allowed)
            return f"field {key!r} is {payload[key]!r}, expected {expected}"
    state = payload.get("state", payload.get("status"))
    if isinstance(state, str) and state not in STATES:
        return f"unknown state {state!r} (valid: {', '.join(STATES)})"
    metrics = payload.get("metrics")
    if isinstance(metrics, dict):
        odd = [k for k, v in metrics.items() if not (_has_type(v, _NUMBER) or isinstance(v, dict))]
        if odd:
            return f"metric {odd[0]!r} is {metrics[odd[0]]!r}, expected a number"
    for item in payload.get("measurements") or []:
        if not (isinstance(item, dict) and isinstance(item.get("name"), str) and _has_type(item.get("value"), _NUMBER)):
            return f"measurement {item!r} is not an object with a name and a numeric value"
        if not isinstance(item.get("tags") or {}, dict) or not _has_type(item.get("stderr"), _NUMBER):
            return f"measurement {item['name']!r} has tags that are not a mapping or a stderr that is not a number"
    return ""


def _has_type(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # JSON true/false are not numbers here
        return False
    return isinstance(value, allowed) or (float in allowed and isinstance(value, int))


def result_record(run_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """``result.json`` as written: (payload, "") / (None, "") when missing / (None, problem) when damaged."""
    return read_record(Path(run_dir) / RESULT_FILE, RESULT_FIELDS)


def status_record(run_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """``status.json`` of a run, like :func:`result_record`."""
    return read_record(Path(run_dir) / STATUS_FILE, STATUS_FIELDS)


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's result in the current schema, or None when it has none or it is damaged."""
    raw = result_record(run_dir)[0]
    return None if raw is None else convert_result(raw)[0]


def read_json(path: str | Path) -> dict[str, Any] | None:
    """The JSON object at ``path`` (spec.json, training.json), or None when missing or unreadable."""
    return read_record(Path(path), {})[0]


# ---------------------------------------------------------------------------- writing records
def write_status(run_dir: Path, state: str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``status.json`` with the new ``state`` (atomic; a damaged file is replaced)."""
    status = status_record(run_dir)[0] or {}
    status.update(fields)
    status.update(state=state, updated=now(), host=socket.gethostname(), pid=os.getpid())
    atomic_write_json(Path(run_dir) / STATUS_FILE, status)
    return status


def write_result(run_dir: Path, record: Mapping[str, Any]) -> None:
    """Write the run's immutable ``result.json`` (atomically) in the current schema."""
    atomic_write_json(Path(run_dir) / RESULT_FILE, {**record, "schema_version": SCHEMA_VERSION})


def measured_fields(measurements: Iterable[Mapping[str, Any]], figures: Iterable[Mapping[str, Any]] = ()) -> dict:
    """The fields of a result that hold what a benchmark measured: ``measurements`` (each with the
    keys of :data:`MEASUREMENT_KEYS`), the flat ``metrics`` view of the untagged ones, ``figures``."""
    items = [_measurement(item) for item in measurements]
    return {
        "measurements": items,
        "metrics": {item["name"]: item["value"] for item in items if not item["tags"]},
        "figures": [dict(figure) for figure in figures],
    }


def _measurement(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": str(item["name"]),
        "value": item.get("value"),
        "unit": str(item.get("unit") or ""),
        "higher_is_better": bool(item.get("higher_is_better", False)),
        "stderr": item.get("stderr"),
        "tags": dict(item.get("tags") or {}),
        "descriptive": bool(item.get("descriptive", False)),  # describes data, ranks nothing (no direction)
    }


def measurements(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The measurements of a result in the current schema (see :func:`convert_result`)."""
    return [_measurement(item) for item in result.get("measurements") or []]


def code_hashes(result: Mapping[str, Any]) -> dict[str, str | None]:
    """``{"memory": hash, "benchmark": hash}`` of the code that produced ``result`` (None: not
    recorded, e.g. results written before provenance was recorded)."""
    provenance = result.get("provenance")
    provenance = provenance if isinstance(provenance, Mapping) else {}
    hashes: dict[str, str | None] = {}
    for part in ("memory", "benchmark"):
        entry = provenance.get(part)
        value = entry.get("code_hash") if isinstance(entry, Mapping) else None
        hashes[part] = value if isinstance(value, str) else None
    return hashes


# ---------------------------------------------------------------------------- the run's state
@dataclass(frozen=True)
class RunState:
    """What a run directory's files say: its state, why, and the records behind it."""

    state: str  # one of STATES
    reason: str  # the error, the reason it cannot run, the damaged file, the process that died
    result: dict[str, Any] | None = None  # result.json in the current schema
    status: dict[str, Any] = field(default_factory=dict)  # status.json as recorded ({} when missing or damaged)
    converted: str = ""  # how an older result.json was read ("" when it is current)
    has_result: bool = False  # a result.json exists (readable or damaged): the run is over


def run_state(run_dir: Path) -> RunState:
    """The state of one run directory, decided from its files (the one place that decides it).

    ``result.json`` wins over ``status.json``; a damaged result (or, without a result, a damaged
    status) makes the run ``damaged`` with the problem, naming the file, as the reason. A run
    recorded as running by a process of this machine that no longer holds the run's lock (or, for
    runs that never took it, no longer exists) is ``interrupted``: a plain rerun resumes it. A run
    recorded as running elsewhere (another host, a SLURM job) stays running: only its scheduler
    can tell (:mod:`memorybench.runners.status` asks it).
    """
    run_dir = Path(run_dir)
    raw, problem = result_record(run_dir)
    status, status_problem = status_record(run_dir)
    status = status or {}
    has_result = raw is not None or bool(problem)
    if problem:
        return RunState("damaged", problem, status=status, has_result=True)
    if raw is not None:
        result, note = convert_result(raw)
        reason = str(result.get("error") or result.get("reason") or "")
        return RunState(str(result["status"]), reason, result, status, note, has_result)
    if status_problem:
        return RunState("damaged", status_problem)
    state = str(status.get("state", "pending"))
    reason = str(status.get("error") or status.get("note") or "")
    if state == "running" and not status.get("slurm_job_id"):
        host, pid = status.get("host"), status.get("pid")
        if host != socket.gethostname() or not isinstance(pid, int):
            reason = reason or f"running on {host or '?'} (not checked from here)"
        elif not _process_working(run_dir, pid):
            state, reason = "interrupted", f"process {pid} on {host} ended without a result; a plain rerun resumes it"
    return RunState(state, reason, status=status)


def _process_working(run_dir: Path, pid: int) -> bool:
    """The run's lock is the truth; the pid only for runs that never took the lock (older versions)."""
    held = lock_held(run_dir)
    if held is not None:
        return held
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------- older schemas
LEGACY_STDERR_SUFFIX = "_stderr"
_LEGACY_TAG = re.compile(r"^(?P<key>T|K|steps|step)(?P<value>\d+)$")  # T16, K32, steps5, step0


def convert_result(payload: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Bring a result.json of any schema version to the current one; returns (result, note).

    Schema 0 (before ``schema_version`` existed) used ``model`` for the memory label, ``state`` for
    the status, ``commit``/``device`` at the top level and nested metrics
    ``{name: {"value", "unit", "higher_is_better"}}``. Schema 1 kept flat ``metrics``, ``units``
    and ``higher_is_better`` mappings, with standard errors as ``<name>_stderr`` metrics and tags
    in the name (:func:`legacy_tags`); its PNG ``files`` become image figures. The note is empty
    when nothing was converted. ``schema_version`` keeps the version the file was written in.
    """
    result = dict(payload)
    try:
        version = int(result.get("schema_version", 0))
    except (TypeError, ValueError):
        version = 0
    changes: list[str] = []
    for old, new in (("model", "memory"), ("state", "status"), ("commit", "git_commit")):
        if old in result and new not in result:
            result[new] = result.pop(old)
            changes.append(f"{old}→{new}")
    if "device" in result and not isinstance(result.get("environment"), dict):
        result["environment"] = {"device": result.pop("device")}
        changes.append("device→environment.device")
    if not isinstance(result.get("metrics"), dict):
        result["metrics"] = {}
    if version < 2 and "measurements" not in result:
        result.update(measured_fields(_legacy_measurements(result, changes), _legacy_figures(result)))
        result.pop("units", None)
        result.pop("higher_is_better", None)
    result.setdefault("measurements", [])
    result.setdefault("figures", [])
    if "status" not in result:
        result["status"] = "done" if result["measurements"] else "failed"
    result["schema_version"] = version
    if version < SCHEMA_VERSION:
        return result, f"converted from schema {version}" + (f" ({', '.join(changes)})" if changes else "")
    if version > SCHEMA_VERSION:
        return result, f"written by newer schema {version}; read as schema {SCHEMA_VERSION}"
    return result, ""


def _legacy_measurements(result: dict[str, Any], changes: list[str]) -> list[dict[str, Any]]:
    metrics = result["metrics"]
    units, directions = dict(result.get("units") or {}), dict(result.get("higher_is_better") or {})
    if any(isinstance(v, dict) for v in metrics.values()):
        changes.append("nested metrics flattened")
    items = []
    for name, entry in metrics.items():
        if name.endswith(LEGACY_STDERR_SUFFIX) and name.removesuffix(LEGACY_STDERR_SUFFIX) in metrics:
            continue  # the standard error of another metric
        if isinstance(entry, dict):
            value, unit, higher = entry.get("value"), entry.get("unit", ""), entry.get("higher_is_better", False)
        else:
            value, unit, higher = entry, units.get(name, ""), directions.get(name, False)
        stderr = metrics.get(name + LEGACY_STDERR_SUFFIX)
        base, tags = legacy_tags(name)
        items.append(
            {"name": base, "value": value, "unit": unit, "higher_is_better": higher, "stderr": stderr, "tags": tags}
        )
    return items


def legacy_tags(name: str) -> tuple[str, dict[str, Any]]:
    """Split a schema-1 metric name into (name, tags): ``success_rate/T16/salt_pepper/0.1`` →
    ``success_rate, {T: 16, noise: salt_pepper, level: 0.1}``; ``write_ms/T4/K16/steps5`` → T, K,
    steps; ``copy_rate/step0`` → step; ``term/kl_w`` → ``nelbo_term, {term: kl_w}`` (the ELBO's terms)."""
    base, *parts = name.split("/")
    base = "nelbo_term" if base == "term" and parts else base
    tags: dict[str, Any] = {}
    bare = []
    for part in parts:
        match = _LEGACY_TAG.match(part)
        if match:
            tags[match["key"]] = int(match["value"])
        else:
            bare.append(part)
    if len(bare) == 2:  # the denoising benchmark's noise type and level
        tags.update(noise=bare[0], level=_number(bare[1]))
    elif len(bare) == 1:
        tags["term"] = bare[0]
    elif bare:
        tags["part"] = "/".join(bare)
    return base, tags


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _legacy_figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Schema 1 declared no figures: every PNG a run listed is shown as an image."""
    pngs = [str(name) for name in result.get("files") or [] if str(name).endswith(".png")]
    return [{"name": Path(name).stem, "kind": "image", "file": name, "title": Path(name).stem} for name in pngs]
