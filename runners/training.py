"""Training runs: train once, evaluate many.

A *training run* is one trained model: memory × dataset × training configuration × seed. Every
benchmark of a suite that evaluates that model uses the same training run, so a suite of five
models and seven benchmarks trains five models, not thirty.

Layout: ``<suite dir>/_training/<training id>/`` holds ``training.json`` (the training identity
and its state), ``checkpoint.pt`` (the resumable state: weights, optimizer, step, RNG, curve),
``train_curve.csv`` and one ``model-step<N>.pt`` (weights only) for every step count an
evaluation asked for. The training id is ``<memory>-<dataset>-s<seed>-<hash>``; the hash covers
everything that changes the trained weights *except* ``train.steps``, so raising ``train.steps``
continues the shorter training run from its checkpoint instead of starting from zero, and
evaluating at a step count reached earlier loads that step's snapshot.

Concurrency: the evaluation that needs a training run trains it while holding an exclusive
``flock`` on ``<training dir>/.lock`` (the kernel releases it when the process dies, so a killed
run never leaves it stuck). Another evaluation of the same model — a second worker of the local
pool, another SLURM array task — blocks on the lock, then finds the snapshot and only loads it:
the "same job" strategy, with no scheduler dependencies to manage. A training that *raised* (a
bug, a NaN) is recorded as failed in ``training.json``; every evaluation waiting for it is then
recorded as failed with ``blocked: training run … failed: …`` until ``--retry-failed``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from memorybench.benchmarks.common.artifacts import atomic_torch_save, atomic_write_csv
from memorybench.benchmarks.common.datasets import ImageDataset
from memorybench.benchmarks.common.trainer import (
    TrainConfig,
    checkpoint_files,
    describe_load_error,
    load_checkpoint,
    train,
    warn,
)
from memorybench.memories.protocol import MemoryModel
from memorybench.runners.schema import (
    CURVE_FILE,
    LOCK_FILE,
    TRAINING_DIR,
    TRAINING_FILE,
    atomic_write_json,
    is_storage_error,
    now,
    read_json,
    remove_stale_temporaries,
)
from memorybench.runners.suite import RunSpec

# Settings that change neither the trained weights nor the random stream: left out of the id.
NOT_IN_IDENTITY = ("steps", "checkpoint_every", "threads")


class TrainingBlockedError(RuntimeError):
    """The training run this evaluation needs failed earlier (or cannot provide its step)."""


def training_identity(spec: RunSpec) -> dict[str, Any]:
    """What defines a trained model (the hash input): no benchmark, no step count, no paths."""
    return {
        "memory": spec.memory_class,
        "memory_config": spec.memory_config,
        "dataset": spec.dataset,
        "dataset_config": {k: v for k, v in spec.dataset_config.items() if k != "root"},
        "train_config": {k: v for k, v in spec.train_config.items() if k not in NOT_IN_IDENTITY},
        "seed": spec.seed,
    }


def training_id(spec: RunSpec) -> str:
    """``<memory>-<dataset>-s<seed>-<hash>``: the same for every benchmark of one trained model."""
    blob = json.dumps(training_identity(spec), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
    return f"{spec.memory_class}-{spec.dataset}-s{spec.seed}-{digest}"


def training_dir(suite_dir: Path, spec: RunSpec) -> Path:
    return Path(suite_dir) / TRAINING_DIR / training_id(spec)


def snapshot_path(directory: Path, step: int) -> Path:
    """Weights of the model after ``step`` steps."""
    return directory / f"model-step{step}.pt"


def training_state(directory: Path) -> dict[str, Any]:
    """``training.json`` of a training run ({} when it was never started)."""
    return read_json(directory / TRAINING_FILE) or {}


def clear_training_failure(directory: Path) -> None:
    """Let a failed training run be tried again (``--retry-failed``)."""
    state = training_state(directory)
    if state.get("state") == "failed":
        atomic_write_json(directory / TRAINING_FILE, {**state, "state": "pending", "error": None, "updated": now()})


def evaluation_spec(
    directory: Path, benchmark: str, benchmark_config: dict[str, Any], steps: int | None = None
) -> RunSpec:
    """The RunSpec evaluating training run ``directory`` with ``benchmark`` (at ``steps``: default
    the most steps it was trained for). Raises ValueError when the directory is no finished training run."""
    state = training_state(directory)
    identity = state.get("identity")
    if not isinstance(identity, dict) or not state.get("steps"):
        raise ValueError(f"{directory}: not a finished training run (no {TRAINING_FILE} with trained steps)")
    steps = int(state["steps"]) if steps is None else steps
    if not snapshot_path(directory, steps).is_file():
        kept = sorted(int(p.stem.removeprefix("model-step")) for p in directory.glob("model-step*.pt"))
        raise ValueError(f"{directory}: no weights saved at step {steps}; saved steps: {kept or 'none'}")
    return RunSpec(
        suite=str(state.get("suite") or directory.parent.parent.name),
        memory=str(state.get("memory_label") or identity["memory"]),
        memory_class=identity["memory"],
        memory_config=identity["memory_config"],
        dataset=identity["dataset"],
        dataset_config=identity["dataset_config"],
        benchmark=benchmark,
        benchmark_config=benchmark_config,
        train_config={**identity["train_config"], "steps": steps},
        seed=int(identity["seed"]),
        data_root=state.get("data_root"),
    )


def has_checkpoint(directory: Path) -> bool:
    return bool(checkpoint_files(directory))


@contextlib.contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """Hold the training run's lock (blocking); released on exit or when the process dies."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        remove_stale_temporaries(directory)  # only lock holders write here: any temporary is a dead writer's
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class TrainedModel:
    """How an evaluation got its model (recorded in its ``result.json``)."""

    training_run: str
    start_step: int  # the step this call resumed training from (== steps when it only loaded)
    steps: int
    train_time_s: float  # time this call spent training
    final_train_loss: float | None

    def as_result(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "training_run": self.training_run,
            "start_step": self.start_step,
            "train_steps": self.steps,
            "train_time_s": round(self.train_time_s, 3),
        }
        if self.final_train_loss is not None:
            fields["final_train_loss"] = self.final_train_loss
        return fields


