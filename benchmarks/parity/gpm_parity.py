"""Reference parity for GPM: the public code's re-creation and our ``gpm`` trained side by side.

Both models see the same training episodes in the same order: each epoch is a seeded permutation
of the training split cut into chunks of B·T images, as the public code's shuffled loader does,
and a chunk's images go to episode b as rows b, B+b, 2B+b, … of the chunk (the code's ``[T, B]``
layout), so the reference and ours write exactly the same episodes at every step. Both use Adam
(L2 weight decay), the same learning rate and grad-norm clip. At every ``--eval-every`` steps
both are scored on the whole test split cut into the ELBO benchmark's episodes (seeded
permutation, chunks of T, ``episode_seed`` 1234):

- the reference as the public code scores itself: reconstruction + KL_w per image averaged over
  full batches of B episodes, BatchNorm in training mode and every noise on (``reference``);
  also in eval mode (``reference_eval``: BatchNorm running statistics, noises still on);
- ours through the suite's own path: ``model.eval()``, mean of ``model.neg_elbo(...).cond`` over
  the same episodes in batches of ``--eval-batch`` episodes.

    python -m memorybench.benchmarks.parity.gpm_parity --data-root DATA --steps 3000 --eval-every 500

``--set key=value`` changes our model's config (e.g. ``--set network=reference_groupnorm``, the
public code's layout, with which ours matches the reference; docs/models/gpm_parity.md); ``--only
reference`` or ``--only ours`` trains one side. The report is a table of the test curves and
ends with exactly one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from memorybench import memories
from memorybench.benchmarks.common.datasets import ImageSplit
from memorybench.benchmarks.common.datasets import create as create_dataset
from memorybench.benchmarks.common.episodes import fixed_episodes, random_episodes
from memorybench.benchmarks.common.overrides import add_override_argument, parse_overrides
from memorybench.benchmarks.common.trainer import adam, training_step
from memorybench.benchmarks.parity.reference_gpm import ReferenceGPM, ReferenceTrainer, code_layout, public_test_loss

SIDES = ("reference", "ours")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m memorybench.benchmarks.parity.gpm_parity", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--data-root", default=None, help="data root holding binarized_mnist/ (default: $MEMORYBENCH_DATA)"
    )
    parser.add_argument("--dataset", default="binarized_mnist", help="registered 28×28 binary dataset")
    parser.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    parser.add_argument("--eval-every", type=int, default=500, help="steps between test evaluations (default 500)")
    parser.add_argument("--episodes", type=int, default=4, help="B: episodes per step (default 4)")
    parser.add_argument("--episode-length", type=int, default=32, help="T: images per episode (default 32)")
    parser.add_argument("--memory-size", type=int, default=32, help="K (default 32)")
    parser.add_argument("--code-size", type=int, default=100, help="C (default 100)")
    parser.add_argument("--channels", type=int, default=16, help="conv channels of both networks (default 16)")
    parser.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (default 3e-4)")
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="Adam L2 weight decay (default 1e-4)")
    parser.add_argument("--clip", type=float, default=10.0, help="gradient-norm clip (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the data order and both initialisations")
    parser.add_argument("--episode-seed", type=int, default=1234, help="test episodes (the ELBO benchmark's default)")
    parser.add_argument("--eval-batch", type=int, default=0, help="test episodes per batch (default: --episodes)")
    parser.add_argument(
        "--eval-repeats", type=int, default=1, help="passes over the test split averaged per evaluation (default 1)"
    )
    parser.add_argument("--max-test-episodes", type=int, default=0, help="cap on test episodes (0: whole split)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--only", choices=SIDES, default=None, help="train only one side")
    parser.add_argument(
        "--ours-episodes",
        choices=("shared", "suite"),
        default="shared",
        help="ours trains on the shared episodes (default) or, as an ablation, on the suite trainer's own "
        "random episodes (benchmarks.common.episodes.random_episodes)",
    )
    parser.add_argument("--save-dir", default=None, help="save both trained state dicts here (for later scoring)")
    add_override_argument(parser, "override of our gpm's config, value parsed as YAML")
    return parser


def training_chunks(size: int, images_per_step: int, seed: int) -> Iterator[Tensor]:
    """Endless index chunks ``[B·T]``: per epoch a seeded permutation, the last partial chunk dropped."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(size, generator=generator)
        for start in range(0, size - images_per_step + 1, images_per_step):
            yield order[start : start + images_per_step]


def chunk_episodes(chunk: Tensor, episodes: int) -> Tensor:
    """Chunk ``[B·T]`` -> episode indices ``[B, T]``: episode b holds rows b, B+b, 2B+b, …"""
    return chunk.view(-1, episodes).T


def our_config(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "mode": "code_compat",
        "memory_size": args.memory_size,
        "code_size": args.code_size,
        "episode_length": args.episode_length,
        "channels": args.channels,
    }
    settings.update(parse_overrides(args.overrides))
    return settings


@torch.no_grad()
def score_ours(model: memories.MemoryModel, split: ImageSplit, test: Tensor, batch: int) -> float:
    """Mean NELBO-cond per image over the test episodes ``[E, T]`` (the ELBO benchmark's path)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for chunk in test.split(batch):
        values = model.neg_elbo(split.images(chunk)).cond
        total += float(values.sum())
        count += values.numel()
    model.train(was_training)
    return total / max(count, 1)


def reference_batches(split: ImageSplit, test: Tensor, batch: int) -> list[Tensor]:
    """Full batches of test episodes in the code's ``[T·B, 784]`` layout (partial batch dropped)."""
    full = test.shape[0] // batch * batch
    return [code_layout(split.images(chunk)) for chunk in test[:full].split(batch)]


