"""Attractor-energy benchmark: is iterative reading a descent on the model's energy?

GPM §2.4 and Figure 7e (docs/models/gpm.md): iterative reading alternates addressing and
decoding, and "in ideal cases" never increases the energy; spurious fixed points exist. Here the
descent is measured instead of assumed. Episodes are written clean (the same fixed test episodes
for every model); every item is queried with a corrupted copy (``noise``/``level``, seeded as in
the denoising benchmark, or ``noise: none`` for the stored items themselves); the energy
``model.energy(x_i, state)`` is evaluated at the query x_0 and after every step x_i of
``iterative_read`` (the binarized decoder mean, as fed back). Each model defines its own energy
(its ``energy_definition`` is recorded): for GPM −ln p(x | W̄M) + ‖e(x) − W̄M‖² with W̄ = e(x)M⁺.

A step "descends" when E(x_{i+1}) ≤ E(x_i) + tol with tol = 1e-5·max(1, |E(x_i)|) (float32 noise).
Metrics: ``descent_fraction`` (steps that descend, over all queries and steps), ``monotone_fraction``
(queries whose energy never rises), ``decrease_fraction`` (queries that end lower than they start),
``energy_initial``/``energy_final`` (means at step 0 and the last step) and ``energy_change``
(mean of final − initial). Files: ``energy_steps.csv`` (per step: mean, median, quartiles, the
fraction of queries that descended at that step, mean Hamming error to the clean item) and
``energy_queries.csv`` (every query's energy per step, long format). Means carry their standard
error, clustered by episode (its queries share one memory). Declared figures (lines from
``energy_steps.csv``): ``energy_per_step`` (mean energy with its standard error),
``descent_per_step`` (fraction of queries descending) and ``hamming_per_step``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from memorybench.benchmarks.base import (
    Benchmark,
    BenchmarkConfig,
    BenchmarkContext,
    BenchmarkOutcome,
    Figure,
    register_benchmark,
    require_split,
)
from memorybench.benchmarks.common.artifacts import atomic_write_csv
from memorybench.benchmarks.common.corruptions import corrupt, corruption_seed, format_level
from memorybench.benchmarks.common.episodes import fixed_episodes
from memorybench.benchmarks.common.metrics import clustered_stderr, mean_and_stderr, quantiles
from memorybench.benchmarks.common.reading import denoise
from memorybench.memories.configuration import require

STEPS_FILE = "energy_steps.csv"
QUERIES_FILE = "energy_queries.csv"
RELATIVE_TOLERANCE = 1e-5


@dataclass(frozen=True, kw_only=True)
class EnergyConfig(BenchmarkConfig):
    """Energy-descent settings."""

    split: str = "test"  # split the episodes come from
    episode_length: int = 0  # T written (0: the model's episode_length)
    max_episodes: int = 32  # episodes (0: the whole split once)
    steps: int = 20  # iterative-reading steps
    threshold: float = 0.5  # binarization of each step's decoder mean (binary data)
    noise: Literal["none", "salt_pepper", "block", "rotation", "gaussian"] = "salt_pepper"  # query corruption
    level: float = 0.15  # its level (fraction, block side, degrees or std)
    salt_pepper_mode: Literal["flip", "random_value"] = "flip"
    rotation_sign: Literal["random", "positive"] = "random"
    save_queries: bool = True  # write energy_queries.csv

    def validate(self) -> None:
        super().validate()
        require_split(self.split)
        require(self.episode_length >= 0, "episode_length", f"must be >= 0, got {self.episode_length}")
        require(self.max_episodes >= 0, "max_episodes", f"must be >= 0, got {self.max_episodes}")
        require(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        require(0.0 < self.threshold < 1.0, "threshold", f"must lie in (0, 1), got {self.threshold}")
        require(math.isfinite(self.level) and self.level >= 0, "level", f"must be finite and >= 0, got {self.level}")
        if self.noise == "salt_pepper":
            require(self.level <= 1.0, "level", f"a salt-and-pepper fraction must lie in [0, 1], got {self.level}")
        if self.noise == "block":
            require(
                self.level == int(self.level) and self.level >= 1,
                "level",
                f"a block side must be a positive integer, got {self.level}",
            )


@register_benchmark("energy")
class EnergyBenchmark(Benchmark):
    """Attractor energy per iterative-reading step: does reading descend the model's energy?"""

    config_class = EnergyConfig
    config: EnergyConfig

    @torch.no_grad()
    def run(self, context: BenchmarkContext) -> BenchmarkOutcome:
        model, config = context.model.eval(), self.config
        torch.manual_seed(context.seed)
        split = context.dataset.split(config.split)
        length = config.episode_length or model.config.episode_length
        episodes = fixed_episodes(split, length, config.episode_seed, config.max_episodes)
        clean_all = split.images(episodes)
        generator = torch.Generator().manual_seed(
            corruption_seed(config.episode_seed, "energy", length, config.noise, config.level)
        )
        queries_all = corrupt(
            clean_all,
            config.noise,
            config.level,
            generator,
            binary=model.binary_data,
            salt_pepper_mode=config.salt_pepper_mode,
            rotation_sign=config.rotation_sign,
        )
        energies, errors = [], []
        for start in range(0, len(episodes), config.batch_episodes):
            clean = clean_all[start : start + config.batch_episodes].to(context.device)
            queries = queries_all[start : start + config.batch_episodes].to(context.device)
            state = model.write(clean)
            images, wrong = denoise(model, queries, clean, state, config.steps, config.threshold)
            energies.append(torch.stack([model.energy(x, state) for x in images]).double().cpu())  # [steps+1, b, T]
            errors.append(wrong.cpu())
        energy = torch.cat(energies, dim=1).flatten(1)  # [steps+1, N]
        error = torch.cat(errors, dim=1).flatten(1)
        if not bool(torch.isfinite(energy).all()):
            raise FloatingPointError("energy: the model returned non-finite energies")

        delta = energy[1:] - energy[:-1]
        tolerance = RELATIVE_TOLERANCE * energy[:-1].abs().clamp(min=1.0)
        descends = delta <= tolerance  # [steps, N]
        outcome = BenchmarkOutcome()
        outcome.add("descent_fraction", float(descends.double().mean()), "fraction", higher_is_better=True)
        outcome.add("monotone_fraction", float(descends.all(0).double().mean()), "fraction", higher_is_better=True)
        outcome.add(
            "decrease_fraction", float((energy[-1] < energy[0]).double().mean()), "fraction", higher_is_better=True
        )
        episode_ids = torch.arange(energy.shape[1]) // length  # queries of one episode share a memory
        for name, values, unit in (
            ("energy_initial", energy[0], "energy"),
            ("energy_final", energy[-1], "energy"),
            ("energy_change", energy[-1] - energy[0], "energy"),
            ("hamming_final", error[-1].double(), "pixels"),
        ):
            outcome.add(name, float(values.mean()), unit, stderr=clustered_stderr(values, episode_ids))

        step_rows = []
        for step in range(config.steps + 1):
            spread = quantiles(energy[step], (0.25, 0.5, 0.75))
            mean, stderr = mean_and_stderr(energy[step])
            step_rows.append(
                {
                    "step": step,
                    "energy_mean": mean,
                    "energy_stderr": stderr,
                    "energy_q25": spread[0.25],
                    "energy_median": spread[0.5],
                    "energy_q75": spread[0.75],
                    "descended_fraction": float(descends[step - 1].double().mean()) if step else math.nan,
                    "hamming_mean": float(error[step].double().mean()),
                    "queries": energy.shape[1],
                }
            )
        atomic_write_csv(context.run_dir / STEPS_FILE, step_rows)
        outcome.files.append(STEPS_FILE)
        if config.save_queries:
            rows = [
                {"query": q, "episode": q // length, "item": q % length, "step": s, "energy": float(energy[s, q])}
                for q in range(energy.shape[1])
                for s in range(config.steps + 1)
            ]
            atomic_write_csv(context.run_dir / QUERIES_FILE, rows)
            outcome.files.append(QUERIES_FILE)
        outcome.figures += [
            Figure(name=f"{name}_per_step", kind="line", file=STEPS_FILE, title=title, x="step", y=y, error=error,
                   xlabel="iterative-reading step", ylabel=label, lower_is_better=lower, integer_x=True)
            for name, y, error, label, lower, title in (
                ("energy", "energy_mean", "energy_stderr", "mean energy", True, "Energy while reading"),
                ("descent", "descended_fraction", "", "fraction of queries descending", False, "Energy descent per step"),
                ("hamming", "hamming_mean", "", "mean wrong pixels", True, "Error while reading (energy benchmark)"),
            )
        ]  # fmt: skip
        outcome.protocol = {
            "split": config.split,
            "episode_length": length,
            "episodes": len(episodes),
            "queries": int(energy.shape[1]),
            "episode_seed": config.episode_seed,
            "steps": config.steps,
            "threshold": config.threshold if model.binary_data else "none (8-bit data)",
            "query_noise": "none (the stored items)"
            if config.noise == "none"
            else f"{config.noise} {format_level(config.level)}",
            "energy_definition": model.energy_definition,
            "descent": f"E(x_i+1) <= E(x_i) + {RELATIVE_TOLERANCE:g} * max(1, |E(x_i)|)",
            "memory": "written once per episode batch from the clean episode, never updated while reading",
        }
        return outcome


__all__ = ["EnergyBenchmark", "EnergyConfig"]
