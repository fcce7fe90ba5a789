"""Importance-sampled likelihoods (float64 properties) and the ELBO benchmark's held-out and IS scores."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from memorybench import memories
from memorybench.memories import conformance
from memorybench.memories.gaussian_memory import (
    MatrixNormalState,
    matrix_normal_log_density,
    predictive_log_density,
    rank_one_write,
)
from memorybench.reports.load import load_results
from memorybench.reports.ranking import bootstrap_ranks
from memorybench.runners.execute import execute_run
from memorybench.runners.suite import build_suite

DTYPE = torch.float64
IMAGE = (1, 4, 4)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_state(gen: torch.Generator, batch: int = 2, memory_size: int = 4, code_size: int = 3) -> MatrixNormalState:
    factor = torch.randn(batch, memory_size, memory_size, generator=gen, dtype=DTYPE)
    covariance = factor @ factor.mT / memory_size + 0.3 * torch.eye(memory_size, dtype=DTYPE)
    return MatrixNormalState(torch.randn(batch, memory_size, code_size, generator=gen, dtype=DTYPE), covariance)


def test_matrix_normal_density_is_the_gaussian_of_the_stacked_columns():
    gen = generator(0)
    state = random_state(gen)
    memory = torch.randn(state.mean.shape, generator=gen, dtype=DTYPE)
    expected = torch.zeros(2, dtype=DTYPE)
    for c in range(3):  # V = I: the C columns are independent N(R[:, c], U)
        column = torch.distributions.MultivariateNormal(state.mean[..., c], covariance_matrix=state.covariance)
        expected += column.log_prob(memory[..., c])
    assert torch.allclose(matrix_normal_log_density(memory, state), expected, atol=1e-10)


def test_predictive_density_is_the_chain_rule_of_sequential_writes():
    gen = generator(1)
    state = random_state(gen)
    weights = torch.randn(2, 5, 4, generator=gen, dtype=DTYPE)
    codes = torch.randn(2, 5, 3, generator=gen, dtype=DTYPE)
    noise_var = 0.4
    chain = torch.zeros(2, dtype=DTYPE)
    current = state
    for t in range(5):  # p(z_t | z_<t) = N(R_{t-1}ᵀw_t, (w_tᵀU_{t-1}w_t + σ²) I_C)
        w = weights[:, t]
        variance = (w.unsqueeze(1) @ current.covariance @ w.unsqueeze(-1)).squeeze((-2, -1)) + noise_var
        mean = (w.unsqueeze(1) @ current.mean).squeeze(1)
        chain += torch.distributions.Normal(mean, variance.sqrt().unsqueeze(-1)).log_prob(codes[:, t]).sum(-1)
        current = rank_one_write(current, w, codes[:, t], noise_var, clip=None)[0]
    assert torch.allclose(predictive_log_density(state, weights, codes, noise_var), chain, atol=1e-10)


def test_vae_importance_estimate_matches_quadrature_of_a_two_dimensional_latent():
    torch.manual_seed(0)
    model = memories.create("vae", image_shape=IMAGE, code_size=2, episode_length=3, network="mlp", hidden_size=8).to(
        DTYPE
    )
    model.eval()
    x = conformance.episode(batch=1, length=3, image_shape=IMAGE, density=0.5, dtype=DTYPE)
    grid = torch.linspace(-7.0, 7.0, 281, dtype=DTYPE)
    points = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).view(-1, 2)  # [P, 2]
    step = float(grid[1] - grid[0])
    with torch.no_grad():
        logits = model.decode_items(model.decoder, points.view(1, -1, 2))
        exact = []
        for t in range(3):  # ln ∫ p(x|z) N(z; 0, I) dz on the grid
            log_joint = logits.log_prob(x[:, t : t + 1].expand(1, len(points), *IMAGE)) - 0.5 * (
                points.square().sum(-1) + 2.0 * math.log(2.0 * math.pi)
            )
            exact.append(torch.logsumexp(log_joint, -1) + 2.0 * math.log(step))
        weights = model.log_importance_weights(x, 4000)  # [1, T, k]
        estimate = torch.logsumexp(weights, -1) - math.log(4000)
        elbo = -model.neg_elbo(x).cond
    assert weights.shape == (1, 3, 4000)
    assert torch.allclose(estimate, torch.stack(exact, -1), atol=0.05)
    assert bool((estimate > elbo).all())


@pytest.mark.parametrize("name", ["km", "dkm"])
def test_memory_models_importance_estimate_is_above_the_full_bound(name):
    torch.manual_seed(0)
    settings = dict(code_size=4, memory_size=3, episode_length=4, network="mlp", hidden_size=8)
    if name == "km":
        settings["head_hidden_size"] = 8
    model = memories.create(name, image_shape=IMAGE, **settings).to(DTYPE).eval()
    x = conformance.episode(batch=3, length=4, image_shape=IMAGE, density=0.5, dtype=DTYPE)
    with torch.no_grad():
        weights = model.log_importance_weights(x, 2000)
        estimate = torch.logsumexp(weights, -1).sum(-1) - math.log(2000)
        full = torch.stack([-model.neg_elbo(x).full.sum(-1) for _ in range(200)]).mean(0)  # E ELBO, ln p(X) ≥ it
    assert weights.shape == (3, 1, 2000) and bool(torch.isfinite(weights).all())
    assert bool((estimate > full).all())


def test_models_without_a_likelihood_say_so():
    model = memories.create("gpm", image_shape=IMAGE, code_size=4, memory_size=3, episode_length=4, network="mlp")
    assert not model.has_likelihood_estimate
    with pytest.raises(NotImplementedError, match="no likelihood"):
        model.log_importance_weights(conformance.episode(batch=1, length=4, image_shape=IMAGE), 2)


def run_elbo(out: Path, names: list[str], **settings) -> dict[str, tuple[dict, list[dict]]]:
    raw = {
        "name": "t",
        "seeds": [0],
        "defaults": {"code_size": 8, "episode_length": 6, "channels": 4},
        "memories": {name: {"memory_size": 4} if name != "vae" else {} for name in names},
        "datasets": {"digits": {}},
        "benchmarks": {"elbo": {"max_episodes": 6, "batch_episodes": 2, "reconstruction_episodes": 0, **settings}},
        "train": {"steps": 2, "batch_episodes": 2},
    }
    runs = {}
    for spec in build_suite(raw).runs:
        result = execute_run(spec, out / spec.run_id, progress=False)
        with open(out / spec.run_id / "elbo_episodes.csv", newline="") as handle:
            runs[spec.memory] = (result, list(csv.DictReader(handle)))
    return runs


def test_elbo_benchmark_reports_held_out_and_importance_scores(tmp_path):
    runs = run_elbo(tmp_path / "on", ["vae", "km", "gpm"], importance_samples=20, importance_episodes=3)
    plain = run_elbo(tmp_path / "off", ["vae", "km", "gpm"], heldout_queries=0)
    for name, (result, rows) in runs.items():
        metrics = result["metrics"]
        gaps = [float(r["nelbo_heldout"]) - float(r["nelbo_cond"]) for r in rows]
        assert metrics["heldout_gap"] == pytest.approx(sum(gaps) / len(gaps))
        # the held-out pass and the estimate draw from a forked stream: the episode's own scores do not move
        assert [r["nelbo_cond"] for r in rows] == [r["nelbo_cond"] for r in plain[name][1]]
        assert "nelbo_heldout" not in plain[name][0]["metrics"]
        if name == "gpm":
            assert "nll_is" not in metrics and "not applicable" in result["protocol"]["nll_is"]
            continue
        estimated = [float(r["nll_is"]) for r in rows[:4]]  # importance_episodes rounds up to whole batches
        assert all(math.isfinite(v) for v in estimated) and all(r["nll_is"] == "nan" for r in rows[4:])
        assert metrics["nll_is"] == pytest.approx(sum(estimated) / 4)
        assert 0 < metrics["is_effective_sample_fraction"] <= 1
        assert "20 importance samples" in result["protocol"]["nll_is"]
    ranks = bootstrap_ranks(load_results(tmp_path / "on"))
    assert {"nelbo_cond", "nelbo_heldout", "nll_is"} <= set(ranks["metric"])
    assert set(ranks.loc[ranks["metric"] == "nll_is", "model"]) == {"vae", "km"}
    assert (ranks["rank_low"] <= ranks["rank"]).all() and (ranks["rank"] <= ranks["rank_high"]).all()


def test_table1_labels_a_number_that_is_not_a_bound_and_never_marks_it_best(tmp_path):
    from memorybench.runners.cli import main

    run_elbo(tmp_path / "runs", ["vae", "dkm"], heldout_queries=0)  # DKM's default reads the mean memory
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"), "--format", "csv,md"]) == 0
    table = (tmp_path / "report" / "tables" / "table1_nelbo.csv").read_text().splitlines()
    dkm = next(line for line in table if line.startswith("dkm †,"))
    header = table[0].split(",")
    best = [i for i, name in enumerate(header) if name.endswith("NELBO-cond [nats/image] | best")]
    assert best and dkm.split(",")[best[0]] == "False"
    assert "† dkm: not a valid bound" in (tmp_path / "report" / "report.md").read_text()
