"""Results tree → pandas: one row per run, and the long-format metric table.

Everything is read from the run directories through :mod:`memorybench.runners.schema` (the only
module of ``runners/`` that reports import): a run's state is the one :func:`run_state` decides,
the same ``memorybench status`` shows; nothing is cached or appended. A run that has no result
yet, failed, is damaged or is not applicable is a row of :attr:`Results.runs` with its state and
reason, never an error. Results written by an older schema are converted on the fly and marked.

The long table (:attr:`Results.metrics`) has one row per measurement: ``metric``, ``value``,
``stderr``, ``unit``, ``higher_is_better``, and its tags twice: ``tags``, one text such as
``T=16, noise=salt_pepper, level=0.1`` ("" for none; part of a metric's identity when grouping),
and one column ``tag_<key>`` per tag key (``tag_T``, ``tag_noise``, …; empty where a measurement
lacks that tag).

When one (suite, model, dataset, benchmark) was run under several configurations (a suite re-run
with changed settings writes new run directories beside the old ones), only the configuration
with the most recent result is *current*; the others are kept in the tables with
``current = False`` and listed as superseded, so seeds of different configurations are never
averaged together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from memorybench.runners.schema import RESULT_FILE, SPEC_FILE, code_hashes, measurements, read_json, run_state

IDENTITY = ["suite", "model", "dataset", "benchmark"]
SELECTABLE = {"suite": "suite", "memory": "model", "dataset": "dataset", "benchmark": "benchmark", "seed": "seed"}
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
    "descriptive",
    "tags",
    "run_id",
    "variant",
    "current",
    "git_commit",
    "code",
    "stale",
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
    "caveat",  # why the run's NELBO is not a valid bound (the result's protocol; empty when it is)
    "run_id",
    "variant",
    "current",
    "git_commit",
    "code",
    "stale",
    "device",
    "finished",
    "wall_time_s",
    "schema_version",
    "converted",
    "path",
]
TAG_PREFIX = "tag_"
# Fields of spec.json / result.json that are meant to be lists or mappings (any other field of such a type is damage).
NESTED = {"environment", "config", "metrics", "measurements", "figures", "protocol", "files"}
NESTED |= {"memory_config", "dataset_config", "benchmark_config", "train_config"}


def _caveat(payload: dict[str, Any]) -> str:
    protocol = payload.get("protocol")
    if isinstance(protocol, dict) and protocol.get("nelbo_valid_bound") is False:
        return str(protocol.get("caveat") or "not a valid bound")
    return ""


class ResultsError(Exception):
    """The results directory is missing or holds no run directories."""


@dataclass
class Results:
    """A loaded results tree."""

    root: Path
    runs: pd.DataFrame  # one row per run directory (RUN_COLUMNS)
    metrics: pd.DataFrame  # long format, one row per (run, measurement) (LONG_COLUMNS, then tag_<key> columns)
    payloads: dict[str, dict[str, Any]]  # run_id -> the (converted) result.json: protocols, files, figures

    def run_dir(self, run_id: str) -> Path:
        return Path(self.runs.set_index("run_id").at[run_id, "path"])

    @property
    def current_runs(self) -> pd.DataFrame:
        return self.runs[self.runs["current"]]

    @property
    def current_metrics(self) -> pd.DataFrame:
        return self.metrics[self.metrics["current"]]


# ---------------------------------------------------------------------------- loading
def find_run_dirs(root: Path) -> list[Path]:
    """Run directories below ``root``: those holding spec.json or result.json (older trees lack specs)."""
    return sorted({p.parent for name in (SPEC_FILE, RESULT_FILE) for p in root.rglob(name)})


def load_results(root: str | Path, only: Mapping[str, Sequence[str]] | None = None) -> Results:
    """Read every run directory below ``root`` (a results root or one suite's directory); with
    ``only`` (``{"memory": ["gpm", "vae"], "seed": ["0"]}``, keys of :data:`SELECTABLE`) only the
    runs it selects. A selected value the tree lacks raises :class:`ResultsError` naming the choices."""
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"results directory {root} does not exist")
    run_dirs = find_run_dirs(root)
    if not run_dirs:
        raise ResultsError(f"no run directories (spec.json/result.json) found under {root}")
    read = _selected([_read_run(run_dir) for run_dir in run_dirs], only or {}, root)
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
    runs["stale"] = stale_code(runs)
    runs = runs.drop(columns="_variant_time").sort_values(["suite", "benchmark", "dataset", "model", "seed"])
    tag_columns = sorted({key for row in metric_rows for key in row if key.startswith(TAG_PREFIX)})
    metrics = pd.DataFrame(metric_rows, columns=[*LONG_COLUMNS, *tag_columns])
    if metrics.empty:  # typed empty columns: a boolean mask of no rows still selects rows, not columns
        metrics = metrics.astype({"current": bool, "value": float, "stderr": float})
    else:
        metrics["current"] = metrics["run_id"].map(runs.set_index("run_id")["current"]).astype(bool)
        metrics["stale"] = metrics["run_id"].map(runs.set_index("run_id")["stale"]).astype(bool)
        metrics["seed"] = pd.to_numeric(metrics["seed"], errors="coerce").astype("Int64")
        metrics["value"] = pd.to_numeric(metrics["value"], errors="coerce")
        metrics["stderr"] = pd.to_numeric(metrics["stderr"], errors="coerce")
    return Results(root=root, runs=runs.reset_index(drop=True), metrics=metrics, payloads=payloads)


def _selected(read: list[tuple[dict[str, Any], Any]], only: Mapping[str, Sequence[str]], root: Path) -> list:
    """The runs whose labels ``only`` selects (values of a key are alternatives; keys combine)."""
    for key, values in only.items():
        column = SELECTABLE.get(key)
        if column is None:
            raise ResultsError(f"--only {key}=…: unknown key {key!r}; choose from {', '.join(SELECTABLE)}")
        choices = sorted({str(row[column]) for row, _ in read}, key=lambda text: (not text.isdigit(), text.zfill(20)))
        unknown = [str(value) for value in values if str(value) not in choices]
        if unknown:
            raise ResultsError(
                f"--only {key}={unknown[0]}: {root} has no {key} {unknown[0]!r}; choose from {', '.join(choices)}"
            )
        read = [(row, payload) for row, payload in read if str(row[column]) in {str(v) for v in values}]
    return read


def _read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    spec = read_json(run_dir / SPEC_FILE) or {}
    decided = run_state(run_dir)  # the verdict `memorybench status` shows too
    status, payload = decided.status, decided.result
    source = {**spec, **(payload or {})}
    source = {key: value for key, value in source.items() if not isinstance(value, (list, dict)) or key in NESTED}
    environment: dict[str, Any] = source["environment"] if isinstance(source.get("environment"), dict) else {}
    state, reason = decided.state, decided.reason
    if state == "pending":
        reason = reason or "no result yet"
    elif state == "running":
        reason = reason or f"still running (updated {status.get('updated')})"
    row = {
        "suite": source.get("suite") or run_dir.parent.name,
        "model": source.get("memory") or source.get("memory_class") or "?",
        "memory_class": source.get("memory_class") or source.get("memory") or "?",
        "dataset": source.get("dataset") or "?",
        "benchmark": source.get("benchmark") or "?",
        "seed": source.get("seed"),
        "status": state,
        "reason": reason,
        "caveat": _caveat(payload or {}),
        "run_id": source.get("run_id") or run_dir.name,
        "variant": variant_of(source),
        "git_commit": source.get("git_commit"),
        "code": code_text(payload or {}),
        "stale": False,
        "device": environment.get("device_name") or environment.get("device"),
        "finished": source.get("finished") or status.get("finished") or status.get("updated"),
        "wall_time_s": source.get("wall_time_s"),
        "schema_version": payload.get("schema_version") if payload else None,
        "converted": decided.converted,
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


def code_text(result: dict[str, Any]) -> str:
    """``<memory code hash>/<benchmark code hash>`` (8 digits each, ``?`` when not recorded)."""
    return "/".join((value or "?")[:8] for value in code_hashes(result).values())


def stale_code(runs: pd.DataFrame) -> pd.Series:
    """True for finished runs (done or not applicable) whose model (benchmark) code differs from the
    code of the most recently finished run of the same model class (benchmark) that recorded one:
    produced by other code than the newest results (``memorybench run --rerun-stale`` re-runs them)."""
    stale = pd.Series(False, index=runs.index)
    done = runs[runs["status"].isin(["done", "not_applicable"])].sort_values("finished", na_position="first")
    for position, key in ((0, "memory_class"), (1, "benchmark")):
        codes = done["code"].fillna("?/?").str.split("/").str[position]
        newest = codes[codes != "?"].groupby(done[key]).last()
        reference = done[key].map(newest)
        stale.loc[done.index] |= reference.notna() & (codes != reference)
    return stale


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
    identity = {key: row[key] for key in ("suite", "model", "memory_class", "dataset", "benchmark", "seed")}
    keys = ("run_id", "variant", "git_commit", "code", "stale", "device", "schema_version", "converted")
    provenance = {key: row[key] for key in keys}
    rows = []
    for item in measurements(payload):
        rows.append(
            {
                **identity,
                "metric": item["name"],
                "value": _number(item["value"]),
                "stderr": _number(item["stderr"]),
                "unit": item["unit"],
                "higher_is_better": item["higher_is_better"],
                "descriptive": item["descriptive"],
                "tags": tag_text(item["tags"]),
                **{TAG_PREFIX + str(key): value for key, value in item["tags"].items()},
                **provenance,
                "current": True,
            }
        )
    return rows


def tag_text(tags: dict[str, Any]) -> str:
    """``{T: 16, noise: salt_pepper}`` → ``T=16, noise=salt_pepper`` ("" for no tags)."""
    return ", ".join(f"{key}={value}" for key, value in tags.items())


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float(np.nan)
