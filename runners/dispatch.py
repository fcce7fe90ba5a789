"""Deciding what a (re-)run of a suite has to do, and the inline backend.

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
from memorybench.runners.execute import execute_run, prepare_run_dir, treat_sigterm_as_interrupt
from memorybench.runners.results import (
    RESULT_FILE,
    STATUS_FILE,
    RunBusyError,
    read_result,
    result_record,
    run_lock,
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
    result, problem = result_record(run_dir)
    if problem:  # a damaged result is kept (moved aside) and replaced only when asked to
        return "retry" if retry_failed else "skip_failed"
    if result is not None:
        if result.get("status") == "failed":
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
        if result_record(run.run_dir)[0] is not None or result_record(run.run_dir)[1]:
            clear_failure(run)
        clear_training_failure(training_dir(run.run_dir.parent, run.spec))
    elif read_result(run.run_dir) is not None:  # finished since it was planned
        return
    if (run.run_dir / STATUS_FILE).is_file():  # dispatched before: forget that attempt's job and error
        note = "retrying after a failure" if run.action == "retry" else None
        write_status(run.run_dir, "pending", error=None, slurm_job_id=None, note=note)


def run_inline(runs: list[PlannedRun], progress: bool | None = None) -> None:
    """The inline backend: every run in this process, one after another.

    Ctrl-C or SIGTERM leaves the run in flight resumable (pending), not failed. A run another
    process is running (its lock is held) is skipped.
    """
    treat_sigterm_as_interrupt()
    for index, run in enumerate(runs, 1):
        print(f"[{index}/{len(runs)}] {run.action} {run.spec.run_id}", flush=True)
        try:
            result = execute_run(run.spec, run.run_dir, progress=progress)
        except RunBusyError:
            print(f"[{index}/{len(runs)}] skipped {run.spec.run_id}: another process is running it", flush=True)
            continue
        detail = result.get("error") or result.get("reason") or ""
        print(
            f"[{index}/{len(runs)}] {result['status']} {run.spec.run_id} ({result['wall_time_s']:.1f} s) {detail}".rstrip(),
            flush=True,
        )