def save_models(directory: str, models: dict[str, torch.nn.Module | None]) -> None:
    """``<directory>/<side>.pt``: the state dict of each trained side."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for name, model in models.items():
        if model is not None:
            torch.save(model.state_dict(), path / f"{name}.pt")


def format_table(curves: dict[str, list[dict[str, float]]]) -> str:
    columns = [name for name in ("reference", "reference_eval", "ours") if curves.get(name)]
    steps = sorted({int(row["step"]) for name in columns for row in curves[name]})
    values = {name: {int(row["step"]): row["nelbo"] for row in curves[name]} for name in columns}
    lines = ["step  " + "  ".join(f"{name:>15}" for name in columns)]
    for step in steps:
        cells = [values[name].get(step, math.nan) for name in columns]
        lines.append(f"{step:>4}  " + "  ".join(f"{cell:>15.2f}" for cell in cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train, evaluate, print the table and the JSON line; returns the JSON object."""
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    dataset = create_dataset(args.dataset, data_root=args.data_root)
    train_split, test_split = dataset.split("train"), dataset.split("test")
    length, episodes = args.episode_length, args.episodes
    eval_batch = args.eval_batch or episodes
    test = fixed_episodes(test_split, length, args.episode_seed, args.max_test_episodes)
    sides = [args.only] if args.only else list(SIDES)

    torch.manual_seed(args.seed)
    reference = trainer = None
    if "reference" in sides:
        reference = ReferenceGPM(args.memory_size, args.code_size, args.channels)
        trainer = ReferenceTrainer(reference, lr=args.lr, weight_decay=args.weight_decay, clip=args.clip)
        ref_batches = reference_batches(test_split, test, eval_batch)
    torch.manual_seed(args.seed)
    settings = our_config(args)
    ours = optimizer = None
    if "ours" in sides:
        ours = memories.create("gpm", image_shape=test_split.image_shape, **settings).train()
        optimizer = adam(ours, args.lr, args.weight_decay)

    curves: dict[str, list[dict[str, float]]] = {"reference": [], "reference_eval": [], "ours": []}
    losses: dict[str, list[float]] = {"reference": [], "ours": []}

    def repeated(score: Callable[[], float]) -> float:
        return sum(score() for _ in range(args.eval_repeats)) / args.eval_repeats

    def evaluate(step: int) -> None:
        if reference is not None:
            value = repeated(lambda: public_test_loss(reference, ref_batches, length))
            curves["reference"].append({"step": step, "nelbo": value})
            value = repeated(lambda: public_test_loss(reference, ref_batches, length, train_mode=False))
            curves["reference_eval"].append({"step": step, "nelbo": value})
        if ours is not None:
            value = repeated(lambda: score_ours(ours, test_split, test, eval_batch))
            curves["ours"].append({"step": step, "nelbo": value})
        parts = [f"{name} {rows[-1]['nelbo']:.2f}" for name, rows in curves.items() if rows]
        recent = [f"train {name} {sum(v[-100:]) / len(v[-100:]):.2f}" for name, v in losses.items() if v]
        print(f"step {step}: test " + ", ".join(parts) + ("; " + ", ".join(recent) if recent else ""), flush=True)

    chunks = training_chunks(len(train_split), episodes * length, args.seed)
    suite_generator = torch.Generator().manual_seed(args.seed)
    for step in range(1, args.steps + 1):
        episode = train_split.images(chunk_episodes(next(chunks), episodes))  # [B, T, 1, 28, 28]
        if trainer is not None:
            losses["reference"].append(trainer.step(code_layout(episode), length))
        if ours is not None and optimizer is not None:
            if args.ours_episodes == "suite":
                episode = train_split.images(random_episodes(train_split, length, episodes, suite_generator))
            losses["ours"].append(training_step(ours, optimizer, episode, args.clip).loss)
        if step % args.eval_every == 0 or step == args.steps:
            evaluate(step)

    final = {name: rows[-1]["nelbo"] for name, rows in curves.items() if rows}
    gap = final["ours"] - final["reference"] if {"ours", "reference"} <= final.keys() else None
    if args.save_dir:
        save_models(args.save_dir, {"reference": reference, "ours": ours})
    print(format_table(curves))
    if gap is not None:
        print(f"final gap (ours - reference, nats/image): {gap:+.2f}")
    result: dict[str, Any] = {
        "steps": args.steps,
        "curves": {name: rows for name, rows in curves.items() if rows},
        "final": final,
        "final_gap": gap,
        "wall_time_s": time.perf_counter() - started,
        "settings": {
            "dataset": args.dataset,
            "episodes": episodes,
            "episode_length": length,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "clip": args.clip,
            "seed": args.seed,
            "episode_seed": args.episode_seed,
            "eval_batch": eval_batch,
            "eval_repeats": args.eval_repeats,
            "test_episodes": int(test.shape[0]),
            "threads": torch.get_num_threads(),
            "sides": sides,
            "ours_episodes": args.ours_episodes,
            "ours": settings,
            "reference": {"memory_size": args.memory_size, "code_size": args.code_size, "channels": args.channels},
        },
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
