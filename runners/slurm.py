"""The SLURM backend: a suite becomes job arrays submitted through submitit (no Hydra, no blocking).

Each array task receives a :class:`SlurmRun` — the run's spec, its directory and the plugin modules
to import, nothing else — and calls :func:`runners.execute.execute_run`, exactly like the other
backends. :class:`SlurmRun` implements submitit's checkpoint protocol: when SLURM signals a job
before its time limit (or submitit is told it is preempted), ``checkpoint()`` hands back a fresh
copy of itself, submitit requeues the job (at most ``max_requeues`` times) and the next attempt
resumes training from the run's last ``checkpoint.pt``. A job killed outright (``scontrol
requeue``, node failure) resumes the same way when SLURM requeues it.

Resources come from the suite's ``resources.slurm`` section with command-line flags on top. Logs go
to ``<suite_dir>/_slurm_logs/`` (submitit's ``<job>_<task>_log.out``/``.err``); each run's
``status.json`` records its job id and log paths. Arrays are cut into chunks below the cluster's
``MaxArraySize``, and the array-parallelism budget is shared between the chunks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from memorybench.benchmarks.artifacts import read_json
from memorybench.memories.configuration import ConfigError, from_mapping, require
from memorybench.runners.dispatch import PlannedRun
from memorybench.runners.results import RESULT_FILE, STATUS_FILE, now, run_lock, write_status
from memorybench.runners.suite import RunSpec

LOG_DIR = "_slurm_logs"
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's default MaxArraySize (indices 0..1000)


class SubmissionError(RuntimeError):
    """sbatch failed after part of the suite was submitted (re-running submits the rest)."""


@dataclass(frozen=True, kw_only=True)
class SlurmResources:
    """``resources.slurm`` in a suite file (every job of the suite gets the same request)."""

    partition: str | None = None  # None: the cluster's default partition
    time_min: int = 60  # wall-clock limit per job, minutes (SLURM signals the job 90 s before)
    mem_gb: float | None = None  # memory per job (None: the cluster's default)
    cpus_per_task: int | None = None  # CPUs per job (None: the cluster's default, usually 1)
    gpus_per_job: int = 0  # GPUs per job (sbatch --gpus-per-node)
    array_parallelism: int = 256  # most tasks of the suite running at once (split between array chunks)
    max_requeues: int = 3  # times a timed-out or preempted job is requeued by submitit
    max_array_size: int = 0  # tasks per array (0: the cluster's MaxArraySize)
    job_name: str = ""  # default: memorybench-<suite>
    setup: list[str] = field(default_factory=list)  # shell lines run before the job (module load ..., source venv)
    additional: dict[str, Any] = field(default_factory=dict)  # any other sbatch option: {account: x, qos: y}

    def validate(self) -> None:
        require(self.partition is None or bool(self.partition.strip()), "partition", "must not be empty")
        require(self.time_min > 0, "time_min", f"must be a positive number of minutes, got {self.time_min}")
        require(self.mem_gb is None or self.mem_gb > 0, "mem_gb", f"must be positive, got {self.mem_gb}")
        require(
            self.cpus_per_task is None or self.cpus_per_task > 0,
            "cpus_per_task",
            f"must be positive, got {self.cpus_per_task}",
        )
        require(self.gpus_per_job >= 0, "gpus_per_job", f"must be >= 0, got {self.gpus_per_job}")
        require(self.array_parallelism > 0, "array_parallelism", f"must be positive, got {self.array_parallelism}")
        require(self.max_requeues >= 0, "max_requeues", f"must be >= 0, got {self.max_requeues}")
        require(self.max_array_size >= 0, "max_array_size", f"must be >= 0, got {self.max_array_size}")
        for key in self.additional:
            require(
                bool(re.fullmatch(r"[a-z][a-z0-9_-]*", str(key))), "additional", f"{key!r} is not an sbatch option name"
            )


# ---------------------------------------------------------------------------- flags
def parse_time_min(text: str) -> int:
    """SLURM time formats -> whole minutes: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise ConfigError(f"--time {text}: expected minutes or a SLURM time such as 90, 1:30:00 or 2-00:00:00")
    days, first, second, third = match.groups()
    if days is not None:  # D-H[:M[:S]]
        seconds = int(days) * 86400 + int(first) * 3600 + int(second or 0) * 60 + int(third or 0)
    elif third is not None:  # H:M:S
        seconds = int(first) * 3600 + int(second) * 60 + int(third)
    else:  # M[:S]
        seconds = int(first) * 60 + int(second or 0)
    if seconds <= 0:
        raise ConfigError(f"--time {text}: must be positive")
    return -(-seconds // 60)


def parse_mem_gb(text: str) -> float:
    """``16G``/``16GB``/``500M``/``1T`` -> gigabytes; a bare number is refused (sbatch reads it as MB)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT])B?", text.strip(), flags=re.IGNORECASE)
    if not match:
        raise ConfigError(f"--mem {text}: expected a size with a unit, such as 16G or 500M")
    value = float(match.group(1)) * {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}[match.group(2).upper()]
    if value <= 0:
        raise ConfigError(f"--mem {text}: must be positive")
    return value


def _positive_int(flag: str, text: str, minimum: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"{flag} {text}: expected an integer >= {minimum}")
    return value


def slurm_resources(
    section: Mapping[str, Any] | None, flags: Mapping[str, str | None], sbatch: Sequence[str] = ()
) -> SlurmResources:
    """The suite's ``resources.slurm`` with command-line flags on top (all validated, nothing run).

    ``flags`` maps resource names to the raw flag text (None: not given); ``sbatch`` are extra
    ``KEY=VALUE`` sbatch options merged into ``additional``.
    """
    merged = dict(section or {})
    parsers: dict[str, Callable[[str], Any]] = {
        "partition": str,
        "time_min": parse_time_min,
        "mem_gb": parse_mem_gb,
        "cpus_per_task": lambda text: _positive_int("--cpus-per-task", text),
        "gpus_per_job": lambda text: _positive_int("--gpus-per-job", text, minimum=0),
        "array_parallelism": lambda text: _positive_int("--array-parallelism", text),
        "max_requeues": lambda text: _positive_int("--max-requeues", text, minimum=0),
    }
    for key, text in flags.items():
        if text is not None:
            merged[key] = parsers[key](text)
    if sbatch:
        additional = dict(merged.get("additional") or {})
        for option in sbatch:
            key, sep, value = option.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--sbatch {option}: expected KEY=VALUE, such as account=myproject")
            additional[key.strip().lstrip("-").replace("-", "_")] = value
        merged["additional"] = additional
    return from_mapping(SlurmResources, merged, "resources.slurm")


# ---------------------------------------------------------------------------- the cluster
def check_slurm(resources: SlurmResources) -> None:
    """One-line errors, before anything is submitted: no sbatch, or a partition the cluster lacks."""
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if missing:
        raise ConfigError(
            f"--runner slurm: {missing[0]} not found on PATH; run on a SLURM login node "
            "(or start a one-node cluster here: sudo bash runners/local_slurm.sh start)"
        )
    if resources.partition:
        partitions = _partitions()
        if partitions is not None and resources.partition not in partitions:
            raise ConfigError(
                f"--partition {resources.partition}: no such partition (available: {', '.join(sorted(partitions))})"
            )


def _partitions() -> set[str] | None:
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    names = {line.strip() for line in done.stdout.splitlines() if line.strip()}
    return names if done.returncode == 0 and names else None


def cluster_max_array_size() -> int:
    """The cluster's MaxArraySize (array indices run 0..MaxArraySize-1); SLURM's default if unknown."""
    try:
        done = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return DEFAULT_MAX_ARRAY_SIZE
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", done.stdout, flags=re.MULTILINE)
    return int(match.group(1)) if match and int(match.group(1)) > 0 else DEFAULT_MAX_ARRAY_SIZE


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """``items`` cut into consecutive pieces of at most ``size``."""
    return [items[start : start + size] for start in range(0, len(items), max(1, size))]


def sbatch_parameters(resources: SlurmResources, suite_name: str, parallelism: int | None = None) -> dict[str, Any]:
    """What :meth:`submitit.SlurmExecutor.update_parameters` receives."""
    parameters: dict[str, Any] = {
        "job_name": resources.job_name or f"memorybench-{suite_name}",
        "time": resources.time_min,
        "array_parallelism": parallelism or resources.array_parallelism,
        # SLURM sends USR2 this long before the time limit: submitit checkpoints and requeues.
        "signal_delay_s": min(90, max(10, resources.time_min * 60 // 4)),
    }
    if resources.partition:
        parameters["partition"] = resources.partition
    if resources.mem_gb is not None:
        mem = resources.mem_gb
        parameters["mem"] = f"{int(mem)}GB" if mem == int(mem) else f"{int(mem * 1024)}MB"
    if resources.cpus_per_task is not None:
        parameters["cpus_per_task"] = resources.cpus_per_task
    if resources.gpus_per_job:
        parameters["gpus_per_node"] = resources.gpus_per_job
    if resources.setup:
        parameters["setup"] = list(resources.setup)
    if resources.additional:
        # true or an empty value is a bare flag (hold: true -> --hold); false leaves the option out
        parameters["additional_parameters"] = {
            key: True if value is True or value == "" else str(value)
            for key, value in resources.additional.items()
            if value is not False and value is not None
        }
    return parameters


def describe(resources: SlurmResources, runs: int, max_array_size: int = DEFAULT_MAX_ARRAY_SIZE) -> str:
    """One line for the plan: what each job asks for and how the suite is cut into arrays."""
    size = resources.max_array_size or max_array_size
    arrays = max(1, -(-runs // size))
    parts = [
        f"partition {resources.partition or '(default)'}",
        f"{resources.time_min} min",
        f"{resources.mem_gb:g} GB" if resources.mem_gb else "default memory",
        f"{resources.cpus_per_task or 'default'} CPUs",
        f"{resources.gpus_per_job} GPUs",
        f"at most {resources.array_parallelism} at once",
        f"{resources.max_requeues} requeues",
    ]
    extra = ", ".join(
        f"--{k}" + ("" if v is True else f"={v}")
        for k, v in sbatch_parameters(resources, "").get("additional_parameters", {}).items()
    )
    return f"slurm: {runs} runs in {arrays} job array(s): " + ", ".join(parts) + (f", {extra}" if extra else "")


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
        from memorybench.runners.results import RunBusyError

        try:
            with run_lock(run_dir):  # another job or process running it now: leave it alone
                _record_job(run_dir)
        except RunBusyError:
            return {"run_id": self.spec.run_id, "status": "running elsewhere", "skipped": True}
        _limit_threads()
        try:
            result = execute_run(self.spec, run_dir, progress=False)
        except RunBusyError:
            return {"run_id": self.spec.run_id, "status": "running elsewhere", "skipped": True}
        return {"run_id": self.spec.run_id, "status": result["status"], "error": result.get("error")}

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Preempted or timing out: requeue a fresh copy; training resumes from the run's checkpoint.pt."""
        return submitit.helpers.DelayedSubmission(SlurmRun(self.spec, self.run_dir, self.includes))


def _limit_threads() -> None:
    """Use the CPUs the job asked for, not every core of a shared node (unless OMP_NUM_THREADS says)."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if cpus.isdigit() and int(cpus) > 0 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(int(cpus))


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
    size = resources.max_array_size or cluster_max_array_size()
    pieces = chunks(list(runs), size)
    parallelism = max(1, resources.array_parallelism // max(1, len(pieces)))
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


__all__ = [
    "LOG_DIR",
    "SlurmResources",
    "SlurmRun",
    "Submission",
    "SubmissionError",
    "check_slurm",
    "chunks",
    "describe",
    "parse_mem_gb",
    "parse_time_min",
    "sbatch_parameters",
    "slurm_resources",
    "submit",
    "wait",
]
