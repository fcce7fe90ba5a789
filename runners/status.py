"""Where every run of a results tree stands (``memorybench status``), and which runs are still alive.

The run directories are the truth, read through :func:`memorybench.runners.schema.run_state` (the
report reads them through it too, so both always agree). The scheduler is only a hint, asked once
per call and never per run: ``squeue`` tells whether a SLURM job that a run recorded is still
queued or running, and ``sacct`` (often disabled) why it ended. A run whose files say
pending/running but whose process or job is gone is *lost*: shown as interrupted here, and
recorded as such by ``memorybench run``, which resumes it (only a run that raised is failed and
needs ``--retry-failed``). A run with a damaged ``result.json`` or ``status.json`` is *damaged*,
its reason naming the file."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memorybench.runners.schema import (
    CURVE_FILE,
    LOG_FILE,
    RESULT_FILE,
    SPEC_FILE,
    STATES,
    STATUS_FILE,
    TRAINING_DIR,
    TRAINING_FILE,
    read_json,
    run_directories,
    run_state,
)
from memorybench.runners.selection import Selection, check_choices, matches

if TYPE_CHECKING:
    from memorybench.runners.dispatch import PlannedRun

COUNTED = STATES
# squeue states of a job that still holds or waits for resources (everything else has ended).
SLURM_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT", "RESIZING"}
SLURM_WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "STOPPED", "RESV_DEL_HOLD"}
SCHEDULER_TIMEOUT_S = 30


@dataclass
class RunView:
    """One run as ``status`` shows it."""

    run_dir: Path
    state: str  # pending, running, done, failed, not_applicable
    reason: str
    attempts: int = 0
    job_id: str | None = None  # SLURM job id (array jobs: ARRAY_TASK)
    log: str | None = None
    lost: bool = False  # files say pending/running but the process or job is gone
    alive: bool = False  # a process or SLURM job is (or may be: unverifiable) working on it now
    step: int | None = None  # the training step reached (the last checkpoint's, while unfinished)
    steps: int | None = None  # the steps asked for
    resumed_from: int | None = None  # the step training resumed from after an interruption
    train_time_s: float | None = None  # training time summed over the attempts that recorded it

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def suite(self) -> str:
        return self.run_dir.parent.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "suite": self.suite,
            "state": self.state,
            "reason": self.reason,
            "attempts": self.attempts,
            "job_id": self.job_id,
            "log": self.log,
            "step": self.step,
            "steps": self.steps,
            "resumed_from": self.resumed_from,
            "train_time_s": self.train_time_s,
        }

    @property
    def progress(self) -> str:
        """``step 200/500``, ``resumed from step 200``, ``trained 12.3 s`` (what is known)."""
        parts = []
        if self.step is not None:
            parts.append(f"step {self.step}/{self.steps}" if self.steps else f"step {self.step}")
        if self.resumed_from:
            parts.append(f"resumed from step {self.resumed_from}")
        if self.train_time_s:
            parts.append(f"trained {self.train_time_s:.1f} s")
        return ", ".join(parts)


# ---------------------------------------------------------------------------- scheduler hints
def squeue_states(job_ids: Iterable[str]) -> dict[str, tuple[str, str]] | None:
    """``{job_id: (STATE, reason)}`` for the jobs squeue still knows; None when squeue cannot answer.

    One squeue call for all the array jobs involved (``-r`` lists array tasks one per line).
    """
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    if not arrays or shutil.which("squeue") is None:
        return {} if arrays else None
    command = ["squeue", "-h", "-r", "--states=all", "-o", "%i|%T|%r", f"--jobs={','.join(arrays)}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SCHEDULER_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        # A single id squeue has forgotten is an error; the answer is still "not queued".
        return {} if "Invalid job id" in done.stderr else None
    states = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    return states


def sacct_states(job_ids: Sequence[str]) -> dict[str, str]:
    """``{job_id: STATE}`` from accounting, or {} when sacct is missing or disabled (a hint only)."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    command = ["sacct", "-n", "-X", "-P", "-o", "JobID,State", f"--jobs={','.join(job_ids)}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SCHEDULER_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return {}
    if done.returncode != 0:
        return {}
    states = {}
    for line in done.stdout.splitlines():
        job_id, _, state = line.partition("|")
        if state:
            states[job_id.strip()] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    return states


# ---------------------------------------------------------------------------- progress
def existing_log(run_dir: Path, recorded: str | None) -> str | None:
    """The run's log as a path that exists here: the recorded one, else ``RUN_DIR/run.log`` (a tree
    copied or merged from another machine records that machine's paths), else None."""
    for candidate in (recorded, str(run_dir / LOG_FILE)):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def run_labels(run_dir: Path) -> dict[str, Any]:
    """suite, memory, dataset, benchmark and seed of a run, from spec.json (else result.json)."""
    source = read_json(run_dir / SPEC_FILE) or read_json(run_dir / RESULT_FILE) or {}
    return {
        "suite": source.get("suite") or run_dir.parent.name,
        "memory": source.get("memory") or source.get("model"),
        "dataset": source.get("dataset"),
        "benchmark": source.get("benchmark"),
        "seed": source.get("seed"),
    }


