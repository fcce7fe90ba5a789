"""``memorybench report``: a results tree → tables, figures and the HTML/Markdown report.

Output folder layout (the stable interface)::

    OUT/report.html            self-contained (figures embedded), links figures/*.pdf
    OUT/report.md              Markdown twin, links figures/*.png
    OUT/results.csv            long format, one row per (run, metric), every run incl. superseded
    OUT/results.parquet        the same, when a Parquet engine (pyarrow/fastparquet) is installed
    OUT/aggregated.csv         mean, std, 95 % CI and n over seeds per (suite, model, dataset, benchmark, metric)
    OUT/paired_differences.csv model A − model B on shared episodes
    OUT/runs.csv               one row per run directory: state, reason, commit, device, …
    OUT/tables/<name>.{md,tex,csv}
    OUT/figures/<name>.{png,pdf}

Everything is rebuilt from the run directories on each call; the report is a pure function of
the results on disk (plus the reference-values file).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import shutil
import tempfile
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from memorybench.reports import benchmark_figures, figures, paper_tables
from memorybench.reports.aggregate import aggregate, paired_differences
from memorybench.reports.html import ReportContent, render_html, render_markdown
from memorybench.reports.load import Results, load_results
from memorybench.reports.ranking import bootstrap_ranks, ranking_table
from memorybench.reports.reference import load_reference
from memorybench.reports.tables import RENDERERS, Table
from memorybench.reports.tuning import tuning_table
from memorybench.runners.schema import atomic_write_bytes, atomic_write_text

FORMATS = ("md", "html", "latex", "csv")
TABLE_EXTENSIONS = {"md": "md", "latex": "tex", "csv": "csv"}


MANIFEST = ".memorybench-report.json"  # what the last report wrote: the only files a new report may remove
LOG = "report.log"  # tracebacks of tables and figures that failed


@dataclass
class ReportOutcome:
    out: Path
    runs: int
    states: dict[str, int]
    tables: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not drawn, with the reason (failures included)
    failed: list[str] = field(default_factory=list)  # tables and figures whose code raised: exit status 1


def parse_formats(text: str | Iterable[str]) -> list[str]:
    """``"md,html"`` → ``["md", "html"]``; unknown names raise ValueError."""
    items = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    aliases = {"tex": "latex", "markdown": "md"}
    items = [aliases.get(t, t) for t in items]
    unknown = [t for t in items if t not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(items)) or list(FORMATS)


def episode_lengths(results: Results) -> dict[tuple[str, str, str], int]:
    """(suite, model, dataset) → the model's episode length T, from protocols or specs."""
    lengths: dict[tuple[str, str, str], int] = {}
    for run in results.current_runs.itertuples(index=False):
        payload = results.payloads.get(run.run_id, {})
        protocol = payload.get("protocol") or {}
        length = protocol.get("episode_length")
        listed = protocol.get("episode_lengths")
        if isinstance(listed, list):  # several T averaged together have no single T
            length = listed[0] if len(listed) == 1 else None
        elif not length:
            length = ((payload.get("config") or {}).get("memory_config") or {}).get("episode_length")
        if length:
            lengths.setdefault((run.suite, run.model, run.dataset), int(length))
    return lengths


