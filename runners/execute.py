"""Execute one RunSpec in its run directory: train (resuming), benchmark, record the result.

This is the single function every backend calls (inline, the local worker pool, SLURM jobs).
It never raises for a failure of the run itself: errors, NaNs and bad data are recorded as
``status: failed`` in ``status.json`` and ``result.json`` so the rest of the suite continues.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import shutil
import signal
import subprocess
import threading
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

import torch

import memorybench.benchmarks.common.datasets as datasets
from memorybench import memories
from memorybench.benchmarks.base import BENCHMARKS, BenchmarkContext
from memorybench.benchmarks.common.trainer import TrainConfig, pick_device
from memorybench.memories.configuration import from_mapping
from memorybench.runners.schema import (
    LOG_FILE,
    RESULT_FILE,
    SCHEMA_VERSION,
    SPEC_FILE,
    RunBusyError,
    atomic_write_json,
    is_storage_error,
    measured_fields,
    now,
    read_result,
    run_lock,
    status_record,
    write_result,
    write_status,
)
from memorybench.runners.suite import RunSpec
from memorybench.runners.threads import using_threads
from memorybench.runners.training import obtain_trained_model, training_id

REPOSITORY = Path(__file__).resolve().parents[1]


def git_commit() -> str | None:
    """The source tree's commit (with ``-dirty`` when modified), or None outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPOSITORY), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPOSITORY), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, device and threads recorded with every result."""
    import numpy

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    return info