def training_run_dir(run_dir: Path, result: dict[str, Any]) -> Path | None:
    """The training run an evaluation run uses: named in its result, else the one of its suite whose
    recorded identity matches the run's spec (memory, dataset, seed, model and training settings)."""
    folder = run_dir.parent / TRAINING_DIR
    if "training_run" in result:  # None: a benchmark that trains nothing
        return folder / str(result["training_run"]) if result["training_run"] else None
    spec = read_json(run_dir / SPEC_FILE) or {}
    if not spec.get("memory_class") or not folder.is_dir():
        return None
    for candidate in sorted(folder.glob(f"{spec['memory_class']}-{spec.get('dataset')}-s{spec.get('seed')}-*")):
        identity = (read_json(candidate / TRAINING_FILE) or {}).get("identity") or {}
        train = identity.get("train_config") or {}
        if identity.get("memory_config") == spec.get("memory_config") and all(
            (spec.get("train_config") or {}).get(key) == value for key, value in train.items()
        ):
            return candidate
    return None


def _training_progress(view: RunView, result: dict[str, Any]) -> None:
    """Fill in the step reached, the step resumed from and the training time of ``view``."""
    spec = read_json(view.run_dir / SPEC_FILE) or {}
    wanted = (spec.get("train_config") or {}).get("steps")
    view.steps = int(wanted) if isinstance(wanted, int) else None
    start, trained = result.get("start_step"), result.get("train_steps")
    if isinstance(trained, int):
        view.step, view.steps = trained, trained
        if isinstance(start, int) and 0 < start < trained:
            view.resumed_from = start
    training = training_run_dir(view.run_dir, result)
    record = (read_json(training / TRAINING_FILE) or {}) if training else {}
    if view.step is None and training is not None:
        view.step = _last_step(training / CURVE_FILE)
        if view.step is None and isinstance(record.get("steps"), int):
            view.step = record["steps"]
    recorded_time = record.get("train_time_s", result.get("train_time_s"))
    view.train_time_s = float(recorded_time) if isinstance(recorded_time, (int, float)) else None
    if view.step is None and view.state not in ("done", "running", "interrupted"):
        view.steps = None  # nothing to say yet


def _last_step(curve: Path) -> int | None:
    """The step of the last row of a training curve (its last checkpoint), read from the file's end."""
    try:
        with open(curve, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 4096))
            lines = handle.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return None
    first = lines[-1].split(",")[0] if lines else ""
    return int(first) if first.isdigit() else None


# ---------------------------------------------------------------------------- probing
def _recorded(run_dir: Path) -> tuple[RunView, dict[str, Any]]:
    """The run as its files say (:func:`runners.schema.run_state`, the report's verdict too)."""
    decided = run_state(run_dir)
    status, result = decided.status, decided.result or {}
    view = RunView(
        run_dir=run_dir,
        state=decided.state,
        reason=decided.reason,
        attempts=int(result.get("attempts", status.get("attempts", 0)) or 0),
        job_id=status.get("slurm_job_id"),
        log=existing_log(run_dir, result.get("log") or status.get("log")),
    )
    _training_progress(view, result)
    view.lost = decided.state == "interrupted" and status.get("state") == "running"  # recorded running: record it
    view.alive = decided.state == "running" and not view.job_id  # a live process here, or one elsewhere
    return view, status


def probe(run_dirs: Iterable[Path]) -> list[RunView]:
    """The state of each run directory; SLURM jobs of runs that claim to be in flight are asked once."""
    views = [_recorded(Path(run_dir)) for run_dir in run_dirs]
    statuses = {view.run_dir: status for view, status in views}
    in_flight = [view for view, _ in views if view.state in ("pending", "running") and view.job_id]
    queue = squeue_states([view.job_id for view in in_flight if view.job_id]) if in_flight else None
    gone = []
    for view in in_flight:
        if queue is None:
            view.reason = f"slurm job {view.job_id} (squeue unavailable: state as last recorded)"
            view.alive = True  # cannot tell: never start it twice
            continue
        state, why = queue.get(view.job_id or "", ("", ""))
        if state in SLURM_RUNNING or state in SLURM_WAITING:
            view.state = "running" if state in SLURM_RUNNING else "pending"
            view.alive = True
            detail = f" ({why})" if why and why != "None" else ""
            view.reason = f"slurm job {view.job_id} {state}{detail}"
        else:
            gone.append((view, state))
    if gone:
        accounting = sacct_states([view.job_id for view, state in gone if not state and view.job_id])
        for view, state in gone:
            state = state or accounting.get(view.job_id or "", "")
            how = state if state else "no longer queued (no accounting record)"
            _mark_lost(view, f"slurm job {view.job_id} ended without a result: {how}")
            view.log = view.log or statuses[view.run_dir].get("slurm_stderr")
    return [view for view, _ in views]


