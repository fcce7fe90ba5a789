"""ELBO benchmark: NELBO-cond and NELBO-full per image on the test split (docs/protocol.md).

Test episodes are a seeded permutation of the test split cut into chunks of T (each image
scored once, the same episodes for every model); the memory is written from the very episode it
scores; eval mode, no gradients, ``samples`` Monte-Carlo samples averaged. Units: nats/image for
binary data, bits/dim for 8-bit data. The per-episode values are saved in ``elbo_episodes.csv``
for paired comparisons (episode i was scored in evaluation batch i // ``batch_episodes``).

Held-out queries (``heldout_queries`` per episode, default 8): items the episode does not hold,
from its classes when episodes are class-structured, else from the rest of the split, scored
against the memory written from the episode (``nelbo_heldout``); ``heldout_gap`` =
``nelbo_heldout`` − ``nelbo_cond`` per episode shows how much of NELBO-cond is the model scoring
what it just wrote (a memoryless VAE's gap is only the difference between the item sets).

Metrics: ``nelbo_cond`` and (with a memory prior) ``nelbo_full``, and each named term of the
bound as ``nelbo_term`` tagged ``{"term": <name>}`` (e.g. ``{"term": "kl_w"}``; the CSV column is
``term/<name>``), every one with its standard error (``stderr``, data, never a name suffix).
``reconstructions.png`` shows the first ``reconstruction_episodes`` scored episodes, each as its
images over the model's deterministic read-out with the episode written (declared as the image
figure ``reconstructions``); the ELBO declares no line chart.

What the standard error means: the standard error of the mean over test episodes when every
episode draws its own noise. A model whose ``neg_elbo`` draws a noise value shared by a whole
evaluation batch (it declares ``noise_shared_across_episodes``; GPM ``code_compat``: one scalar
weight noise for every episode) makes the episodes of a batch correlated, and an episode-level
stderr then understates the uncertainty (batch means of such a model can differ by tens of
nats). Its stderr is the cluster-robust standard error over evaluation batches instead, and the
protocol says so; ``samples`` > 1 averages independent draws and shrinks that spread. A model
that declares a ``bound_caveat`` gets ``nelbo_valid_bound: false`` and the caveat in its protocol.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import Tensor

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
from memorybench.benchmarks.common.datasets import ImageSplit
from memorybench.benchmarks.common.episodes import fixed_class_episodes, fixed_episodes, held_out_queries
from memorybench.benchmarks.common.images import image_grid
from memorybench.benchmarks.common.metrics import clustered_stderr, mean_and_stderr, nll_scale
from memorybench.memories.configuration import require
from memorybench.memories.protocol import MemoryModel

EPISODES_FILE = "elbo_episodes.csv"
RECONSTRUCTIONS_FILE = "reconstructions.png"


@dataclass(frozen=True, kw_only=True)
class ELBOConfig(BenchmarkConfig):
    """ELBO evaluation settings."""

    split: str = "test"  # split scored ("test" or "valid")
    max_episodes: int = 0  # cap on test episodes (0: cover the whole split once)
    samples: int = 1  # Monte-Carlo samples per episode, averaged
    reconstruction_episodes: int = 2  # scored episodes drawn in reconstructions.png (0: no picture)
    reconstruction_items: int = 8  # items drawn per episode
    # >0: class-structured test episodes (needs labels): each draws its T items from this many
    # classes, seeded by episode_seed; max_episodes of them (0: as many as cover the split once)
    classes_per_episode: int = 0
    # held-out queries scored per episode against the memory written from it (0: no held-out
    # score): from the episode's classes with classes_per_episode, else from the rest of the split
    heldout_queries: int = 8
    # >0: importance-sampled ln p(X) with this many samples (models with a likelihood: VAE, KM, DKM)
    # on the first importance_episodes episodes (0: all), reported as nll_is, -ln p̂(X)/T
    importance_samples: int = 0
    importance_episodes: int = 0

    def validate(self) -> None:
        super().validate()
        require_split(self.split, choices=("test", "valid"))
        require(self.max_episodes >= 0, "max_episodes", f"must be >= 0, got {self.max_episodes}")
        require(self.samples > 0, "samples", f"must be positive, got {self.samples}")
        require(self.classes_per_episode >= 0, "classes_per_episode", f"must be >= 0, got {self.classes_per_episode}")
        require(self.heldout_queries >= 0, "heldout_queries", f"must be >= 0, got {self.heldout_queries}")
        require(self.importance_samples >= 0, "importance_samples", f"must be >= 0, got {self.importance_samples}")
        require(self.importance_episodes >= 0, "importance_episodes", f"must be >= 0, got {self.importance_episodes}")
        require(
            self.reconstruction_episodes >= 0,
            "reconstruction_episodes",
            f"must be >= 0, got {self.reconstruction_episodes}",
        )
        require(
            self.reconstruction_items > 0, "reconstruction_items", f"must be positive, got {self.reconstruction_items}"
        )


@register_benchmark("elbo")
class ELBOBenchmark(Benchmark):
    """Negative ELBO per image on test episodes: NELBO-cond and, with a memory prior, NELBO-full."""

    config_class = ELBOConfig
    config: ELBOConfig

    @torch.no_grad()
    def run(self, context: BenchmarkContext) -> BenchmarkOutcome:
        model, config = context.model.eval(), self.config
        split = context.dataset.split(config.split)
        T = model.config.episode_length
        if config.classes_per_episode > 0:
            episodes = fixed_class_episodes(
                split, T, config.classes_per_episode, config.episode_seed, config.max_episodes
            )
        else:
            episodes = fixed_episodes(split, T, config.episode_seed, config.max_episodes)
        queries = None
        if config.heldout_queries:
            queries = held_out_queries(
                split, episodes, config.heldout_queries, config.episode_seed + 1, config.classes_per_episode > 0
            )
        per_episode: dict[str, list[torch.Tensor]] = {}
        importance: dict[str, list[torch.Tensor]] = {}  # on the first importance_episodes only
        importance_on = config.importance_samples > 0 and model.has_likelihood_estimate
        importance_cap = config.importance_episodes or len(episodes)
        batch_ids: list[torch.Tensor] = []
        for batch, chunk in enumerate(episodes.split(config.batch_episodes)):
            batch_slice = slice(batch * config.batch_episodes, batch * config.batch_episodes + len(chunk))
            images = split.images(chunk).to(context.device)
            sums: dict[str, torch.Tensor] = {}
            for _ in range(config.samples):
                result = model.neg_elbo(images)
                pieces = {"nelbo_cond": result.cond, **{f"term/{k}": v for k, v in result.terms.items()}}
                if result.full is not None:
                    pieces["nelbo_full"] = result.full
                for name, value in pieces.items():
                    sums[name] = sums.get(name, 0.0) + value.mean(dim=1).double().cpu() / config.samples
            if queries is not None:
                sums.update(self._heldout(model, images, split.images(queries[batch_slice]).to(context.device)))
            for name, value in sums.items():
                per_episode.setdefault(name, []).append(value)
            if importance_on and batch_slice.start < importance_cap:
                for name, value in self._importance(model, images).items():
                    importance.setdefault(name, []).append(value)
            batch_ids.append(torch.full((len(chunk),), batch))

        factor, unit = nll_scale(model)
        shared = model.noise_shared_across_episodes
        batches = torch.cat(batch_ids)
        outcome = BenchmarkOutcome()
        columns = {name: factor * torch.cat(chunks) for name, chunks in per_episode.items()}
        if "nelbo_heldout" in columns:
            columns["heldout_gap"] = columns["nelbo_heldout"] - columns["nelbo_cond"]
        for column, values in columns.items():
            mean, stderr = mean_and_stderr(values)
            stderr = clustered_stderr(values, batches) if shared else stderr
            name, _, term = column.partition("term/")
            tags = {"term": term} if term else {}
            outcome.add(name or "nelbo_term", mean, unit, stderr=stderr, tags=tags)
        if importance:
            estimated = {name: torch.cat(chunks) for name, chunks in importance.items()}
            estimated["nll_is"] = factor * estimated["nll_is"]
            for name, values in estimated.items():
                mean, stderr = mean_and_stderr(values)
                descriptive = name == "is_effective_sample_fraction"
                outcome.add(
                    name, mean, "fraction" if descriptive else unit, descriptive, stderr=stderr, descriptive=descriptive
                )
            padding = torch.full((len(episodes) - len(estimated["nll_is"]),), float("nan"), dtype=torch.float64)
            columns.update({name: torch.cat([values, padding]) for name, values in estimated.items()})
        rows = [
            {"episode": i, **{name: float(values[i]) for name, values in columns.items()}} for i in range(len(episodes))
        ]
        atomic_write_csv(context.run_dir / EPISODES_FILE, rows)
        outcome.files.append(EPISODES_FILE)
        if config.reconstruction_episodes:
            self._reconstructions(context, split, episodes[: config.reconstruction_episodes])
            outcome.files.append(RECONSTRUCTIONS_FILE)
            outcome.figures.append(
                Figure(
                    name="reconstructions",
                    kind="image",
                    file=RECONSTRUCTIONS_FILE,
                    title="Reconstructions: test episodes (data) over the read-out with the episode written",
                )
            )
        outcome.protocol = {
            "split": config.split,
            "episode_length": model.config.episode_length,
            "episodes": len(episodes),
            "images_scored": int(episodes.numel()),
            "episode_seed": config.episode_seed,
            "episodes_drawn": f"{config.classes_per_episode} classes per episode (items may repeat across episodes)"
            if config.classes_per_episode
            else "a seeded permutation of the split in chunks of T (each item once)",
            "samples": config.samples,
            "mode": "eval, no gradient; memory written from the scored episode",
            "nelbo_cond": "reconstruction + per-item KL terms",
            "nelbo_full": "nelbo_cond + KL(q(M)||p(M))/T"
            if model.has_memory_prior
            else "not applicable: no memory prior",
            "unit": unit,
            "stderr": stderr_meaning(shared, config.batch_episodes, config.samples),
            "nelbo_valid_bound": model.bound_caveat is None,
            "nelbo_heldout": (
                f"{config.heldout_queries} items per episode that it does not hold, "
                + ("from its classes" if config.classes_per_episode else "from the rest of the split")
                + ", scored (NELBO-cond) against the memory written from the episode; heldout_gap = "
                "nelbo_heldout - nelbo_cond, paired: how much of NELBO-cond is scoring what was just written"
            )
            if config.heldout_queries
            else "off (heldout_queries: 0)",
            "nll_is": importance_meaning(model, config),
        }
        if model.bound_caveat is not None:
            outcome.protocol["caveat"] = model.bound_caveat
        return outcome

    def _heldout(self, model: MemoryModel, images: Tensor, queries: Tensor) -> dict[str, Tensor]:
        """Per-episode ``nelbo_heldout`` ``[B]``: NELBO-cond of queries ``[B, Q, ...]`` that were not
        written, against the memory written from ``images`` ``[B, T, ...]``, averaged over items.

        Runs on a forked random stream, so the episode's own scores are the same with or without it.
        """
        heldout = torch.zeros(len(images), dtype=torch.float64)
        with forked_random_stream(images.device):
            for _ in range(self.config.samples):
                heldout += model.neg_elbo(images, queries).cond.mean(dim=1).double().cpu() / self.config.samples
        return {"nelbo_heldout": heldout}

    def _importance(self, model: MemoryModel, images: Tensor) -> dict[str, Tensor]:
        """``nll_is`` = −ln p̂(X)/T per episode ``[B]`` from ``importance_samples`` importance
        weights, and the effective sample fraction ESS/k of the weights (averaged over groups)."""
        samples = self.config.importance_samples
        with forked_random_stream(images.device):
            log_weights = model.log_importance_weights(images, samples).double().cpu()  # [B, G, k]
        total = torch.logsumexp(log_weights, -1)
        estimate = (total - math.log(samples)).sum(-1)
        effective = torch.exp(2.0 * total - torch.logsumexp(2.0 * log_weights, -1)) / samples
        return {"nll_is": -estimate / images.shape[1], "is_effective_sample_fraction": effective.mean(-1)}

    def _reconstructions(self, context: BenchmarkContext, split: ImageSplit, episodes: torch.Tensor) -> None:
        """Save ``reconstructions.png``: per episode ``[E, T]`` a row of its first items and below it
        the model's expected read-out ``read(x, write(x)).mean`` of the same items."""
        model, count = context.model, self.config.reconstruction_items
        images = split.images(episodes).to(context.device)  # [E, T, C, H, W]
        readout = model.read(images, model.write(images)).mean.clamp(0, 1)
        rows = torch.stack([images[:, :count], readout[:, :count]], dim=1).flatten(0, 1)  # [2E, n, C, H, W]
        image_grid(
            rows.cpu(),
            context.run_dir / RECONSTRUCTIONS_FILE,
            title=f"{model.registry_name}: data over read-out",
            row_labels=[f"{label} {e}" for e in range(len(episodes)) for label in ("data", "read-out")],
        )


