"""The SLURM backend: a suite becomes job arrays submitted through submitit (no Hydra, no blocking).

Resources come from the suite's ``resources.slurm`` section with command-line flags on top. Logs go
to ``<suite_dir>/_slurm_logs/`` (submitit's ``<job>_<task>_log.out``/``.err``); each run's
``status.json`` records its job id and log paths. Arrays are cut into chunks below the cluster's
``MaxArraySize``, and the array-parallelism budget is shared between the chunks. The job callable,
submission and waiting live in :mod:`memorybench.runners.backends.slurm_jobs`; ``--dry-run``
describes the request without them (and without sbatch).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from memorybench.memories.configuration import ConfigError, from_mapping, require
from memorybench.runners.backends import register_backend
from memorybench.runners.backends.base import Backend, Plan, finish

LOG_DIR = "_slurm_logs"
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's default MaxArraySize (indices 0..1000)


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


def slurm_settings(
    section: Mapping[str, Any] | None, flags: Mapping[str, str | None], sbatch: Sequence[str] = ()
) -> dict[str, Any]:
    """The suite's ``resources.slurm`` with command-line flags on top (flags parsed, not yet validated).

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
    return merged


def slurm_resources(
    section: Mapping[str, Any] | None, flags: Mapping[str, str | None], sbatch: Sequence[str] = ()
) -> SlurmResources:
    """:func:`slurm_settings` validated (nothing is run)."""
    return from_mapping(SlurmResources, slurm_settings(section, flags, sbatch), "resources.slurm")


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


