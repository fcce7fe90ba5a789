"""One trainer for every model: Adam, clipping, seeding, checkpoints, resume, NaN guard.

A run directory holds ``checkpoint.pt`` (state dicts, optimizer, step, RNG states and the curve
so far — never pickled modules) and ``train_curve.csv``. Calling :func:`train` again on the same
directory resumes from the last checkpoint, so a preempted or interrupted run loses at most
``checkpoint_every`` steps.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from memorybench.benchmarks.common.artifacts import atomic_torch_save, atomic_write_csv
from memorybench.benchmarks.common.datasets import ImageSplit
from memorybench.benchmarks.common.episodes import fixed_episodes, random_episodes
from memorybench.benchmarks.common.progress import ProgressRecord
from memorybench.memories.configuration import require
from memorybench.memories.protocol import LossTerms, MemoryModel

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"  # the one before: the fallback when the newest is damaged
CURVE = "train_curve.csv"
CHECKPOINT_KEYS = ("model", "optimizer", "step", "curve", "rng")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings shared by every model."""

    steps: int = 2000  # optimizer steps
    batch_episodes: int = 32  # episodes per step (the paper: 32 episodes of T = 32)
    learning_rate: float = 3e-4
    weight_decay: float = 1e-4  # Adam's L2 weight decay (the paper says 1e-3, its code 1e-4)
    grad_clip: float = 10.0  # max global gradient norm
    classes_per_episode: int = 0  # >0: class-structured training episodes
    validate_every: int = 0  # steps between validations (0: only at the end)
    validation_episodes: int = 16  # fixed validation episodes scored each time
    checkpoint_every: int = 100  # steps between checkpoints
    threads: int = 0  # torch CPU threads (0: leave torch's default)

    def validate(self) -> None:
        require(self.steps >= 0, "steps", f"must be >= 0, got {self.steps}")
        require(self.batch_episodes > 0, "batch_episodes", f"must be positive, got {self.batch_episodes}")
        require(self.learning_rate > 0, "learning_rate", f"must be positive, got {self.learning_rate}")
        require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(self.grad_clip > 0, "grad_clip", f"must be positive, got {self.grad_clip}")
        require(self.validate_every >= 0, "validate_every", f"must be >= 0, got {self.validate_every}")
        require(
            self.validation_episodes > 0, "validation_episodes", f"must be positive, got {self.validation_episodes}"
        )
        require(self.checkpoint_every > 0, "checkpoint_every", f"must be positive, got {self.checkpoint_every}")
        require(self.threads >= 0, "threads", f"must be >= 0, got {self.threads}")


class DivergenceError(RuntimeError):
    """The loss or a gradient became NaN/inf; training stops and the run is recorded as failed."""


@dataclass
class TrainOutcome:
    start_step: int  # step training resumed from (0 for a fresh run)
    steps: int  # steps completed in total
    wall_time_s: float  # time spent in this call
    curve: list[dict[str, float]] = field(default_factory=list)


@dataclass
class StepTaken:
    """One training step: the loss terms, the total loss, the gradient norm before clipping, and
    whether both were finite (the optimizer stepped only then)."""

    terms: LossTerms
    loss: float
    grad_norm: float
    finite: bool


def adam(model: torch.nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.Adam:
    """The optimizer of every model: Adam with L2 weight decay."""
    return torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)


def training_step(
    model: MemoryModel,
    optimizer: torch.optim.Optimizer,
    episode: torch.Tensor,
    grad_clip: float,
    objective: Callable[[torch.Tensor], LossTerms] | None = None,
) -> StepTaken:
    """One training iteration on ``episode`` ``[B, T, C, H, W]``: ``model.loss`` (or ``objective``,
    e.g. a compiled ``model.loss``), backward, global grad-norm clip at ``grad_clip``, and an
    optimizer step — skipped when the loss or the gradient norm is not finite (the caller decides
    what divergence means). The trainer, the runtime benchmark and the speed scripts all use it."""
    terms = (objective or model.loss)(episode)
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip))
    loss = float(terms.total.detach())
    finite = math.isfinite(loss) and math.isfinite(grad_norm)
    if finite:
        optimizer.step()
    return StepTaken(terms, loss, grad_norm, finite)


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "episodes": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["episodes"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def warn(message: str) -> None:
    """One line on stderr (and so in a worker's run.log)."""
    print(f"memorybench: warning: {message}", file=sys.stderr, flush=True)


def describe_load_error(error: BaseException) -> str:
    """A one-line reason a checkpoint could not be loaded, without torch's advice to unpickle it
    with ``weights_only=False`` (a damaged or foreign file must never be unpickled)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if "weights_only" in text or "Weights only load failed" in text:
        text = "not a state-dict checkpoint"
    return f"{type(error).__name__}: {text[:160]}" if text else type(error).__name__


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """A checkpoint's payload, checked to hold every key :func:`train` saves; raises ValueError otherwise."""
    with warnings.catch_warnings():  # torch warns about odd pickle protocols: the error, if any, says enough
        warnings.simplefilter("ignore")
        saved = torch.load(path, map_location=device, weights_only=True)
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(saved, dict) or key not in saved]
    if missing:
        raise ValueError(f"no {missing[0]!r} entry")
    return saved


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The checkpoints of ``run_dir``, newest first (those that exist)."""
    return [path for path in (run_dir / CHECKPOINT, run_dir / PREVIOUS_CHECKPOINT) if path.is_file()]


def resume(
    run_dir: Path,
    model: MemoryModel,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[int, list[dict[str, float]]] | None:
    """Restore the newest readable checkpoint of ``run_dir``: (step, curve), or None to start at 0.

    A damaged checkpoint (truncated, corrupted, not ours, not matching the model) is renamed
    ``<name>.damaged`` with a one-line warning and the previous one is tried, then step 0: a
    damaged file never fails the run, and never fails it again on the next attempt."""
    initial = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    rng = torch.get_rng_state(), generator.get_state()
    for path in checkpoint_files(run_dir):
        try:
            saved = load_checkpoint(path, device)
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            _restore_rng(saved["rng"], generator)
            step, curve = int(saved["step"]), list(saved["curve"])
        except Exception as error:
            model.load_state_dict(initial)
            torch.set_rng_state(rng[0])
            generator.set_state(rng[1])
            fallback = next((p.name for p in checkpoint_files(run_dir) if p != path), None)
            os.replace(path, path.with_name(path.name + ".damaged"))
            then = f"falling back to {fallback}" if fallback else "restarting from step 0"
            warn(f"{path}: damaged checkpoint ({describe_load_error(error)}); {then}")
            continue
        return step, curve
    return None


@torch.no_grad()
def validation_nelbo(
    model: MemoryModel, episodes: torch.Tensor, split: ImageSplit, device: torch.device, batch: int
) -> float:
    """Mean NELBO-cond (nats/image) over fixed validation episodes, in eval mode."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for chunk in episodes.split(batch):
        values = model.neg_elbo(split.images(chunk).to(device)).cond
        total += float(values.sum())
        count += values.numel()
    model.train(was_training)
    return total / max(count, 1)


