"""The local backend: a pool of N worker processes on one machine, optionally one job per GPU.

Each run executes in its own process (``python -m memorybench.runners.worker RUN_DIR``), so a crash, an OOM
kill or ``kill -9`` loses that run only: the pool records it as interrupted (``status.json``
naming the signal and the log; a plain rerun resumes it) and starts the next one. At most N runs are
in flight; the rest wait in the parent, which hands a run to a worker slot only when the slot is
free. With ``--gpus 0,1`` each slot owns one GPU and its processes see only that device through
``CUDA_VISIBLE_DEVICES`` (submitit's LocalExecutor would start every job at once on GPU 0).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from memorybench.memories.configuration import ConfigError, require
from memorybench.runners.backends import register_backend
from memorybench.runners.backends.base import Backend, Plan, finish
from memorybench.runners.schema import LOG_FILE, RESULT_FILE, STATUS_FILE, read_json, write_status
from memorybench.runners.threads import available_cores
from memorybench.runners.worker import EXIT_BUSY

if TYPE_CHECKING:
    from memorybench.runners.dispatch import PlannedRun

POLL_S = 0.1
STOP_GRACE_S = 10.0


@dataclass(frozen=True, kw_only=True)
class LocalResources:
    """``resources.local`` in a suite file; ``--workers``/``--gpus`` override it."""

    workers: int = 0  # worker processes (0: one per GPU with gpus, else 1)
    gpus: list[int] = field(default_factory=list)  # CUDA device indices, one job per GPU at a time

    def validate(self) -> None:
        require(self.workers >= 0, "workers", f"must be a positive integer, got {self.workers}")
        require(all(g >= 0 for g in self.gpus), "gpus", f"device indices must be >= 0, got {self.gpus}")
        require(len(set(self.gpus)) == len(self.gpus), "gpus", f"a device is listed twice: {self.gpus}")


def parse_gpus(text: str) -> list[int]:
    """``--gpus 0,1,3`` -> [0, 1, 3] (one-line error otherwise)."""
    try:
        devices = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--gpus {text}: expected comma-separated device indices such as 0,1") from None
    if not devices or any(d < 0 for d in devices):
        raise ConfigError(f"--gpus {text}: expected comma-separated device indices such as 0,1")
    if len(set(devices)) != len(devices):
        raise ConfigError(f"--gpus {text}: a device is listed twice")
    return devices


def parse_workers(text: str) -> int:
    try:
        workers = int(text)
    except ValueError:
        workers = 0
    if workers < 1:
        raise ConfigError(f"--workers {text}: expected a positive integer")
    return workers


def local_settings(section: Mapping[str, Any] | None, workers: str | None, gpus: str | None) -> dict[str, Any]:
    """The suite's ``resources.local`` with command-line flags on top (flags parsed, not yet validated)."""
    merged = dict(section or {})
    given = merged.get("workers")
    if isinstance(given, int) and not isinstance(given, bool) and given < 1:  # as --workers: 0 is no worker
        raise ConfigError(f"resources.local.workers: must be a positive integer, got {given}")
    if workers is not None:
        merged["workers"] = parse_workers(workers)
    if gpus is not None:
        merged["gpus"] = parse_gpus(gpus)
    return merged


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_slots(gpus: Sequence[int], workers: int, device_count: int, visible: str | None = None) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` for each worker slot (None: inherit the environment; no GPUs asked).

    ``gpus`` are indices as torch numbers the devices this process sees (``device_count`` of
    them); when ``visible`` (the parent's own ``CUDA_VISIBLE_DEVICES``) narrows or renumbers the
    devices, each slot gets the underlying id, so ``--gpus 0`` under ``CUDA_VISIBLE_DEVICES=2,3``
    pins device 2. One slot per GPU: more workers than GPUs is an error.
    """
    if not gpus:
        return [None] * max(workers, 1)
    missing = [g for g in gpus if g >= device_count]
    if missing:
        have = f"{device_count} ({', '.join(map(str, range(device_count)))})" if device_count else "none"
        raise ConfigError(
            f"--gpus {','.join(map(str, gpus))}: no CUDA device {missing[0]} on this machine (devices: {have})"
        )
    if workers > len(gpus):
        raise ConfigError(
            f"--workers {workers}: more workers than --gpus devices ({len(gpus)}); one job per GPU at a time"
        )
    chosen = list(gpus)[: workers or len(gpus)]
    ids = [part.strip() for part in visible.split(",")] if visible else None
    return [ids[g] if ids is not None and g < len(ids) else str(g) for g in chosen]


def worker_command(run: PlannedRun, includes: Sequence[str] = ()) -> list[str]:
    """The command a worker slot runs for ``run`` (one fresh Python process per run).

    ``-P`` keeps the current directory off ``sys.path``: a ``tqdm.py`` or ``torch.py`` lying in the
    user's directory is never imported by a worker (``-m`` would put it first). The worker keeps
    the user's directory as its own, so relative data roots still resolve."""
    if sys.version_info >= (3, 11):
        command = [sys.executable, "-P", "-m", "memorybench.runners.worker", str(run.run_dir)]
    else:  # no -P: drop the '' entry -c puts first, then run the module
        start = (
            "import runpy, sys; sys.path.pop(0); runpy.run_module('memorybench.runners.worker', run_name='__main__')"
        )
        command = [sys.executable, "-c", start, str(run.run_dir)]
    for module in includes:
        command += ["--include", module]
    return command


@dataclass
class _Active:
    run: PlannedRun
    slot: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float


@dataclass
class PoolReport:
    """What happened: final state per run and the most runs that were ever in flight at once."""

    states: dict[str, str] = field(default_factory=dict)
    max_in_flight: int = 0


class LocalPool:
    """Runs planned runs on ``len(slots)`` worker slots; ``slots[i]`` is slot i's CUDA device (or None)."""

    def __init__(
        self,
        slots: Sequence[str | None],
        includes: Sequence[str] = (),
        command: Callable[[PlannedRun], list[str]] | None = None,
        echo: Callable[[str], None] = print,
        threads_per_worker: int | None = None,
    ):
        if not slots:
            raise ConfigError("the local pool needs at least one worker")
        self.slots = list(slots)
        self.command = command or (lambda run: worker_command(run, includes))
        self.echo = echo
        # each worker's share of the cores this process may use (runners/threads.py: train.threads wins)
        self.threads = threads_per_worker or max(1, available_cores() // len(self.slots))

    def _environment(self, device: str | None) -> dict[str, str]:
        env = dict(os.environ)
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        # N workers x all cores each would oversubscribe the CPU; respect an explicit user choice.
        env.setdefault("OMP_NUM_THREADS", str(self.threads))
        env.setdefault("MKL_NUM_THREADS", env["OMP_NUM_THREADS"])
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _launch(self, run: PlannedRun, slot: int) -> _Active:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        log = open(run.run_dir / LOG_FILE, "ab")  # noqa: SIM115 - closed in _finish
        process = subprocess.Popen(
            self.command(run),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self._environment(self.slots[slot]),
            start_new_session=True,  # Ctrl-C reaches the pool, which stops the workers cleanly
        )
        return _Active(run=run, slot=slot, process=process, log=log, started=time.perf_counter())

    def _finish(self, active: _Active, code: int) -> str:
        """Final state of a finished worker's run. A worker that died without a result (a signal,
        an OOM kill, a full disk) leaves its run *interrupted*: a plain rerun resumes it."""
        active.log.close()
        run_dir = active.run.run_dir
        result = read_json(run_dir / RESULT_FILE)
        if result is not None:
            return str(result.get("status", "done"))
        if code == EXIT_BUSY:
            return "running elsewhere"
        if code < 0:
            how = (
                f"worker killed by {signal.Signals(-code).name}"
                if -code in signal.valid_signals()
                else f"signal {-code}"
            )
        else:
            how = f"worker exited with status {code}"
        from memorybench.runners.execute import record_interrupted

        record_interrupted(run_dir, f"{how} before writing a result", str(run_dir / LOG_FILE))
        return "interrupted"

    def run(self, runs: Sequence[PlannedRun]) -> PoolReport:
        """Run everything; returns when every run has finished (or raises KeyboardInterrupt after stopping)."""
        queue = deque(runs)
        free = deque(range(len(self.slots)))
        active: dict[int, _Active] = {}
        report = PoolReport()
        total, finished = len(queue), 0
        for run in queue:
            write_status(run.run_dir, "pending", note="queued for a local worker")
        try:
            while queue or active:
                while queue and free:
                    slot = free.popleft()
                    run = queue.popleft()
                    active[slot] = self._launch(run, slot)
                    report.max_in_flight = max(report.max_in_flight, len(active))
                    where = f"worker {slot}" + (f", GPU {self.slots[slot]}" if self.slots[slot] is not None else "")
                    self.echo(f"[{finished + len(active)}/{total}] {run.action} {run.spec.run_id} ({where})")
                time.sleep(POLL_S)
                for slot, item in list(active.items()):
                    code = item.process.poll()
                    if code is None:
                        continue
                    del active[slot]
                    free.append(slot)
                    state = self._finish(item, code)
                    finished += 1
                    report.states[item.run.spec.run_id] = state
                    detail = _detail(item.run.run_dir) if state != "done" else ""
                    took = time.perf_counter() - item.started
                    self.echo(f"[{finished}/{total}] {state} {item.run.spec.run_id} ({took:.1f} s) {detail}".rstrip())
        except BaseException:
            self._stop(list(active.values()))
            raise
        return report

    def _stop(self, active: list[_Active]) -> None:
        """Ask every worker to stop (SIGTERM: their runs stay resumable), kill stragglers."""
        for item in active:
            if item.process.poll() is None:
                item.process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for item in active:
            try:
                item.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                item.process.kill()
                item.process.wait()
            item.log.close()
            status = read_json(item.run.run_dir / STATUS_FILE) or {}
            if not (item.run.run_dir / RESULT_FILE).is_file() and status.get("state") == "running":
                write_status(
                    item.run.run_dir, "pending", note="interrupted; the next attempt resumes from the last checkpoint"
                )


def _detail(run_dir: Path) -> str:
    result = read_json(run_dir / RESULT_FILE) or {}
    return str(result.get("error") or result.get("reason") or "")


def interleave_trainings(runs: Sequence[PlannedRun]) -> list[PlannedRun]:
    """Order runs round-robin over their training runs (first evaluation of every model first), so
    parallel workers train different models instead of waiting on one model's training lock."""
    from memorybench.runners.training import training_id

    queues: dict[str | None, list[PlannedRun]] = {}
    for run in runs:
        key = training_id(run.spec) if run.spec.train_config else None
        queues.setdefault(key, []).append(run)
    ordered: list[PlannedRun] = []
    while any(queues.values()):
        for queue in queues.values():
            if queue:
                ordered.append(queue.pop(0))
    return ordered


def check_local(resources: LocalResources, device_count: int | None = None) -> list[str | None]:
    """Validate the GPU request against this machine before anything runs; the slots' devices."""
    count = cuda_device_count() if device_count is None and resources.gpus else (device_count or 0)
    return gpu_slots(resources.gpus, resources.workers, count, os.environ.get("CUDA_VISIBLE_DEVICES"))


@register_backend("local")
class LocalBackend(Backend):
    """A pool of worker processes on this machine, one job per GPU with --gpus."""

    config_class = LocalResources
    options: ClassVar[dict[str, str]] = {"workers": "--workers", "gpus": "--gpus"}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("--runner local (default: resources.local in the suite)")
        group.add_argument("--workers", metavar="N", help="worker processes (default: one per --gpus device, else 1)")
        group.add_argument("--gpus", metavar="LIST", help="CUDA devices, e.g. 0,1: one job per GPU at a time")

    @classmethod
    def settings(cls, section: Mapping[str, Any] | None, args: argparse.Namespace | None) -> dict[str, Any]:
        return local_settings(section, getattr(args, "workers", None), getattr(args, "gpus", None))

    def check(self) -> None:
        check_local(self.resources)

    def describe(self, plan: Plan) -> list[str]:
        gpus, workers = self.resources.gpus, self.resources.workers or len(self.resources.gpus) or 1
        devices = f" on GPUs {','.join(map(str, gpus[:workers]))}, one job per GPU at a time" if gpus else ""
        return [f"local: {plan.will_run} runs on {workers} worker process(es){devices}, interleaved over their models"]

    def execute(self, plan: Plan, options: argparse.Namespace) -> int:
        LocalPool(check_local(self.resources), includes=plan.includes).run(interleave_trainings(plan.todo))
        return finish(plan)


__all__ = [
    "LocalBackend",
    "LocalPool",
    "LocalResources",
    "PoolReport",
    "check_local",
    "gpu_slots",
    "interleave_trainings",
    "local_settings",
]