def array_plan(resources: SlurmResources, runs: Sequence[Any], max_array_size: int) -> tuple[list[Sequence[Any]], int]:
    """``runs`` cut into arrays below the cluster's MaxArraySize, and the parallelism each array
    gets (the suite's ``array_parallelism`` shared between them)."""
    pieces = chunks(list(runs), resources.max_array_size or max_array_size)
    return pieces, max(1, resources.array_parallelism // max(1, len(pieces)))


def summary_line(resources: SlurmResources, runs: int, arrays: int) -> str:
    """One line for the plan: what each job asks for and how many arrays the suite becomes."""
    parts = [
        f"partition {resources.partition or '(default)'}",
        f"{resources.time_min} min",
        f"{resources.mem_gb:g} GB" if resources.mem_gb else "default memory",
        f"{resources.cpus_per_task or 'default'} CPUs",
        f"{resources.gpus_per_job} GPUs",
        f"at most {resources.array_parallelism} at once",
        f"{resources.max_requeues} requeues",
    ]
    return f"slurm: {runs} runs in {max(1, arrays)} job array(s): " + ", ".join(parts)


SBATCH_FLAGS = {"job_name": "job-name", "partition": "partition", "time": "time", "mem": "mem"}
SBATCH_FLAGS |= {"cpus_per_task": "cpus-per-task", "gpus_per_node": "gpus-per-node"}


def sbatch_request(
    resources: SlurmResources, suite_name: str, runs: int, max_array_size: int = DEFAULT_MAX_ARRAY_SIZE
) -> list[str]:
    """What ``--dry-run`` prints: the summary line, then each array's sbatch options as submitit
    will pass them (nothing is run: no sbatch needed)."""
    pieces, parallelism = array_plan(resources, range(runs), max_array_size)
    lines = [summary_line(resources, runs, len(pieces))]
    parameters = sbatch_parameters(resources, suite_name, parallelism)
    options = [f"--{flag}={parameters[key]}" for key, flag in SBATCH_FLAGS.items() if key in parameters]
    options.append(f"--signal=USR2@{parameters['signal_delay_s']}")
    for key, value in parameters.get("additional_parameters", {}).items():
        options.append(f"--{key}" + ("" if value is True else f"={value}"))
    first = 0
    for number, piece in enumerate(pieces, 1):
        array = f"--array=0-{len(piece) - 1}%{parallelism}"
        lines.append(f"  array {number} (runs {first + 1}-{first + len(piece)}): sbatch {' '.join([*options, array])}")
        first += len(piece)
    for line in resources.setup:
        lines.append(f"  setup: {line}")
    lines.append(
        "  dependencies: none; evaluations of one model share its training run through a file lock, "
        "so jobs of one array never wait on sbatch --dependency"
    )
    lines.append(f"  retries: up to {resources.max_requeues} requeues per job on preemption or timeout")
    return lines


# ---------------------------------------------------------------------------- the backend
FLAGS = {
    "partition": "--partition",
    "time_min": "--time",
    "mem_gb": "--mem",
    "cpus_per_task": "--cpus-per-task",
    "gpus_per_job": "--gpus-per-job",
    "array_parallelism": "--array-parallelism",
    "max_requeues": "--max-requeues",
}


@register_backend("slurm")
class SlurmBackend(Backend):
    """Job arrays on a SLURM cluster through submitit; preempted or timed-out jobs requeue and resume."""

    config_class = SlurmResources
    options: ClassVar[dict[str, str]] = {**FLAGS, "sbatch": "--sbatch", "wait": "--wait"}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("--runner slurm (default: resources.slurm in the suite)")
        group.add_argument("--partition", metavar="P", help="SLURM partition")
        group.add_argument(
            "--time", dest="time_min", metavar="T", help="time limit per job: minutes, H:MM:SS or D-HH:MM:SS"
        )
        group.add_argument("--mem", dest="mem_gb", metavar="SIZE", help="memory per job, e.g. 16G or 500M")
        group.add_argument("--cpus-per-task", metavar="N", help="CPUs per job")
        group.add_argument("--gpus-per-job", metavar="N", help="GPUs per job")
        group.add_argument(
            "--array-parallelism", metavar="N", help="most jobs of the suite running at once (default 256)"
        )
        group.add_argument("--max-requeues", metavar="N", help="requeues of a preempted or timed-out job (default 3)")
        group.add_argument(
            "--sbatch",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="any other sbatch option, e.g. account=proj",
        )
        group.add_argument(
            "--wait", action="store_true", help="block until every run has finished, with a live summary"
        )
        group.add_argument("--poll", type=float, default=15.0, metavar="SECONDS", help=argparse.SUPPRESS)

    @classmethod
    def settings(cls, section: Mapping[str, Any] | None, args: argparse.Namespace | None) -> dict[str, Any]:
        flags = {key: getattr(args, key, None) for key in FLAGS}
        return slurm_settings(section, flags, getattr(args, "sbatch", None) or ())

    def check(self) -> None:
        check_slurm(self.resources)

    def describe(self, plan: Plan) -> list[str]:
        return sbatch_request(self.resources, plan.suite_name, plan.will_run, cluster_max_array_size())

    def execute(self, plan: Plan, options: argparse.Namespace) -> int:
        from memorybench.runners.backends.slurm_jobs import SubmissionError, submit, wait

        if plan.todo:
            try:
                submission = submit(plan.todo, self.resources, plan.suite_dir, plan.suite_name, plan.includes)
            except SubmissionError as error:
                print(f"memorybench: error: {error}", file=sys.stderr)
                return 1
            print(f"slurm logs: {submission.log_dir}")
        else:
            print("nothing to submit")
        in_flight = [run for run in plan.runs if run.will_run or run.action == "active"]
        if not getattr(options, "wait", False):
            if in_flight:
                print(f"follow with: memorybench status {plan.suite_dir}   (or re-run with --wait)")
                return 0
            return finish(plan)
        try:
            wait([run.run_dir for run in in_flight], poll_s=getattr(options, "poll", 15.0))
        except KeyboardInterrupt:
            print(f"\nstopped waiting; the jobs keep running: memorybench status {plan.suite_dir}", file=sys.stderr)
            return 130
        return finish(plan)


__all__ = [
    "LOG_DIR",
    "SlurmBackend",
    "SlurmResources",
    "check_slurm",
    "chunks",
    "parse_mem_gb",
    "parse_time_min",
    "sbatch_parameters",
    "sbatch_request",
    "slurm_resources",
    "slurm_settings",
]
