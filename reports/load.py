"""Results tree → pandas: one row per run, and the long-format metric table.

Everything is read from the run directories (``spec.json``, ``status.json``, ``result.json``);
nothing is cached or appended. A run that has no result yet, failed, or is not applicable is a
row of :attr:`Results.runs` with its state and reason, never an error. Results written by an
older result schema are converted on the fly (:func:`convert_result`) and marked as converted.

When one (suite, model, dataset, benchmark) was run under several configurations (a suite re-run
with changed settings writes new run directories beside the old ones), only the configuration
with the most recent result is *current*; the others are kept in the tables with
``current = False`` and listed as superseded, so seeds of different configurations are never
averaged together.
"""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from memorybench.benchmarks.artifacts import read_json
from memorybench.runners.results import (
    RESULT_FILE,
    RESULT_SCHEMA_VERSION,
    SPEC_FILE,
    lock_held,
    result_record,
    status_record,
)

IDENTITY = ["suite", "model", "dataset", "benchmark"]
LONG_COLUMNS = [
    "suite",
    "model",
    "memory_class",
    "dataset",
    "benchmark",
    "seed",
    "metric",
    "value",
    "stderr",
    "unit",
    "higher_is_better",
    "run_id",
    "variant",
    "current",
    "git_commit",
    "device",
    "schema_version",
    "converted",
]
RUN_COLUMNS = [
    "suite",
    "model",
    "memory_class",
    "dataset",
    "benchmark",
    "seed",
    "status",
    "reason",
    "run_id",
    "variant",
    "current",
    "git_commit",
    "device",
    "finished",
    "wall_time_s",
    "schema_version",
    "converted",
    "path",
]
STDERR_SUFFIX = "_stderr"
# Fields of spec.json / result.json that are meant to be lists or mappings (any other field of such a type is damage).
NESTED = {"environment", "config", "metrics", "units", "higher_is_better", "protocol", "files"}
NESTED |= {"memory_config", "dataset_config", "benchmark_config", "train_config"}


class ResultsError(Exception):
    """The results directory is missing or holds no run directories."""


@dataclass
class Results:
    """A loaded results tree."""

    root: Path
    runs: pd.DataFrame  # one row per run directory (RUN_COLUMNS)
    metrics: pd.DataFrame  # long format, one row per (run, metric) (LONG_COLUMNS)
    payloads: dict[str, dict[str, Any]]  # run_id -> the (converted) result.json, for protocols and files

    def run_dir(self, run_id: str) -> Path:
        return Path(self.runs.set_index("run_id").at[run_id, "path"])

    @property
    def current_runs(self) -> pd.DataFrame:
        return self.runs[self.runs["current"]]

    @property
    def current_metrics(self) -> pd.DataFrame:
        return self.metrics[self.metrics["current"]]


