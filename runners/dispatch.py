"""Deciding what a (re-)run of a suite has to do, and preparing the run directories of those that run.

For each planned run: ``skip`` (a result exists), ``resume`` (its training run has a checkpoint), ``start``
(nothing yet) or ``retry`` (failed before, or its result is damaged, and ``--retry-failed`` was
given; otherwise such a run is skipped and reported). A run whose process died without a result
is resumed or started like any unfinished run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from memorybench.benchmarks.base import BENCHMARKS
from memorybench.runners.execute import prepare_run_dir
from memorybench.runners.schema import (
    RESULT_FILE,
    STATUS_FILE,
    RunBusyError,
    run_lock,
    run_state,
    write_status,
)
from memorybench.runners.suite import RunSpec
from memorybench.runners.training import clear_training_failure, has_checkpoint, training_dir

ACTIONS = ("skip", "skip_failed", "active", "resume", "start", "retry")  # active: still queued/running elsewhere


@dataclass(frozen=True)
class PlannedRun:
    spec: RunSpec
    run_dir: Path
    action: str  # one of ACTIONS

    @property
    def will_run(self) -> bool:
        return self.action in ("resume", "start", "retry")


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


def _reset(run: PlannedRun) -> None:
    if run.action == "retry":
        if run_state(run.run_dir).has_result:
            clear_failure(run)
        clear_training_failure(training_dir(run.run_dir.parent, run.spec))
    elif run_state(run.run_dir).has_result:  # finished since it was planned
        return
    if (run.run_dir / STATUS_FILE).is_file():  # dispatched before: forget that attempt's job and error
        note = "retrying after a failure" if run.action == "retry" else None
        write_status(run.run_dir, "pending", error=None, slurm_job_id=None, note=note)