def _mark_lost(view: RunView, reason: str) -> None:
    if (view.run_dir / RESULT_FILE).is_file():  # finished while we looked
        view.state, view.reason = _recorded(view.run_dir)[0].state, ""
        return
    view.state, view.reason, view.lost = "interrupted", f"{reason}; a plain rerun resumes it", True


def record_lost(views: Iterable[RunView]) -> int:
    """Record every lost run as interrupted (see :func:`runners.execute.record_interrupted`)."""
    from memorybench.runners.execute import record_interrupted

    recorded = 0
    for view in views:
        if view.lost:
            record_interrupted(view.run_dir, view.reason.removesuffix("; a plain rerun resumes it"), view.log)
            view.lost = False
            recorded += 1
    return recorded


def settle(planned: Sequence[PlannedRun], retry_failed: bool = False, record: bool = True) -> list[PlannedRun]:
    """Before dispatch: runs still queued or running elsewhere become ``active`` (never started
    twice); runs whose process or job died without a result are *interrupted* — recorded as such
    unless ``record`` is False (``--dry-run``) — and resumed (no ``--retry-failed`` needed: only
    runs that raised are failed)."""
    from memorybench.runners.dispatch import classify

    candidates = [run.run_dir for run in planned if run.will_run and (run.run_dir / STATUS_FILE).is_file()]
    views = {view.run_dir: view for view in probe(candidates)}
    if record:
        record_lost(views.values())
    settled = []
    for run in planned:
        view = views.get(run.run_dir)
        if view is None:
            settled.append(run)
        elif view.alive:
            settled.append(replace(run, action="active"))
        else:
            settled.append(replace(run, action=classify(run.spec, run.run_dir, retry_failed)))
    return settled


# ---------------------------------------------------------------------------- reporting
def counts(views: Iterable[RunView]) -> dict[str, int]:
    tally = Counter(view.state for view in views)
    return {state: tally.get(state, 0) for state in COUNTED}


def status_json(results_dir: Path, views: Sequence[RunView]) -> dict[str, Any]:
    """The ``status --json`` object: counts per state at the top level and one entry per run."""
    return {"results_dir": str(results_dir), "total": len(views), **counts(views), "runs": [v.to_dict() for v in views]}


def summary_line(views: Sequence[RunView]) -> str:
    tally = counts(views)
    parts = [f"{state.replace('_', ' ')} {n}" for state, n in tally.items() if n or state in ("done", "failed")]
    return f"{len(views)} runs: " + ", ".join(parts)


def status_table(views: Sequence[RunView], width: int = 100) -> str:
    """A fixed-width table: state, run (suite/run_id when several suites), attempts, job, progress
    (step reached, step resumed from, training time), reason (with the log of failed/interrupted runs)."""
    several = len({view.suite for view in views}) > 1
    names = [f"{v.suite}/{v.run_id}" if several else v.run_id for v in views]
    name_width = max([len(name) for name in names] + [3])
    job_width = max([len(v.job_id or "") for v in views] + [3])
    progress_width = max([len(v.progress) for v in views] + [8])
    lines = [
        f"{'state':<14} {'run':<{name_width}} {'try':>3} {'job':<{job_width}} {'progress':<{progress_width}} reason"
    ]
    for view, name in zip(views, names):
        reason = view.reason
        if view.state in ("failed", "interrupted") and view.log:
            reason = f"{reason} (log: {view.log})"
        lines.append(
            f"{view.state:<14} {name:<{name_width}} {view.attempts:>3} {view.job_id or '-':<{job_width}} "
            f"{view.progress or '-':<{progress_width}} {reason}"
        )
    return "\n".join(line.rstrip() for line in lines)


def collect(results_dir: str | Path, selection: Selection | None = None) -> list[RunView]:
    """Every run below ``results_dir`` (a results root or one suite's directory) that ``selection``
    (``--only``) picks, probed; a selected label the tree lacks is a one-line error."""
    run_dirs = run_directories(results_dir)
    if selection:
        labels = {run_dir: run_labels(run_dir) for run_dir in run_dirs}
        available = {key: [label[key] for label in labels.values()] for key in selection}
        check_choices(selection, available, str(results_dir))
        run_dirs = [run_dir for run_dir in run_dirs if matches(selection, labels[run_dir])]
    return probe(run_dirs)


__all__ = [
    "RunView",
    "collect",
    "counts",
    "probe",
    "record_lost",
    "settle",
    "status_json",
    "status_table",
    "summary_line",
]