def build_report(
    results_dir: str | Path,
    out: str | Path | None = None,
    formats: Iterable[str] = FORMATS,
    only: Mapping[str, Sequence[str]] | None = None,
) -> ReportOutcome:
    """Write the report of ``results_dir`` into ``out`` (default ``results_dir/report``).

    Tables and figures are drawn into a staging folder, then moved into ``out/tables`` and
    ``out/figures``; files of an earlier report that this one did not rewrite are removed only
    when that report's manifest lists them, so files a user keeps there are never touched.
    ``only`` restricts the report to some runs (see :func:`memorybench.reports.load.load_results`)."""
    formats = parse_formats(formats)
    results = load_results(results_dir, only)
    out = Path(out) if out is not None else Path(results_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-staging-", dir=out))
    try:
        outcome, written = _build(results, out, staging, formats)
        _publish(out, staging, written)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return outcome


def _build(results: Results, out: Path, staging: Path, formats: list[str]) -> tuple[ReportOutcome, list[str]]:
    tables_dir, figures_dir = staging / "tables", staging / "figures"
    for folder in (tables_dir, figures_dir):
        folder.mkdir()
    failed: list[str] = []
    log: list[str] = []
    aggregated = aggregate(results.current_metrics)
    paired = _guarded("paired differences", failed, log, lambda: paired_differences(results))
    if paired is None:
        paired = pd.DataFrame()
    reference = load_reference()
    written = _write_data(results, aggregated, paired, out)

    runs = results.current_runs
    first, third = paper_tables.table_datasets(reference, runs)
    lengths = episode_lengths(results)
    paper = [
        _guarded("Table 1", failed, log, lambda: paper_tables.nelbo_table(1, runs, aggregated, reference, first)),
        _guarded("Table 2", failed, log, lambda: paper_tables.denoising_table(runs, aggregated, reference, lengths)),
        _guarded("Table 3", failed, log, lambda: paper_tables.nelbo_table(3, runs, aggregated, reference, third)),
    ]
    paper_list = [t for t in paper if isinstance(t, Table) and not t.empty]
    per_benchmark = (
        _guarded("per-benchmark tables", failed, log, lambda: paper_tables.benchmark_tables(runs, aggregated)) or []
    )
    paired_table = _guarded("paired differences", failed, log, lambda: paper_tables.paired_table(paired))
    if isinstance(paired_table, Table):
        per_benchmark.append(paired_table)
    tuned = _guarded("tuning", failed, log, lambda: tuning_table(results))
    if isinstance(tuned, Table):
        per_benchmark.append(tuned)
    ranks = _guarded("ranks", failed, log, lambda: bootstrap_ranks(results))
    if not isinstance(ranks, pd.DataFrame):
        ranks = pd.DataFrame()
    rank_table = ranking_table(ranks)
    if rank_table is not None:  # None when nothing was ranked
        atomic_write_text(out / "ranks.csv", ranks.to_csv(index=False))
        written.append("ranks.csv")
        per_benchmark.append(rank_table)
    reported = paper_tables.reported_tables(reference)
    all_tables = [*paper_list, *per_benchmark, *reported]
    _write_tables(all_tables, tables_dir, formats)

    made = _draw_figures(results, paired, ranks, figures_dir, failed, log)
    skipped = list(failed)
    content = ReportContent(
        title="memorybench report: " + ", ".join(sorted(set(results.runs["suite"]))),
        header=_header(results),
        paper_tables=paper_list,
        tables=per_benchmark,
        reported=reported,
        figures=made,
        problems=_problems(results),
        superseded=_superseded(results),
        skipped=skipped,
        files=[
            "results.csv",
            "aggregated.csv",
            "paired_differences.csv",
            *(["ranks.csv"] if "ranks.csv" in written else []),
            "runs.csv",
            *(["results.parquet"] if "results.parquet" in written else []),
            *(f"tables/{t.name}.{TABLE_EXTENSIONS[f]}" for t in all_tables for f in formats if f in TABLE_EXTENSIONS),
        ],
    )
    if "html" in formats:
        atomic_write_text(out / "report.html", render_html(content, figures_dir))
        written.append("report.html")
    if "md" in formats:
        atomic_write_text(out / "report.md", render_markdown(content))
        written.append("report.md")
    if log:
        atomic_write_text(out / LOG, "\n".join(log))
        written.append(LOG)
    written += [path.relative_to(staging).as_posix() for path in sorted(staging.rglob("*")) if path.is_file()]
    states = results.runs.loc[results.runs["current"], "status"].value_counts().to_dict()
    outcome = ReportOutcome(
        out, len(results.runs), states, [t.name for t in all_tables], [f.stem for f in made], skipped, failed
    )
    return outcome, written


def _publish(out: Path, staging: Path, written: list[str]) -> None:
    """Move the staged tables and figures into ``out``, remove what only the previous report had
    written, record this report's files in the manifest, and make everything shareable."""
    for name in ("tables", "figures"):
        for path in sorted((staging / name).glob("*")):
            (out / name).mkdir(exist_ok=True)
            os.replace(path, out / name / path.name)
    previous = _manifest(out)
    for name in sorted(set(previous) - set(written)):
        target = out / name
        if target.is_file() and target.resolve().is_relative_to(out.resolve()):
            target.unlink()
    atomic_write_text(out / MANIFEST, json.dumps({"written": sorted(written)}, indent=1) + "\n")
    umask = os.umask(0)
    os.umask(umask)
    for name in written:
        if (out / name).is_file():
            (out / name).chmod(0o666 & ~umask)


def _manifest(out: Path) -> list[str]:
    try:
        listed = json.loads((out / MANIFEST).read_text(encoding="utf-8")).get("written", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [name for name in listed if isinstance(name, str) and ".." not in Path(name).parts]


def _guarded(name: str, failed: list[str], log: list[str], build: Callable[[], Any]) -> Any:
    """``build()``, or None with the error noted in ``failed``: one broken table must not sink the report."""
    try:
        return build()
    except Exception as error:
        failed.append(f"{name}: {type(error).__name__}: {error}".splitlines()[0])
        log.append(f"--- {name}\n{traceback.format_exc()}")
        return None


def _write_data(results: Results, aggregated: pd.DataFrame, paired: pd.DataFrame, out: Path) -> list[str]:
    atomic_write_text(out / "results.csv", results.metrics.to_csv(index=False))
    atomic_write_text(out / "aggregated.csv", aggregated.to_csv(index=False))
    atomic_write_text(out / "paired_differences.csv", paired.to_csv(index=False))
    atomic_write_text(out / "runs.csv", results.runs.to_csv(index=False))
    written = ["results.csv", "aggregated.csv", "paired_differences.csv", "runs.csv"]
    if any(importlib.util.find_spec(engine) for engine in ("pyarrow", "fastparquet")):
        atomic_write_bytes(out / "results.parquet", results.metrics.to_parquet(index=False))
        written.append("results.parquet")
    return written


def _write_tables(tables: list[Table], folder: Path, formats: list[str]) -> None:
    for table in tables:
        for fmt, extension in TABLE_EXTENSIONS.items():
            if fmt in formats:
                atomic_write_text(folder / f"{table.name}.{extension}", RENDERERS[extension](table))


def _draw_figures(
    results: Results, paired: pd.DataFrame, ranks: pd.DataFrame, folder: Path, failed: list[str], log: list[str]
) -> list[figures.Figure]:
    """Every figure function in turn; one that raises is noted in ``failed``, never fatal."""
    made: list[figures.Figure] = []
    jobs = [
        ("training curves", lambda: figures.training_curves(results, folder)),
        ("ELBO", lambda: figures.elbo_points(results, folder)),
        ("paired differences", lambda: figures.paired_forest(paired, folder)),
        ("rank intervals", lambda: figures.rank_intervals(ranks, folder)),
        *((name, (lambda f=function: f(results, folder))) for name, function in benchmark_figures.FIGURES),
    ]
    for name, job in jobs:
        drawn = _guarded(f"figure {name}", failed, log, job)
        made.extend(drawn or [])
    return made


def _header(results: Results) -> dict[str, str]:
    runs = results.runs
    current = runs[runs["current"]]
    commits = sorted({str(c) for c in current["git_commit"].dropna()})
    devices = sorted({str(d) for d in current["device"].dropna()})
    finished = sorted(str(f) for f in current.loc[current["status"] == "done", "finished"].dropna())
    counts = current["status"].value_counts()
    return {
        "results": str(results.root.resolve()),
        "suites": ", ".join(sorted(set(runs["suite"]))),
        "models": ", ".join(sorted(set(current["model"]))),
        "datasets": ", ".join(sorted(set(current["dataset"]))),
        "benchmarks": ", ".join(sorted(set(current["benchmark"]))),
        "seeds": ", ".join(str(s) for s in sorted(set(current["seed"].dropna().astype(int)))),
        "runs": f"{len(current)} current ({', '.join(f'{n} {s}' for s, n in counts.items())})"
        + (f", {len(runs) - len(current)} superseded" if len(runs) > len(current) else ""),
        "git commit": ", ".join(commits) or "unknown",
        "devices": ", ".join(devices) or "unknown",
        "results finished": f"{finished[0]} … {finished[-1]}" if finished else "none yet",
        "report generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _problems(results: Results) -> pd.DataFrame:
    """Current runs that are not done, were converted from an older schema or came from older code."""
    runs = results.current_runs
    bad = runs[(runs["status"] != "done") | (runs["converted"].astype(str) != "") | runs["stale"]].copy()
    code = [
        "produced by older code (code " + str(c) + "; run --rerun-stale)" if s else ""
        for c, s in zip(bad["code"], bad["stale"])
    ]
    bad["reason"] = [
        "; ".join(p for p in (str(r), str(c), k) if p)
        for r, c, k in zip(bad["reason"].fillna(""), bad["converted"].fillna(""), code)
    ]
    return bad[["suite", "model", "dataset", "benchmark", "seed", "status", "reason", "run_id"]].reset_index(drop=True)


def _superseded(results: Results) -> pd.DataFrame:
    old = results.runs[~results.runs["current"]]
    return old[["suite", "model", "dataset", "benchmark", "seed", "status", "variant", "run_id"]].reset_index(drop=True)
