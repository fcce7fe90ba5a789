"""Deciding what a (re-)run of a suite has to do, and preparing the run directories of those that run.

For each planned run: ``skip`` (a result exists), ``resume`` (its training run has a checkpoint), ``start``
(nothing yet) or ``retry`` (failed before, or its result is damaged, and ``--retry-failed`` was
given; otherwise such a run is skipped and reported). A run whose process died without a result
is resumed or started like any unfinished run. With ``--rerun-stale`` (:func:`mark_stale`), a
finished run whose result records other model or benchmark code than the installed one (or no
code hash at all) is ``rerun``: its result is moved aside and the run starts again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from memorybench.benchmarks.base import BENCHMARKS
from memorybench.runners.execute import prepare_run_dir
from memorybench.runners.schema import (
    RESULT_FILE,
    STATUS_FILE,
    TRAINING_FILE,
    RunBusyError,
    code_hashes,
    read_json,
    run_lock,
    run_state,
    write_status,
)
from memorybench.runners.suite import RunSpec
from memorybench.runners.training import clear_training_failure, has_checkpoint, training_dir

# active: still queued/running elsewhere; rerun: finished by other code (--rerun-stale)
ACTIONS = ("skip", "skip_failed", "active", "resume", "start", "retry", "rerun")


@dataclass(frozen=True)
class PlannedRun:
    spec: RunSpec
    run_dir: Path
    action: str  # one of ACTIONS

    @property
    def will_run(self) -> bool:
        return self.action in ("resume", "start", "retry", "rerun")


def classify(spec: RunSpec, run_dir: Path, retry_failed: bool = False) -> str:
    decided = run_state(run_dir)
    if decided.has_result:  # a failed or damaged result is kept (moved aside) and replaced only when asked to
        if decided.state in ("failed", "damaged"):
            return "retry" if retry_failed else "skip_failed"
        return "skip"
    trains = BENCHMARKS.get(spec.benchmark).needs_training
    return "resume" if trains and has_checkpoint(training_dir(run_dir.parent, spec)) else "start"


def plan_runs(specs: Iterable[RunSpec], suite_dir: Path, retry_failed: bool = False) -> list[PlannedRun]:
    """Each spec with its run directory and what to do with it."""
    planned = []
    for spec in specs:
        run_dir = suite_dir / spec.run_id
        planned.append(PlannedRun(spec, run_dir, classify(spec, run_dir, retry_failed)))
    return planned


def current_code(spec: RunSpec) -> dict[str, str | None]:
    """The hashes of the installed model and benchmark code of ``spec`` (as a result records them)."""
    from memorybench import memories

    memory = memories.MEMORIES.provenance(spec.memory_class)["code_hash"]
    return {"memory": memory, "benchmark": BENCHMARKS.provenance(spec.benchmark)["code_hash"]}


def stale_parts(spec: RunSpec, run_dir: Path) -> list[str]:
    """Which of "memory", "benchmark" ran other code than the installed one for the finished run in
    ``run_dir`` (a result without a recorded hash counts as stale: its code is unknown)."""
    decided = run_state(run_dir)
    if decided.result is None:
        return []
    recorded, installed = code_hashes(decided.result), current_code(spec)
    return [part for part in ("memory", "benchmark") if recorded[part] is None or recorded[part] != installed[part]]


def mark_stale(planned: Iterable[PlannedRun]) -> list[PlannedRun]:
    """``--rerun-stale``: finished runs (``skip``) produced by other code become ``rerun``."""
    return [
        replace(run, action="rerun") if run.action == "skip" and stale_parts(run.spec, run.run_dir) else run
        for run in planned
    ]


def clear_failure(run: PlannedRun) -> None:
    """Move a failed (or damaged) result aside before retrying (kept as ``result.failed-<n>.json``)."""
    result_path = run.run_dir / RESULT_FILE
    if result_path.is_file():
        index = len(list(run.run_dir.glob("result.failed-*.json")))
        result_path.rename(run.run_dir / f"result.failed-{index}.json")


def prepare(runs: Iterable[PlannedRun]) -> list[PlannedRun]:
    """Create run directories (spec + pending status) for everything that will run.

    A run whose lock another process holds (another ``memorybench run`` is running it) is left
    alone and dropped from the returned list."""
    todo = []
    for run in runs:
        if not run.will_run:
            continue
        if run.run_dir.is_dir():
            try:
                with run_lock(run.run_dir):
                    _reset(run)
            except RunBusyError:
                continue
        prepare_run_dir(run.spec, run.run_dir)
        todo.append(run)
    return todo


def clear_stale(run: PlannedRun) -> None:
    """Before re-running a stale run: move its result aside (kept as ``result.stale-<n>.json``) and,
    when the model's code changed, its training run too (``_training/<id>.stale-<n>``), so the model
    is trained again by the new code. A training run updated after this result was written was
    already retrained (by another stale run of the same model) and is kept."""
    parts = stale_parts(run.spec, run.run_dir)
    result = read_json(run.run_dir / RESULT_FILE) or {}
    if "memory" in parts and BENCHMARKS.get(run.spec.benchmark).needs_training:
        directory = training_dir(run.run_dir.parent, run.spec)
        trained = read_json(directory / TRAINING_FILE) or {}
        if directory.is_dir() and str(trained.get("updated") or "") <= str(result.get("finished") or ""):
            directory.rename(_aside(directory.parent, f"{directory.name}.stale-"))
    (run.run_dir / RESULT_FILE).rename(_aside(run.run_dir, "result.stale-", ".json"))


def _aside(directory: Path, prefix: str, suffix: str = "") -> Path:
    index = len(list(directory.glob(f"{prefix}*")))
    while (directory / f"{prefix}{index}{suffix}").exists():
        index += 1
    return directory / f"{prefix}{index}{suffix}"


def _reset(run: PlannedRun) -> None:
    if run.action == "rerun":
        if run_state(run.run_dir).has_result:
            clear_stale(run)
    elif run.action == "retry":
        if run_state(run.run_dir).has_result:
            clear_failure(run)
        clear_training_failure(training_dir(run.run_dir.parent, run.spec))
    elif run_state(run.run_dir).has_result:  # finished since it was planned
        return
    if (run.run_dir / STATUS_FILE).is_file():  # dispatched before: forget that attempt's job and error
        notes = {"retry": "retrying after a failure", "rerun": "re-running: its code changed"}
        note = notes.get(run.action)
        write_status(run.run_dir, "pending", error=None, slurm_job_id=None, note=note)