def prepare_run_dir(spec: RunSpec, run_dir: Path) -> None:
    """Write the spec (once) and a pending status, so planned runs are visible to ``status``.

    When the disk is full (or any write fails) a directory created here is removed again: a
    failed start never leaves an empty or half-prepared run directory behind."""
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / SPEC_FILE).is_file():
            atomic_write_json(run_dir / SPEC_FILE, spec.to_dict())
        if status_record(run_dir)[0] is None:
            write_status(run_dir, "pending", run_id=spec.run_id, attempts=0)
    except OSError:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def treat_sigterm_as_interrupt() -> None:
    """Make SIGTERM (a pool stopping its workers, ``timeout``, a scheduler's kill) raise
    KeyboardInterrupt, so the run in flight is left resumable instead of recorded as failed.
    Only the main thread can install signal handlers; elsewhere this does nothing."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def execute_run(
    spec: RunSpec, run_dir: str | Path, progress: bool | None = None, log_path: str | None = None
) -> dict[str, Any]:
    """Run ``spec`` in ``run_dir`` and return its result (also written to ``result.json``).

    Holds the run's lock throughout (:func:`runners.schema.run_lock`): raises
    :class:`RunBusyError` when another process is running it, and returns the existing result
    without running anything when the run finished meanwhile, so a result is never written twice.
    A full disk (or quota, or read-only filesystem) is not the run's fault: the run is left
    resumable and the OSError propagates.
    """
    run_dir = Path(run_dir)
    prepare_run_dir(spec, run_dir)
    with run_lock(run_dir):
        existing = read_result(run_dir)
        if existing is not None:
            return existing
        with using_threads(int(spec.train_config.get("threads") or 0)) as (_, threads_from):
            return _execute_locked(spec, run_dir, progress, log_path, threads_from)


def _execute_locked(
    spec: RunSpec, run_dir: Path, progress: bool | None, log_path: str | None, threads_from: str = ""
) -> dict[str, Any]:
    status = status_record(run_dir)[0] or {}
    attempts = int(status.get("attempts", 0) or 0) + 1
    log_path = log_path or str(run_dir / LOG_FILE)
    write_status(run_dir, "running", attempts=attempts, started=now(), log=log_path, error=None, note=None)
    started = time.perf_counter()
    device = pick_device()
    setting = {"threads_from": threads_from} if threads_from else {}  # the rule of runners/threads.py that chose
    base: dict[str, Any] = {**_result_header(spec, attempts), "environment": {**environment(device), **setting}}
    try:
        result = {**base, **_run(spec, run_dir, device, progress, log_path)}
    except Exception as error:  # the run failed; the suite goes on
        if is_storage_error(error):
            _leave_resumable(run_dir, f"stopped: {getattr(error, 'strerror', None) or error}")
            raise
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        with contextlib.suppress(OSError), open(log_path, "a", encoding="utf-8") as log:
            log.write(traceback.format_exc())
        result = {**base, "status": "failed", "error": message, "log": log_path, **measured_fields([])}
    except BaseException:  # Ctrl-C, a worker told to stop, SLURM preemption (sys.exit): resumable, not failed
        _leave_resumable(run_dir, "interrupted; the next attempt resumes from the last checkpoint")
        raise
    result["wall_time_s"] = round(time.perf_counter() - started, 3)
    result["finished"] = now()
    try:
        write_result(run_dir, result)
        write_status(
            run_dir, result["status"], error=result.get("error") or result.get("reason"), finished=result["finished"]
        )
    except OSError as error:
        if not (run_dir / RESULT_FILE).is_file():
            _leave_resumable(run_dir, f"stopped before writing its result: {error.strerror or error}")
        raise
    return result


def _leave_resumable(run_dir: Path, note: str) -> None:
    """Mark a run that stopped without its own fault as pending (best effort: the disk may be full)."""
    with contextlib.suppress(OSError):
        write_status(run_dir, "pending", note=note)


def _result_header(spec: RunSpec, attempts: int) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": spec.run_id,
        "suite": spec.suite,
        "memory": spec.memory,
        "memory_class": spec.memory_class,
        "dataset": spec.dataset,
        "benchmark": spec.benchmark,
        "seed": spec.seed,
        "config": spec.identity(),
        "training_run": training_id(spec) if BENCHMARKS.get(spec.benchmark).needs_training else None,
        "attempts": attempts,
        "start_step": 0,
        "git_commit": git_commit(),
        "provenance": code_provenance(spec),
    }


def code_provenance(spec: RunSpec) -> dict[str, Any]:
    """Where the run's model and benchmark classes come from (distribution and version, or the
    ``--include`` file) and the hash of their code (:meth:`Registry.provenance`): what
    ``run --rerun-stale`` and the reports compare."""
    return {
        "memory": memories.MEMORIES.provenance(spec.memory_class),
        "benchmark": BENCHMARKS.provenance(spec.benchmark),
    }


def record_interrupted(run_dir: str | Path, reason: str, log_path: str | None = None) -> None:
    """Record a run whose process died without a result (killed worker, OOM, lost SLURM job) as
    ``interrupted``: a plain rerun resumes it from its checkpoint (only a run that *raised* is
    failed). Nothing is written when the run has a result (it finished after all) or another
    process holds its lock (it is running again)."""
    run_dir = Path(run_dir)
    if (run_dir / RESULT_FILE).is_file():
        return
    with contextlib.suppress(RunBusyError), run_lock(run_dir):
        if not (run_dir / RESULT_FILE).is_file():
            fields: dict[str, Any] = {"error": f"{reason}; a plain rerun resumes it", "note": None}
            if log_path:
                fields["log"] = log_path
            write_status(run_dir, "interrupted", **fields)


def _run(
    spec: RunSpec, run_dir: Path, device: torch.device, progress: bool | None, log_path: str | None = None
) -> dict[str, Any]:
    model_class = memories.MEMORIES.get(spec.memory_class)
    benchmark_class = BENCHMARKS.get(spec.benchmark)
    benchmark = benchmark_class(
        from_mapping(benchmark_class.config_class, spec.benchmark_config, f"benchmarks.{spec.benchmark}")
    )
    reason = benchmark.not_applicable(model_class)
    if reason:
        return {"status": "not_applicable", "reason": reason, **measured_fields([])}
    dataset = datasets.create(spec.dataset, spec.data_root, **spec.dataset_config)
    torch.manual_seed(spec.seed)  # before building the model: its initialisation is part of the run
    model = memories.create(
        spec.memory_class, image_shape=dataset.image_shape, likelihood=dataset.likelihood, **spec.memory_config
    )
    extra: dict[str, Any] = {}
    if benchmark_class.needs_training:
        train_config = from_mapping(TrainConfig, spec.train_config, "train")
        trained = obtain_trained_model(
            spec, model, dataset, train_config, run_dir.parent, run_dir, device, progress, log_path
        )
        extra = trained.as_result()
    model.to(device).eval()
    context = BenchmarkContext(
        model=model, dataset=dataset, run_dir=run_dir, seed=spec.seed, device=device, progress=bool(progress)
    )
    evaluated = benchmark.run(context)
    return {
        "status": "done",
        **extra,
        **measured_fields(
            [dataclasses.asdict(metric) for metric in evaluated.metrics],
            [dataclasses.asdict(figure) for figure in evaluated.figures],
        ),
        "protocol": evaluated.protocol,
        "files": evaluated.files,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
