"""SLURM jobs: the callable each array task runs, submitting a suite's runs as arrays, and waiting.

Each array task receives a :class:`SlurmRun` — the run's spec, its directory and the plugin modules
to import, nothing else — and calls :func:`memorybench.runners.execute.execute_run`, exactly like
the other backends. :class:`SlurmRun` implements submitit's checkpoint protocol: when SLURM signals
a job before its time limit (or submitit is told it is preempted), ``checkpoint()`` hands back a
fresh copy of itself, submitit requeues the job (at most ``max_requeues`` times) and the next
attempt resumes training from the run's last ``checkpoint.pt``. A job killed outright (``scontrol
requeue``, node failure) resumes the same way when SLURM requeues it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from memorybench.memories.configuration import ConfigError
from memorybench.runners.backends.slurm import (
    LOG_DIR,
    SlurmResources,
    array_plan,
    cluster_max_array_size,
    sbatch_parameters,
)
from memorybench.runners.dispatch import PlannedRun
from memorybench.runners.schema import RESULT_FILE, STATUS_FILE, now, read_json, run_lock, write_status
from memorybench.runners.suite import RunSpec


class SubmissionError(RuntimeError):
    """sbatch failed after part of the suite was submitted (re-running submits the rest)."""


# ---------------------------------------------------------------------------- the job
class SlurmRun(submitit.helpers.Checkpointable):
    """The callable a SLURM job runs: one run spec, its directory, the plugins to import. Nothing else."""

    def __init__(self, spec: RunSpec, run_dir: str, includes: Sequence[str] = ()):
        self.spec = spec
        self.run_dir = str(run_dir)
        self.includes = tuple(includes)

    def __call__(self) -> dict[str, Any]:
        from memorybench.memories.registry import import_user_module
        from memorybench.runners.execute import execute_run

        for module in self.includes:
            import_user_module(module)
        run_dir = Path(self.run_dir)
        existing = read_json(run_dir / RESULT_FILE)
        if existing is not None:  # finished by an earlier attempt: never run twice
            return {"run_id": self.spec.run_id, "status": existing.get("status"), "skipped": True}
        from memorybench.runners.schema import RunBusyError

        try:
            with run_lock(run_dir):  # another job or process running it now: leave it alone
                _record_job(run_dir)
        except RunBusyError:
            return {"run_id": self.spec.run_id, "status": "running elsewhere", "skipped": True}
        try:  # threads: the job's CPUs (SLURM_CPUS_PER_TASK), by runners/threads.py
            result = execute_run(self.spec, run_dir, progress=False)
        except RunBusyError:
            return {"run_id": self.spec.run_id, "status": "running elsewhere", "skipped": True}
        return {"run_id": self.spec.run_id, "status": result["status"], "error": result.get("error")}

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Preempted or timing out: requeue a fresh copy; training resumes from the run's checkpoint.pt."""
        return submitit.helpers.DelayedSubmission(SlurmRun(self.spec, self.run_dir, self.includes))


def _record_job(run_dir: Path) -> None:
    """Note the job id and log paths in status.json (the job knows them for sure; the submitter may not)."""
    env = submitit.JobEnvironment()
    state = (read_json(run_dir / STATUS_FILE) or {}).get("state", "pending")
    write_status(
        run_dir,
        state,
        slurm_job_id=env.job_id,
        slurm_stdout=str(env.paths.stdout),
        slurm_stderr=str(env.paths.stderr),
        slurm_restarts=int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0),
    )


# ---------------------------------------------------------------------------- submission
@dataclass
class Submission:
    job_ids: list[str] = field(default_factory=list)  # one per run, in order
    arrays: list[str] = field(default_factory=list)  # the array (or single) job ids
    log_dir: Path | None = None


def submit(
    runs: Sequence[PlannedRun],
    resources: SlurmResources,
    suite_dir: Path,
    suite_name: str,
    includes: Sequence[str] = (),
    echo: Callable[[str], None] = print,
) -> Submission:
    """Submit ``runs`` as job arrays; each run's status.json gets its job id before this returns."""
    log_dir = suite_dir / LOG_DIR
    pieces, parallelism = array_plan(resources, runs, cluster_max_array_size())
    executor = submitit.SlurmExecutor(folder=log_dir, max_num_timeout=resources.max_requeues)
    executor.update_parameters(**sbatch_parameters(resources, suite_name, parallelism))
    includes = tuple(str(Path(m).resolve()) if Path(m).suffix == ".py" or Path(m).exists() else m for m in includes)
    submission = Submission(log_dir=log_dir)
    for piece in pieces:
        callables = [SlurmRun(run.spec, str(run.run_dir), includes) for run in piece]
        try:
            jobs = executor.submit_array(callables)
        except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError, OSError) as error:
            message = (str(error).strip().splitlines() or [type(error).__name__])[-1]
            if not submission.job_ids:
                raise ConfigError(f"sbatch refused the job array: {message}") from None
            raise SubmissionError(
                f"sbatch failed after {len(submission.job_ids)} of {len(runs)} runs were submitted ({message}); "
                "run the same command again to submit the rest"
            ) from None
        for run, job in zip(piece, jobs):
            write_status(
                run.run_dir,
                "pending",
                slurm_job_id=job.job_id,
                slurm_stdout=str(job.paths.stdout),
                slurm_stderr=str(job.paths.stderr),
                submitted=now(),
                note="queued on SLURM",
                error=None,
            )
            submission.job_ids.append(job.job_id)
        submission.arrays.append(jobs[0].job_id.split("_")[0])
        echo(f"submitted {len(piece)} runs as job {submission.arrays[-1]} (at most {parallelism} at once)")
    return submission


def wait(run_dirs: Sequence[Path], poll_s: float = 15.0, echo: Callable[[str], None] = print) -> list[Any]:
    """Block until none of ``run_dirs`` is pending or running, printing a summary whenever it changes.

    Runs whose job vanished without a result (OOM kill, node failure, cancelled) are recorded as
    failed on the way, with what squeue/sacct said about the job.
    """
    from memorybench.runners.status import probe, record_lost, summary_line

    live = sys.stdout.isatty()
    last = ""
    while True:
        views = probe(run_dirs)
        record_lost(views)
        line = summary_line(views)
        running = [view for view in views if view.state in ("pending", "running")]
        if line != last or live:
            stamp = time.strftime("%H:%M:%S")
            if live:
                print(f"\r[{stamp}] {line}\033[K", end="" if running else "\n", flush=True)
            else:
                echo(f"[{stamp}] {line}")
            last = line
        if not running:
            return views
        time.sleep(poll_s)