# ---------------------------------------------------------------------------- schema conversion
def convert_result(payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Bring a result.json of any schema version to the current one; returns (result, note).

    Schema 0 (before ``schema_version`` existed) used ``model`` for the memory label, ``state`` for
    the status, ``commit``/``device`` at the top level and nested metrics
    ``{name: {"value", "unit", "higher_is_better"}}``. The note is empty when nothing changed.
    """
    result = dict(payload)
    version = result.get("schema_version", 0)
    try:
        version = int(version)
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
    metrics = result.get("metrics")
    if isinstance(metrics, dict) and any(isinstance(v, dict) for v in metrics.values()):
        flat, units, directions = {}, dict(result.get("units") or {}), dict(result.get("higher_is_better") or {})
        for name, entry in metrics.items():
            if isinstance(entry, dict):
                flat[name] = entry.get("value")
                units.setdefault(name, entry.get("unit", ""))
                directions.setdefault(name, bool(entry.get("higher_is_better", False)))
            else:
                flat[name] = entry
        result.update(metrics=flat, units=units, higher_is_better=directions)
        changes.append("nested metrics flattened")
    if not isinstance(result.get("metrics"), dict):
        result["metrics"] = {}
    if "status" not in result:
        result["status"] = "done" if result["metrics"] else "failed"
    note = ""
    if version < RESULT_SCHEMA_VERSION:
        note = f"converted from schema {version}" + (f" ({', '.join(changes)})" if changes else "")
    elif version > RESULT_SCHEMA_VERSION:
        note = f"written by newer schema {version}; read as schema {RESULT_SCHEMA_VERSION}"
    result["schema_version"] = version
    return result, note


# ---------------------------------------------------------------------------- loading
def find_run_dirs(root: Path) -> list[Path]:
    """Run directories below ``root``: those holding spec.json or result.json (older trees lack specs)."""
    return sorted({p.parent for name in (SPEC_FILE, RESULT_FILE) for p in root.rglob(name)})


def load_results(root: str | Path) -> Results:
    """Read every run directory below ``root`` (a results root or one suite's directory)."""
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"results directory {root} does not exist")
    run_dirs = find_run_dirs(root)
    if not run_dirs:
        raise ResultsError(f"no run directories (spec.json/result.json) found under {root}")
    read = [_read_run(run_dir) for run_dir in run_dirs]
    # the same configuration run in two suites has the same run_id: those are named by their path
    counts = pd.Series([row["run_id"] for row, _ in read]).value_counts()
    rows, metric_rows, payloads = [], [], {}
    for row, payload in read:
        if counts[row["run_id"]] > 1:
            row["run_id"] = Path(row["path"]).relative_to(root).as_posix()
        rows.append(row)
        if payload is not None:
            payloads[row["run_id"]] = payload
            metric_rows.extend(_metric_rows(row, payload))
    runs = pd.DataFrame(rows, columns=[*RUN_COLUMNS, "_variant_time"])
    runs["seed"] = pd.to_numeric(runs["seed"], errors="coerce").astype("Int64")
    runs["current"] = _current(runs)
    runs = runs.drop(columns="_variant_time").sort_values(["suite", "benchmark", "dataset", "model", "seed"])
    metrics = pd.DataFrame(metric_rows, columns=LONG_COLUMNS)
    if metrics.empty:  # typed empty columns: a boolean mask of no rows still selects rows, not columns
        metrics = metrics.astype({"current": bool, "value": float, "stderr": float})
    else:
        metrics["current"] = metrics["run_id"].map(runs.set_index("run_id")["current"]).astype(bool)
        metrics["seed"] = pd.to_numeric(metrics["seed"], errors="coerce").astype("Int64")
        metrics["value"] = pd.to_numeric(metrics["value"], errors="coerce")
        metrics["stderr"] = pd.to_numeric(metrics["stderr"], errors="coerce")
    return Results(root=root, runs=runs.reset_index(drop=True), metrics=metrics, payloads=payloads)


def _read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    spec = read_json(run_dir / SPEC_FILE) or {}
    raw, result_problem = result_record(run_dir)
    status, status_problem = status_record(run_dir)
    status = status or {}
    payload, note = convert_result(raw) if raw is not None else (None, "")
    source = {**spec, **(payload or {})}
    source = {key: value for key, value in source.items() if not isinstance(value, (list, dict)) or key in NESTED}
    environment: dict[str, Any] = source["environment"] if isinstance(source.get("environment"), dict) else {}
    problem = result_problem or (status_problem if payload is None else "")
    if problem:  # the same verdict as `memorybench status` (both read through runners.results)
        state, reason = "damaged", problem
    elif payload is not None:
        state = str(payload.get("status", "done"))
        reason = str(payload.get("reason") or payload.get("error") or "")
    else:
        state = str(status.get("state", "pending"))
        reason = str(status.get("error") or "")
        here = status.get("host") == socket.gethostname() and not status.get("slurm_job_id")
        if state == "running" and here and lock_held(run_dir) is False:
            state = "interrupted"  # as `memorybench status` says: its process is gone (the lock is free)
            reason = f"process {status.get('pid')} ended without a result; a plain rerun resumes it"
        if state in ("pending", "running"):
            reason = reason or (
                "no result yet" if state == "pending" else f"still running (updated {status.get('updated')})"
            )
    row = {
        "suite": source.get("suite") or run_dir.parent.name,
        "model": source.get("memory") or source.get("memory_class") or "?",
        "memory_class": source.get("memory_class") or source.get("memory") or "?",
        "dataset": source.get("dataset") or "?",
        "benchmark": source.get("benchmark") or "?",
        "seed": source.get("seed"),
        "status": state,
        "reason": reason,
        "run_id": source.get("run_id") or run_dir.name,
        "variant": variant_of(source),
        "git_commit": source.get("git_commit"),
        "device": environment.get("device_name") or environment.get("device"),
        "finished": source.get("finished") or status.get("finished") or status.get("updated"),
        "wall_time_s": source.get("wall_time_s"),
        "schema_version": payload.get("schema_version") if payload else None,
        "converted": note,
        "path": str(run_dir),
        "_variant_time": max(str(source.get("finished") or ""), str(status.get("updated") or "")),
    }
    return row, payload


def variant_of(source: dict[str, Any]) -> str:
    """A short hash of the run's configuration without its seed: runs sharing it are seeds of one setting."""
    identity = source.get("config")
    if not isinstance(identity, dict):
        keys = ("memory_class", "memory_config", "dataset", "benchmark", "benchmark_config", "train_config")
        identity = {key: source.get(key) for key in keys}
        identity["dataset_config"] = {k: v for k, v in (source.get("dataset_config") or {}).items() if k != "root"}
    identity = {k: v for k, v in identity.items() if k != "seed"}
    blob = json.dumps(identity, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def _current(runs: pd.DataFrame) -> pd.Series:
    """True for the runs of the newest configuration of each (suite, model, dataset, benchmark).

    A configuration's time is its latest activity (a result finished, a status update), so a suite
    re-planned with new settings makes the new runs current even before they have results.
    """
    variants = (
        runs.groupby([*IDENTITY, "variant"], dropna=False)
        .agg(time=("_variant_time", "max"), count=("run_id", "size"))
        .reset_index()
        .sort_values(["time", "count", "variant"], ascending=[False, False, True])
    )
    chosen = variants.drop_duplicates(IDENTITY)[[*IDENTITY, "variant"]].assign(_chosen=True)
    merged = runs[[*IDENTITY, "variant"]].merge(chosen, on=[*IDENTITY, "variant"], how="left")
    current = pd.Series(merged["_chosen"].fillna(False).astype(bool).to_numpy(), index=runs.index)
    # one seed of one configuration found twice (a copied directory): the newest counts, once
    newest_first = runs[current].sort_values(["_variant_time", "path"], ascending=[False, True])
    repeated = newest_first.duplicated([*IDENTITY, "variant", "seed"], keep="first")
    current[repeated[repeated].index] = False
    return current


def _metric_rows(row: dict[str, Any], payload: dict[str, Any]) -> list[dict[str, Any]]:
    metrics = payload.get("metrics") or {}
    units = payload.get("units") or {}
    directions = payload.get("higher_is_better") or {}
    rows = []
    for name, value in metrics.items():
        if name.endswith(STDERR_SUFFIX) and name[: -len(STDERR_SUFFIX)] in metrics:
            continue  # folded into its metric's stderr column
        stderr = metrics.get(name + STDERR_SUFFIX)
        rows.append(
            {
                **{key: row[key] for key in ("suite", "model", "memory_class", "dataset", "benchmark", "seed")},
                "metric": name,
                "value": _number(value),
                "stderr": _number(stderr),
                "unit": units.get(name, "") or "",
                "higher_is_better": bool(directions.get(name, False)),
                **{
                    key: row[key]
                    for key in ("run_id", "variant", "git_commit", "device", "schema_version", "converted")
                },
                "current": True,
            }
        )
    return rows


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float(np.nan)