def forked_random_stream(device: torch.device) -> contextlib.AbstractContextManager[None]:
    """Draw from a copy of torch's random state (CPU, and ``device`` when it is a GPU), restored on
    exit: extra scores computed inside leave every other number of the run unchanged."""
    return torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else [])


def importance_meaning(model: MemoryModel, config: ELBOConfig) -> str:
    """What ``nll_is`` is for this model and configuration, in words."""
    if config.importance_samples == 0:
        return "off (importance_samples: 0)"
    if not model.has_likelihood_estimate:
        return "not applicable: the model defines no likelihood p(X) to estimate"
    cap = f"the first {config.importance_episodes} episodes" if config.importance_episodes else "every episode"
    return (
        f"-ln p̂(X)/T with {config.importance_samples} importance samples per episode on {cap}: an "
        "unbiased estimate of p(X), so a stochastic upper bound on -ln p(X)/T that tightens as samples grow"
    )


def stderr_meaning(shared: bool, batch_episodes: int, samples: int) -> str:
    """What the reported standard errors are, in words (saved in the result's protocol)."""
    if not shared:
        return "standard error of the mean over test episodes (each episode draws its own noise)"
    return (
        f"cluster-robust standard error over evaluation batches of {batch_episodes} episodes: the model "
        f"shares one noise draw across the episodes of a batch ({samples} draw(s) averaged per batch), "
        "so episodes are not independent (undefined, null, with a single batch)"
    )
