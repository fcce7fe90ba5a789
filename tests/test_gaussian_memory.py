"""Properties of the linear-Gaussian memory maths in float64."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from memorybench.memories.gaussian_memory import (
    DiagonalMatrixNormalPrior,
    MatrixNormalState,
    batch_write,
    diagonal_logdet_matrix_normal_kl,
    gram_regularised_addressing,
    matrix_normal_kl,
    per_image_terms,
    rank_one_write,
    ridge_addressing,
    sample_matrix_normal,
)
from memorybench.memories.kl import diagonal_gaussian_kl

DTYPE = torch.float64


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(*shape, generator=gen, dtype=DTYPE)


def random_spd(batch: int, size: int, gen: torch.Generator) -> torch.Tensor:
    factor = randn(batch, size, size, gen=gen)
    return factor @ factor.mT / size + 0.5 * torch.eye(size, dtype=DTYPE)


def random_state(gen: torch.Generator, batch: int = 2, memory_size: int = 5, code_size: int = 4) -> MatrixNormalState:
    return MatrixNormalState(randn(batch, memory_size, code_size, gen=gen), random_spd(batch, memory_size, gen))


def write_sequentially(state: MatrixNormalState, weights, codes, noise_var, clip=None):
    betas, kls, states = [], [], [state]
    for t in range(weights.shape[1]):
        state, beta, kl = rank_one_write(state, weights[:, t], codes[:, t], noise_var, clip=clip)
        betas.append(beta)
        kls.append(kl)
        states.append(state)
    return states, torch.stack(betas, 1), torch.stack(kls, 1)


def test_batch_write_equals_information_form():
    gen = generator(1)
    state = random_state(gen)
    weights, codes, noise_var = randn(2, 6, 5, gen=gen), randn(2, 6, 4, gen=gen), 0.7
    posterior = batch_write(state, weights, codes, noise_var)
    prior_precision = torch.linalg.inv(state.covariance)
    covariance = torch.linalg.inv(prior_precision + weights.mT @ weights / noise_var)
    mean = covariance @ (prior_precision @ state.mean + weights.mT @ codes / noise_var)
    assert torch.allclose(posterior.covariance, covariance, atol=1e-12)
    assert torch.allclose(posterior.mean, mean, atol=1e-12)


def test_sequential_rank_one_writes_equal_batch_write_and_are_order_free():
    gen = generator(2)
    state = random_state(gen)
    weights, codes = randn(2, 7, 5, gen=gen), randn(2, 7, 4, gen=gen)
    batch = batch_write(state, weights, codes, 0.5)
    sequential = write_sequentially(state, weights, codes, 0.5)[0][-1]
    assert torch.allclose(sequential.mean, batch.mean, atol=1e-12)
    assert torch.allclose(sequential.covariance, batch.covariance, atol=1e-12)
    order = torch.randperm(7, generator=gen)
    permuted = write_sequentially(state, weights[:, order], codes[:, order], 0.5)[0][-1]
    assert torch.allclose(permuted.mean, batch.mean, atol=1e-12)
    assert torch.allclose(permuted.covariance, batch.covariance, atol=1e-12)


def test_rank_one_step_kl_equals_exact_matrix_normal_kl():
    gen = generator(3)
    weights, codes = randn(2, 6, 5, gen=gen), randn(2, 6, 4, gen=gen)
    states, _, step_kls = write_sequentially(random_state(gen), weights, codes, 0.8)
    for t in range(6):
        exact = matrix_normal_kl(states[t + 1], states[t].mean, states[t].covariance)
        assert torch.allclose(step_kls[:, t], exact, rtol=1e-10, atol=1e-12)


def test_sum_of_step_kls_is_not_the_total_kl_unless_one_step():
    gen = generator(4)
    prior = random_state(gen, memory_size=8, code_size=5)
    weights, codes = randn(2, 6, 8, gen=gen), randn(2, 6, 5, gen=gen)
    states, _, step_kls = write_sequentially(prior, weights, codes, 1.0)
    total = matrix_normal_kl(states[-1], prior.mean, prior.covariance)
    assert (step_kls.sum(1) - total).abs().min() > 1e-3
    states, _, step_kls = write_sequentially(prior, weights[:, :1], codes[:, :1], 1.0)
    total = matrix_normal_kl(states[-1], prior.mean, prior.covariance)
    assert torch.allclose(step_kls[:, 0], total, rtol=1e-10)


def test_matrix_normal_kl_matches_monte_carlo():
    gen = generator(5)
    posterior = random_state(gen, batch=1, memory_size=4, code_size=3)
    prior_mean = randn(4, 3, gen=gen)
    prior_variance = 0.5 + torch.rand(4, generator=gen, dtype=DTYPE)
    closed = matrix_normal_kl(posterior, prior_mean, prior_variance)
    full_path = matrix_normal_kl(posterior, prior_mean, torch.diag_embed(prior_variance))
    assert torch.allclose(closed, full_path, rtol=1e-12)

    factor = torch.linalg.cholesky(posterior.covariance[0])
    noise = randn(200_000, 4, 3, gen=gen)
    samples = posterior.mean[0] + factor @ noise
    log_q = -0.5 * noise.square().sum((-2, -1)) - 3 * torch.log(factor.diagonal()).sum()
    log_p = -0.5 * ((samples - prior_mean).square() / prior_variance.unsqueeze(-1)).sum((-2, -1))
    log_p = log_p - 1.5 * torch.log(prior_variance).sum()
    monte_carlo = (log_q - log_p).mean()
    assert closed.item() == pytest.approx(monte_carlo.item(), rel=1e-2)


def test_weight_kl_matches_monte_carlo():
    gen = generator(6)
    mean, log_var, prior_log_var = randn(8, gen=gen), torch.tensor(2 * math.log(0.3), dtype=DTYPE), 0.0
    closed = diagonal_gaussian_kl(mean, log_var, 0.0, prior_log_var)
    std = torch.exp(0.5 * log_var)
    samples = mean + std * randn(200_000, 8, gen=gen)
    log_q = (-0.5 * ((samples - mean) / std).square() - torch.log(std)).sum(-1)
    log_p = (-0.5 * samples.square()).sum(-1)
    assert closed.item() == pytest.approx((log_q - log_p).mean().item(), rel=1e-2)


def test_diagonal_logdet_kl_is_a_lower_bound_tight_for_diagonal_covariance():
    gen = generator(7)
    posterior = random_state(gen, memory_size=8, code_size=5)
    prior_mean, prior_variance = randn(8, 5, gen=gen), torch.ones(8, dtype=DTYPE)
    exact = matrix_normal_kl(posterior, prior_mean, prior_variance)
    approximate = diagonal_logdet_matrix_normal_kl(posterior, prior_mean, prior_variance)
    assert (approximate < exact - 1e-6).all()
    diagonal = MatrixNormalState(posterior.mean, torch.diag_embed(posterior.covariance.diagonal(dim1=-2, dim2=-1)))
    assert torch.allclose(
        diagonal_logdet_matrix_normal_kl(diagonal, prior_mean, prior_variance),
        matrix_normal_kl(diagonal, prior_mean, prior_variance),
        rtol=1e-12,
    )


def test_sequential_posterior_covariances_shrink_and_stay_symmetric_psd():
    gen = generator(8)
    weights, codes = 3.0 * randn(2, 20, 6, gen=gen), randn(2, 20, 4, gen=gen)
    states, betas, step_kls = write_sequentially(
        random_state(gen, memory_size=6), weights, codes, 0.1, clip=(1e-6, 1e10)
    )
    assert ((betas >= 0) & (betas < 1)).all()
    assert (step_kls >= -1e-9).all()
    for before, after in itertools.pairwise(states):
        assert torch.equal(after.covariance, after.covariance.mT)
        assert torch.linalg.eigvalsh(after.covariance).min() > -1e-9
        assert torch.linalg.eigvalsh(before.covariance - after.covariance).min() > -1e-9
        trace = after.covariance.diagonal(dim1=-2, dim2=-1).sum(-1)
        assert (trace <= before.covariance.diagonal(dim1=-2, dim2=-1).sum(-1) + 1e-12).all()


def test_diagonal_clipping_only_raises_the_diagonal_and_step_kl_stays_finite():
    state = MatrixNormalState(torch.zeros(1, 2, 3, dtype=DTYPE), torch.eye(2, dtype=DTYPE).unsqueeze(0))
    weight = torch.tensor([[1e4, 0.0]], dtype=DTYPE)
    clipped, beta, step_kl = rank_one_write(state, weight, torch.ones(1, 3, dtype=DTYPE), 1e-12, clip=(1e-6, 1e10))
    assert clipped.covariance[0, 0, 0] == pytest.approx(1e-6)
    assert clipped.covariance[0, 1, 1] == 1.0
    assert (beta <= 1).all() and torch.isfinite(step_kl).all()  # β rounds to 1; its log term must not


def test_ridge_addressing_solves_the_normal_equations():
    gen = generator(9)
    memory, codes, ridge = randn(2, 8, 5, gen=gen), randn(2, 3, 5, gen=gen), 0.7
    weights = ridge_addressing(codes, memory, ridge)
    lhs = (memory @ memory.mT + ridge * torch.eye(8, dtype=DTYPE)) @ weights.mT
    assert torch.allclose(lhs, memory @ codes.mT, atol=1e-12)


def test_gram_form_matches_ridge_only_as_ridge_vanishes():
    gen = generator(10)
    memory, codes = randn(2, 4, 7, gen=gen), randn(2, 3, 7, gen=gen)  # K ≤ C: MMᵀ invertible
    small = 1e-9
    ridge, gram = ridge_addressing(codes, memory, small), gram_regularised_addressing(codes, memory, small)
    assert torch.allclose(gram, ridge, rtol=1e-5, atol=1e-6)
    for shape in ((8, 5), (32, 100)):
        memory, codes = randn(1, *shape, gen=gen), randn(1, 16, shape[1], gen=gen)
        ridge, gram = ridge_addressing(codes, memory, 1.0), gram_regularised_addressing(codes, memory, 1.0)
        assert (gram - ridge).norm() / ridge.norm() > 1e-3


def test_ridge_weights_tend_to_pseudo_inverse_weights():
    gen = generator(11)
    memory, codes = randn(2, 6, 10, gen=gen), randn(2, 4, 10, gen=gen)
    sigma = 1e-4
    ridge = ridge_addressing(codes, memory, sigma**2)
    exact = codes @ torch.linalg.pinv(memory)
    assert (ridge - exact).norm() / exact.norm() < 1e-3


def test_matrix_normal_samples_have_the_right_moments():
    gen = generator(12)
    state = random_state(gen, batch=1, memory_size=3, code_size=2)
    many = MatrixNormalState(state.mean.expand(40_000, 3, 2), state.covariance.expand(40_000, 3, 3))
    samples = sample_matrix_normal(many, generator=gen)
    assert torch.allclose(samples.mean(0), state.mean[0], atol=0.05)
    centred = (samples - state.mean).transpose(1, 2).reshape(-1, 3)  # columns are iid N(R[:, c], U)
    assert torch.allclose(centred.mT @ centred / centred.shape[0], state.covariance[0], atol=0.05)


def test_prior_broadcasts_and_has_zero_kl_to_itself():
    prior = DiagonalMatrixNormalPrior(5, 3, per_slot_variance=True, variance=2.0).double()
    state = prior.state(4)
    assert state.mean.shape == (4, 5, 3) and state.covariance.shape == (4, 5, 5)
    assert torch.allclose(prior.kl(state), torch.zeros(4, dtype=DTYPE), atol=1e-12)
    assert torch.allclose(prior.variance, torch.full((5,), 2.0 + 1e-6, dtype=DTYPE))


def test_per_image_terms_divide_the_memory_kl_by_t_once():
    nll = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=DTYPE)
    kl_item = torch.tensor([[0.5, 0.5, 1.0], [0.0, 1.0, 2.0]], dtype=DTYPE)
    kl_memory = torch.tensor([3.0, 9.0], dtype=DTYPE)
    terms = per_image_terms({"reconstruction": nll, "kl_w": kl_item}, kl_memory)
    expected = ((nll.sum(1) + kl_item.sum(1) + kl_memory) / 3).mean()
    assert sum(terms.values()).item() == pytest.approx(expected.item(), rel=1e-14)
    assert terms["kl_memory"].item() == pytest.approx(2.0)
