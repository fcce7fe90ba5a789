"""Training throughput (images/s) of a registered memory model — a benchmark script, not a test.

One training step = forward ``model.loss(episode).total`` + backward + grad-norm clip + Adam
(with weight decay) on random binary episodes ``[B, T, 1, 28, 28]``; the images per step are
B·T. Warm-up steps run first, then N steps are timed one by one and the median is reported.

    python -m memorybench.benchmarks.speed.throughput --memory gpm --episodes 32 --episode-length 32 --steps 20 \\
        --compare-reference --profile

``--compare-reference`` times :mod:`memorybench.benchmarks.parity.reference_gpm` (a re-creation of the public GPM
code's training step) in the same run, alternating steps with ours so both see the same machine
state, and prints the speed-up. ``--profile`` prints where the time of a few extra steps goes
(torch.profiler, operators sorted by self CPU time). The last line of the output is always one
JSON object with ``images_per_s`` (median step) and the run's settings.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from memorybench import memories
from memorybench.benchmarks.common.episodes import random_pixel_episodes
from memorybench.benchmarks.common.overrides import add_override_argument, parse_overrides
from memorybench.benchmarks.common.timing import summarize
from memorybench.benchmarks.common.trainer import adam, training_step
from memorybench.benchmarks.parity.reference_gpm import ReferenceGPM, ReferenceTrainer, code_layout

IMAGE_SHAPE = (1, 28, 28)
EPISODE_POOL = 4  # distinct random episodes cycled through (no RNG cost inside the timed loop)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m memorybench.benchmarks.speed.throughput", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--memory", default="gpm", help="registered memory model name (default: gpm)")
    add_override_argument(parser, "model config override, value parsed as YAML")
    parser.add_argument("--episodes", type=int, default=32, help="B: episodes per step (default 32)")
    parser.add_argument("--episode-length", type=int, default=32, help="T: images per episode (default 32)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (default 3e-4)")
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="Adam weight decay (default 1e-4)")
    parser.add_argument("--clip", type=float, default=10.0, help="gradient-norm clip (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compile",
        action="store_true",
        help="opt-in: torch.compile the model's loss (first steps compile; use enough --warmup)",
    )
    parser.add_argument(
        "--compare-reference",
        action="store_true",
        help="also time the public GPM code's re-creation (benchmarks/parity/reference_gpm.py) and print the ratio",
    )
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler summary of extra steps")
    parser.add_argument("--profile-steps", type=int, default=3, help="steps profiled with --profile (default 3)")
    parser.add_argument("--profile-rows", type=int, default=25, help="operator rows printed with --profile")
    return parser


def pixel_episode_pool(count: int, batch: int, length: int, seed: int) -> list[torch.Tensor]:
    """``count`` episodes of random binary images ``[B, T, 1, 28, 28]``."""
    generator = torch.Generator().manual_seed(seed)
    return [random_pixel_episodes(batch, length, IMAGE_SHAPE, True, generator) for _ in range(count)]


def model_step(
    model: memories.MemoryModel, lr: float, weight_decay: float, clip: float, compile_loss: bool = False
) -> Callable[[torch.Tensor], float]:
    """A closure running one training step of ``model`` (the trainer's :func:`training_step`) on an
    episode; returns the loss."""
    optimizer = adam(model, lr, weight_decay)
    objective = torch.compile(model.loss) if compile_loss else None
    return lambda episode: training_step(model, optimizer, episode, clip, objective).loss


def reference_step(
    config: Any, episode_length: int, lr: float, weight_decay: float, clip: float
) -> Callable[[torch.Tensor], float]:
    """The reference step; its input is the episode already in the code's ``[T·B, 784]`` layout."""
    reference = ReferenceGPM(
        memory_size=getattr(config, "memory_size", 32),
        code_size=config.code_size,
        channels=config.channels,
        steps=getattr(config, "pseudo_inverse_steps", 7),
    )
    trainer = ReferenceTrainer(reference, lr=lr, weight_decay=weight_decay, clip=clip)
    return lambda images: trainer.step(images, episode_length)


def time_steps(
    steps: dict[str, Callable[[torch.Tensor], float]], inputs: dict[str, list[torch.Tensor]], warmup: int, timed: int
) -> dict[str, list[float]]:
    """Warm up every step function, then time them alternately (A B, B A, ...) ``timed`` times."""
    names = list(steps)
    for i in range(warmup):
        for name in names:
            steps[name](inputs[name][i % len(inputs[name])])
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for i in range(timed):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            episode = inputs[name][i % len(inputs[name])]
            start = time.perf_counter()
            steps[name](episode)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def profile_step(
    name: str, step: Callable[[torch.Tensor], float], inputs: list[torch.Tensor], count: int, rows: int
) -> str:
    """A table of the operators that take the time of ``count`` steps (self CPU time first)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(count):
            with record_function(f"{name}_step"):
                step(inputs[i % len(inputs)])
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
    return f"--- profile: {name} ({count} steps) ---\n{table}"


def step_statistics(seconds: list[float], images_per_step: int) -> dict[str, float]:
    """Step times (s) and images/s of the median and the mean step."""
    stats = summarize(seconds)
    return {
        "median_step_s": stats["median"],
        "mean_step_s": stats["mean"],
        "min_step_s": stats["min"],
        "images_per_s": images_per_step / stats["median"],
        "mean_images_per_s": images_per_step / stats["mean"],
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; prints a report ending in one JSON line and returns that object."""
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    settings = {"episode_length": args.episode_length, **parse_overrides(args.overrides)}
    model = memories.create(args.memory, image_shape=IMAGE_SHAPE, **settings)
    model.train()
    episodes = pixel_episode_pool(EPISODE_POOL, args.episodes, args.episode_length, args.seed)
    images_per_step = args.episodes * args.episode_length

    steps = {args.memory: model_step(model, args.lr, args.weight_decay, args.clip, args.compile)}
    inputs = {args.memory: episodes}
    if args.compare_reference:
        steps["reference"] = reference_step(model.config, args.episode_length, args.lr, args.weight_decay, args.clip)
        inputs["reference"] = [code_layout(e) for e in episodes]

    seconds = time_steps(steps, inputs, args.warmup, args.steps)
    ours = step_statistics(seconds[args.memory], images_per_step)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{args.memory}: B={args.episodes} T={args.episode_length} ({images_per_step} images/step), "
        f"{args.warmup} warm-up + {args.steps} timed steps"
    )
    print(
        f"{args.memory}: median {ours['median_step_s']:.4f} s/step, mean {ours['mean_step_s']:.4f} s/step "
        f"-> {ours['images_per_s']:.0f} images/s"
    )
    result: dict[str, Any] = {
        "memory": args.memory,
        "episodes": args.episodes,
        "episode_length": args.episode_length,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "compile": args.compile,
        "config": dict(settings),
        "load_average": os.getloadavg()[0],  # other processes on the machine during the run (1 min)
        **ours,
    }
    if args.compare_reference:
        ref = step_statistics(seconds["reference"], images_per_step)
        speedup = ours["images_per_s"] / ref["images_per_s"]
        print(
            f"reference (public GPM code re-created, without its set_detect_anomaly): median "
            f"{ref['median_step_s']:.4f} s/step, mean {ref['mean_step_s']:.4f} s/step -> {ref['images_per_s']:.0f} images/s"
        )
        print(
            f"speed-up {args.memory} / reference: {speedup:.2f}x (median), "
            f"{ours['mean_images_per_s'] / ref['mean_images_per_s']:.2f}x (mean)"
        )
        result.update(
            reference_images_per_s=ref["images_per_s"],
            reference_median_step_s=ref["median_step_s"],
            reference_mean_step_s=ref["mean_step_s"],
            reference_min_step_s=ref["min_step_s"],
            speedup=speedup,
        )
    if args.profile:
        for name, step in steps.items():
            print(profile_step(name, step, inputs[name], args.profile_steps, args.profile_rows))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