def obtain_trained_model(
    spec: RunSpec,
    model: MemoryModel,
    dataset: ImageDataset,
    config: TrainConfig,
    suite_dir: Path,
    run_dir: Path,
    device: torch.device,
    progress: bool | None = None,
    log_path: str | Path | None = None,
) -> TrainedModel:
    """Load ``model`` with the weights of its training run after ``train.steps`` steps, training
    (or continuing) the run first when no evaluation has needed that step count yet.

    Copies the training curve up to that step into ``run_dir/train_curve.csv``. Raises
    :class:`TrainingBlockedError` when the training run failed before, or went past the step
    count without keeping a snapshot of it.
    """
    directory = training_dir(suite_dir, spec)
    identifier = directory.name
    with exclusive(directory):
        state = training_state(directory)
        if state.get("state") == "failed":
            raise TrainingBlockedError(
                f"blocked: training run {identifier} failed: {state.get('error')} (re-run with --retry-failed)"
            )
        snapshot = snapshot_path(directory, config.steps)
        if snapshot.is_file() and _load_snapshot(snapshot, model, device):
            saved = _newest_checkpoint(directory, device) or {}
            outcome_start, time_s, curve = config.steps, 0.0, list(saved.get("curve", []))
        else:
            reached = int((_newest_checkpoint(directory, device) or {}).get("step", 0))
            if reached > config.steps:
                raise TrainingBlockedError(
                    f"blocked: training run {identifier} is at step {reached}, past train.steps={config.steps}, "
                    f"and kept no snapshot of step {config.steps}"
                )
            _record(directory, spec, "running", steps_requested=config.steps)
            attempt = _Attempt(state)
            try:
                outcome = train(
                    model,
                    dataset.split("train"),
                    config,
                    directory,
                    seed=spec.seed,
                    valid_split=dataset.split("valid"),
                    device=device,
                    progress=progress,
                    log_path=log_path,  # the evaluation run's log gets the progress records
                )
            except Exception as error:
                if is_storage_error(error):  # a full disk is not the training's fault: resumable
                    with contextlib.suppress(OSError):
                        _record(directory, spec, "pending", **attempt.fields())
                    raise
                error_line = f"{type(error).__name__}: {error}".splitlines()[0]
                _record(directory, spec, "failed", error=error_line, **attempt.fields())
                raise
            except BaseException:  # interrupted: resumable, not failed
                _record(directory, spec, "pending", **attempt.fields())
                raise
            atomic_torch_save(snapshot, {"model": model.state_dict(), "step": config.steps})
            steps = max(config.steps, int(state.get("steps", 0)))
            _record(directory, spec, "done", steps=steps, **attempt.fields())
            outcome_start, time_s, curve = outcome.start_step, outcome.wall_time_s, outcome.curve
    curve = [row for row in curve if row.get("step", 0) <= config.steps]
    if curve:
        atomic_write_csv(run_dir / CURVE_FILE, curve)
    return TrainedModel(
        training_run=identifier,
        start_step=outcome_start,
        steps=config.steps,
        train_time_s=time_s,
        final_train_loss=float(curve[-1]["loss"]) if curve else None,
    )


