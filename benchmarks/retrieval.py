"""Retrieval-similarity benchmark: do read-outs return the codes that were written?

GPM Appendix A, Figure 6: the cosine similarity between the codes written
to memory and the memory's read-outs for the same items — ≈ 1 for GPM, ≈ 0.82 for DKM on
Omniglot in the paper. Codes are the model's encoder outputs z = e(x) of fixed test episodes (the
same for every model); the latent memory alone is used (``latent_memory.write(z)`` then
``latent_memory.read(z, state)``), so the number isolates the memory from the decoder. Reported
for the mean read-out (``sample=False``; ``cosine_mean``) and one sampled read-out
(``cosine_mean_sampled``), with the distribution over items (quantiles, ``retrieval_items.csv``,
``retrieval_cosine.png``, declared as the image figure ``cosine_distribution``) and the relative
error ‖read − z‖/‖z‖. Untagged metrics pool every episode length; with several lengths each is
also reported per length, tagged ``{"T": T}``. Means carry their standard error, clustered by
episode (the items of an episode share one memory).

Needs a latent K×C-style memory and an encoder; models without one (the memoryless VAE, the
K++-style grid memory) are recorded as not applicable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from memorybench.benchmarks.base import (
    Benchmark,
    BenchmarkConfig,
    BenchmarkContext,
    BenchmarkOutcome,
    Figure,
    register_benchmark,
    require_lengths,
    require_split,
)
from memorybench.benchmarks.common.artifacts import atomic_write_csv
from memorybench.benchmarks.common.episodes import fixed_episodes
from memorybench.benchmarks.common.images import histogram_figure
from memorybench.benchmarks.common.metrics import clustered_stderr, cosine_similarity, quantiles
from memorybench.memories.configuration import require
from memorybench.memories.protocol import MemoryModel

ITEMS_FILE = "retrieval_items.csv"
FIGURE_FILE = "retrieval_cosine.png"


def latent_memory_reason(model_class: type[MemoryModel], needs_encoder: bool = True) -> str | None:
    """Why a latent-memory benchmark cannot run on ``model_class`` (None when it can)."""
    if not model_class.has_latent_memory:
        return "not applicable: the model has no latent memory (latent_memory is None) to write codes to and read from"
    if needs_encoder and not callable(getattr(model_class, "encode", None)):
        return "not applicable: the model exposes no encode(images) -> codes"
    return None


@dataclass(frozen=True, kw_only=True)
class RetrievalConfig(BenchmarkConfig):
    """Retrieval-similarity settings."""

    split: str = "test"  # split the episodes come from
    episode_lengths: tuple[int, ...] = ()  # T values written ([]: the model's episode_length)
    max_episodes: int = 64  # episodes per T (0: the whole split once)

    def validate(self) -> None:
        super().validate()
        require_split(self.split)
        require_lengths(self.episode_lengths)
        require(self.max_episodes >= 0, "max_episodes", f"must be >= 0, got {self.max_episodes}")


@register_benchmark("retrieval")
class RetrievalBenchmark(Benchmark):
    """Cosine similarity between written codes and the memory's read-outs of the same items."""

    config_class = RetrievalConfig
    config: RetrievalConfig

    def not_applicable(self, model_class: type[MemoryModel]) -> str | None:
        return latent_memory_reason(model_class)

    @torch.no_grad()
    def run(self, context: BenchmarkContext) -> BenchmarkOutcome:
        model, config = context.model.eval(), self.config
        torch.manual_seed(context.seed)
        memory = model.latent_memory
        if memory is None:
            raise TypeError("retrieval: the model has no latent memory")
        split = context.dataset.split(config.split)
        lengths = config.episode_lengths or (model.config.episode_length,)
        rows: list[dict[str, Any]] = []
        columns: dict[int, dict[str, torch.Tensor]] = {}
        skipped: dict[str, str] = {}
        for length in lengths:
            if length > len(split):
                skipped[f"T{length}"] = (
                    f"skipped: episode length {length} exceeds the {config.split} split ({len(split)} images)"
                )
                continue
            episodes = fixed_episodes(split, length, config.episode_seed, config.max_episodes)
            pieces: dict[str, list[torch.Tensor]] = {
                "cosine": [],
                "cosine_sampled": [],
                "relative_error": [],
                "code_norm": [],
            }
            for chunk in episodes.split(config.batch_episodes):
                codes = model.encode(split.images(chunk).to(context.device))  # type: ignore[operator]
                state = memory.write(codes)
                readout = memory.read(codes, state, sample=False)
                sampled = memory.read(codes, state, sample=True)
                norm = codes.norm(dim=-1)
                pieces["cosine"].append(cosine_similarity(codes, readout).cpu())
                pieces["cosine_sampled"].append(cosine_similarity(codes, sampled).cpu())
                pieces["relative_error"].append(((readout - codes).norm(dim=-1) / norm.clamp(min=1e-12)).cpu())
                pieces["code_norm"].append(norm.cpu())
            values = {name: torch.cat(parts).double() for name, parts in pieces.items()}  # [E, T] each
            columns[length] = values
            for e in range(values["cosine"].shape[0]):
                for t in range(length):
                    rows.append(
                        {"T": length, "episode": e, "item": t, **{k: float(v[e, t]) for k, v in values.items()}}
                    )
        if not columns:
            raise ValueError(f"retrieval: no episode length fits the {config.split} split ({len(split)} images)")

        outcome = BenchmarkOutcome()
        names = ("cosine", "cosine_sampled", "relative_error")
        everything = {name: torch.cat([c[name].flatten() for c in columns.values()]) for name in names}
        episode_ids = [torch.arange(c["cosine"].shape[0]).unsqueeze(1).expand_as(c["cosine"]) for c in columns.values()]
        offsets = torch.tensor([0, *[ids.shape[0] for ids in episode_ids]]).cumsum(0)
        clusters = torch.cat([(ids + offset).flatten() for ids, offset in zip(episode_ids, offsets)])
        self._add(outcome, {}, everything, clusters)
        if len(columns) > 1:
            for (length, values), ids in zip(columns.items(), episode_ids):
                self._add(outcome, {"T": length}, {k: v.flatten() for k, v in values.items()}, ids.flatten())
        atomic_write_csv(context.run_dir / ITEMS_FILE, rows)
        histogram_figure(
            {"mean read-out": everything["cosine"], "sampled read-out": everything["cosine_sampled"]},
            context.run_dir / FIGURE_FILE,
            xlabel="cosine(written code, read-out)",
            title=f"{model.registry_name}: retrieval similarity",
        )
        outcome.files += [ITEMS_FILE, FIGURE_FILE]
        outcome.figures.append(
            Figure(name="cosine_distribution", kind="image", file=FIGURE_FILE, title="Retrieval similarity per item")
        )
        outcome.protocol = {
            "split": config.split,
            "episode_lengths": sorted(columns),
            "episodes_per_length": {f"T{t}": int(c["cosine"].shape[0]) for t, c in sorted(columns.items())},
            "episode_seed": config.episode_seed,
            "codes": "encoder outputs e(x) of the episode; written with latent_memory.write, read back with latent_memory.read",
            "cosine_mean": "mean over items of cos(z, read(z)) with the mean read-out (sample=False)",
            "cosine_mean_sampled": "the same with one sampled read-out (sample=True)",
            "skipped": skipped,
        }
        return outcome

    @staticmethod
    def _add(
        outcome: BenchmarkOutcome, tags: dict[str, Any], values: dict[str, torch.Tensor], episodes: torch.Tensor
    ) -> None:
        """The metrics of items ``values`` ``[N]`` (``episodes``: each item's episode, for the stderr)."""
        cosine = values["cosine"]
        spread = quantiles(cosine, (0.05, 0.5))

        def mean(name: str, values: torch.Tensor, unit: str, higher: bool) -> None:
            stderr = clustered_stderr(values, episodes)
            outcome.add(name, float(values.mean()), unit, higher, stderr=stderr, tags=tags)

        mean("cosine_mean", cosine, "cosine", True)
        outcome.add("cosine_median", spread[0.5], "cosine", True, tags=tags)
        outcome.add("cosine_p05", spread[0.05], "cosine", True, tags=tags)
        mean("cosine_mean_sampled", values["cosine_sampled"], "cosine", True)
        mean("relative_error_mean", values["relative_error"], "ratio", False)