def train(
    model: MemoryModel,
    train_split: ImageSplit,
    config: TrainConfig,
    run_dir: str | Path,
    *,
    seed: int = 0,
    valid_split: ImageSplit | None = None,
    device: torch.device | None = None,
    progress: bool | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    log_path: str | Path | None = None,
) -> TrainOutcome:
    """Train ``model`` for ``config.steps`` steps on random episodes of ``train_split``.

    Resumes from ``run_dir/checkpoint.pt`` when present. Raises :class:`DivergenceError` when
    the loss or gradient norm stops being finite. A progress bar shows on a terminal (``progress``
    None) or when asked; every ``$MEMORYBENCH_PROGRESS_EVERY`` seconds (default 30) a one-line
    record (step, loss, steps/s, ETA) goes to stderr when no bar is shown, and to ``log_path``.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = device or pick_device()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(seed)
    model.to(device).train()
    optimizer = adam(model, config.learning_rate, config.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    episode_length = model.config.episode_length
    valid_episodes = None
    if valid_split is not None and len(valid_split) >= episode_length:
        valid_episodes = fixed_episodes(
            valid_split, episode_length, seed=seed + 1, max_episodes=config.validation_episodes
        )

    step, curve = 0, list[dict[str, float]]()
    checkpoint_path = run_dir / CHECKPOINT
    resumed = resume(run_dir, model, optimizer, generator, device)
    if resumed is not None:
        step, curve = resumed
    start_step = step

    def save() -> None:
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "curve": curve,
            "rng": _rng_state(generator),
        }
        if checkpoint_path.is_file():  # keep the previous one: a damaged newest falls back to it
            os.replace(checkpoint_path, run_dir / PREVIOUS_CHECKPOINT)
        atomic_torch_save(checkpoint_path, payload)
        atomic_write_csv(run_dir / CURVE, curve)
        if on_checkpoint is not None:
            on_checkpoint(step)

    show = sys.stderr.isatty() if progress is None else progress
    label = f"train {model.registry_name}"
    bar = tqdm(total=config.steps, initial=step, disable=not show, desc=label, unit="step")
    record = ProgressRecord(label, config.steps, step, console=not show, log_path=log_path)
    while step < config.steps:
        indices = random_episodes(
            train_split, episode_length, config.batch_episodes, generator, config.classes_per_episode
        )
        episode = train_split.images(indices, generator).to(device)
        taken = training_step(model, optimizer, episode, config.grad_clip)
        if not taken.finite:
            bar.close()
            raise DivergenceError(f"training diverged at step {step}: loss={taken.loss}, grad_norm={taken.grad_norm}")
        step += 1
        loss = taken.loss
        row = {"step": step, "loss": loss, **{f"loss/{k}": float(v.detach()) for k, v in taken.terms.terms.items()}}
        due = step == config.steps or (config.validate_every and step % config.validate_every == 0)
        if valid_split is not None and valid_episodes is not None and due:
            row["valid_nelbo_cond"] = validation_nelbo(
                model, valid_episodes, valid_split, device, config.batch_episodes
            )
        curve.append(row)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.2f}")
        record.update(step, loss)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save()
    bar.close()
    if step == start_step and not checkpoint_path.is_file():
        save()
    model.eval()
    return TrainOutcome(start_step=start_step, steps=step, wall_time_s=time.perf_counter() - started, curve=curve)