class _Attempt:
    """One attempt at training: ``training.json`` sums ``train_time_s`` and counts ``attempts`` over
    every attempt that ended (done, failed or interrupted; a process killed outright records nothing)."""

    def __init__(self, state: dict[str, Any]):
        self.started = time.perf_counter()
        self.previous_s = float(state.get("train_time_s") or 0.0)
        self.previous_attempts = int(state.get("attempts") or 0)

    def fields(self) -> dict[str, Any]:
        spent = time.perf_counter() - self.started
        return {"train_time_s": round(self.previous_s + spent, 3), "attempts": self.previous_attempts + 1}


def _load_snapshot(path: Path, model: MemoryModel, device: torch.device) -> bool:
    """Load the weights saved at one step count; a damaged snapshot is set aside with a warning
    (False: the weights are rebuilt from the checkpoints, retraining if need be)."""
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols: the error, if any, says enough
            warnings.simplefilter("ignore")
            weights = torch.load(path, map_location=device, weights_only=True)["model"]
    except Exception as error:
        os.replace(path, path.with_name(path.name + ".damaged"))
        warn(f"{path}: damaged weights ({describe_load_error(error)}); rebuilding them from the checkpoints")
        return False
    model.load_state_dict(weights)
    model.to(device)
    return True


def _newest_checkpoint(directory: Path, device: torch.device) -> dict[str, Any] | None:
    """The newest readable checkpoint's payload (damaged ones are handled by :func:`train`)."""
    for path in checkpoint_files(directory):
        try:
            return load_checkpoint(path, device)
        except Exception:
            continue
    return None


def _record(directory: Path, spec: RunSpec, state: str, **fields: Any) -> None:
    record = training_state(directory)
    record.update(
        identity=training_identity(spec),
        training_run=directory.name,
        suite=spec.suite,
        memory_label=spec.memory,
        data_root=spec.data_root,
        **fields,
    )
    record.update(state=state, updated=now())
    atomic_write_json(directory / TRAINING_FILE, record)


__all__ = [
    "TRAINING_DIR",
    "TrainedModel",
    "TrainingBlockedError",
    "clear_training_failure",
    "evaluation_spec",
    "has_checkpoint",
    "obtain_trained_model",
    "snapshot_path",
    "training_dir",
    "training_id",
    "training_identity",
]
