"""The ELBO benchmark's standard errors are honest when a model shares one noise draw across the
episodes of an evaluation batch (GPM code_compat), and a result says when its number is not a
valid bound (issue 9 part 2)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from memorybench.benchmarks.base import BenchmarkContext, Metric
from memorybench.benchmarks.common.datasets import create as create_dataset
from memorybench.benchmarks.common.metrics import clustered_stderr, mean_and_stderr
from memorybench.benchmarks.elbo import ELBOBenchmark, ELBOConfig
from memorybench.memories.protocol import MemoryModel, ModelConfig, NegELBO


class SharedNoiseStub(MemoryModel):
    """NELBO = 100 + (one N(0, 10²) draw per call, shared by the batch) + N(0, 1) per episode."""

    def __init__(self, shared: bool):
        super().__init__(ModelConfig(episode_length=4))
        self.shared = shared

    @property
    def noise_shared_across_episodes(self) -> bool:
        return self.shared

    @property
    def bound_caveat(self) -> str | None:
        return "scored with a KL that assumes independent noise" if self.shared else None

    def neg_elbo(self, episode: torch.Tensor, queries: torch.Tensor | None = None) -> NegELBO:
        b, t = episode.shape[:2]
        shared = 10.0 * torch.randn(()) if self.shared else 10.0 * torch.randn(b, 1)
        cond = 100.0 + shared + torch.randn(b, 1) + torch.zeros(b, t)
        return NegELBO(cond=cond, terms={"reconstruction": cond})


def evaluate(model: MemoryModel, run_dir: Path) -> tuple[dict[str, Metric], dict]:
    """The untagged metrics by name (the stub has no memory to draw reconstructions from)."""
    torch.manual_seed(0)
    dataset = create_dataset("digits")
    outcome = ELBOBenchmark(ELBOConfig(batch_episodes=16, reconstruction_episodes=0)).run(
        BenchmarkContext(model=model, dataset=dataset, run_dir=run_dir, seed=0, device=torch.device("cpu"))
    )
    assert [m.tags for m in outcome.metrics if m.name == "nelbo_term"] == [{"term": "reconstruction"}]
    return {m.name: m for m in outcome.metrics if not m.tags}, outcome.protocol


def test_clustered_stderr_reduces_to_the_usual_one_for_singleton_clusters() -> None:
    values = torch.randn(40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert math.isclose(clustered_stderr(values, torch.arange(40)), mean_and_stderr(values)[1], rel_tol=1e-12)
    assert math.isnan(clustered_stderr(values, torch.zeros(40, dtype=torch.long)))


def test_shared_noise_gets_the_stderr_over_evaluation_batches(tmp_path: Path) -> None:
    metrics, protocol = evaluate(SharedNoiseStub(shared=True), tmp_path)
    episodes = int(protocol["episodes"])
    batches = math.ceil(episodes / 16)
    # An episode-level stderr would be ≈ 10/√episodes; the honest one is ≈ 10/√batches.
    stderr = metrics["nelbo_cond"].stderr
    assert stderr is not None and "nelbo_cond_stderr" not in metrics
    assert stderr > 2.5 * 10.0 / math.sqrt(episodes)
    assert 0.4 * 10.0 / math.sqrt(batches) < stderr < 2.5 * 10.0 / math.sqrt(batches)
    assert "evaluation batches" in protocol["stderr"]
    assert protocol["nelbo_valid_bound"] is False and "independent" in protocol["caveat"]


def test_independent_noise_keeps_the_stderr_over_episodes(tmp_path: Path) -> None:
    metrics, protocol = evaluate(SharedNoiseStub(shared=False), tmp_path)
    episodes = int(protocol["episodes"])
    stderr = metrics["nelbo_cond"].stderr
    assert stderr is not None and 0.7 * 10.0 / math.sqrt(episodes) < stderr < 1.4 * 10.0 / math.sqrt(episodes)
    assert "over test episodes" in protocol["stderr"]
    assert protocol["nelbo_valid_bound"] is True and "caveat" not in protocol
