"""Shared likelihoods and closed-form KLs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from memorybench.memories.kl import diagonal_gaussian_kl, standard_normal_kl
from memorybench.memories.likelihoods import Bernoulli, LogisticMixture, nats_to_bits_per_dim
from memorybench.memories.protocol import binarize


def test_bernoulli_log_prob_sums_pixels_from_logits() -> None:
    logits = torch.randn(2, 3, 1, 4, 4, dtype=torch.float64)
    x = (torch.rand(2, 3, 1, 4, 4) < 0.5).double()
    p = torch.sigmoid(logits)
    manual = (x * torch.log(p) + (1 - x) * torch.log1p(-p)).flatten(-3).sum(-1)
    assert torch.allclose(Bernoulli(1)(logits).log_prob(x), manual)


def test_bernoulli_stays_finite_when_saturated() -> None:
    logits = torch.full((1, 1, 1, 2, 2), 80.0)
    assert torch.isfinite(Bernoulli(1)(logits).log_prob(torch.zeros(1, 1, 1, 2, 2))).all()


def test_logistic_mixture_is_a_distribution_over_the_256_levels() -> None:
    """For one grey pixel, the probabilities of all 256 values sum to one."""
    likelihood = LogisticMixture(image_channels=1, n_mix=3)
    params = torch.randn(1, likelihood.param_channels, 1, 1, dtype=torch.float64)
    levels = torch.arange(256, dtype=torch.float64).view(256, 1, 1, 1) / 255.0
    log_probs = likelihood(params.expand(256, -1, -1, -1)).log_prob(levels)
    assert math.isclose(float(torch.logsumexp(log_probs, 0).exp()), 1.0, rel_tol=1e-6)


def test_logistic_mixture_rgb_shapes_and_samples_are_8_bit() -> None:
    likelihood = LogisticMixture(image_channels=3)
    params = torch.randn(2, 5, likelihood.param_channels, 4, 4)
    distribution = likelihood(params)
    images = distribution.sample(torch.Generator().manual_seed(0))
    assert images.shape == (2, 5, 3, 4, 4)
    assert torch.allclose(images * 255, (images * 255).round(), atol=1e-4)
    assert distribution.log_prob(images).shape == (2, 5)
    assert distribution.mean.shape == (2, 5, 3, 4, 4)


def test_bits_per_dim_conversion() -> None:
    assert math.isclose(nats_to_bits_per_dim(3072 * math.log(2) * 3.5, 3072), 3.5)


def test_diagonal_gaussian_kl_matches_monte_carlo() -> None:
    generator = torch.Generator().manual_seed(0)
    mean_q, log_var_q = (
        torch.randn(6, generator=generator, dtype=torch.float64),
        0.5 * torch.randn(6, generator=generator, dtype=torch.float64),
    )
    mean_p, log_var_p = (
        torch.randn(6, generator=generator, dtype=torch.float64),
        0.5 * torch.randn(6, generator=generator, dtype=torch.float64),
    )
    closed = float(diagonal_gaussian_kl(mean_q, log_var_q, mean_p, log_var_p))
    q = torch.distributions.Normal(mean_q, torch.exp(0.5 * log_var_q))
    p = torch.distributions.Normal(mean_p, torch.exp(0.5 * log_var_p))
    torch.manual_seed(1)
    samples = q.sample((400_000,))
    monte_carlo = float((q.log_prob(samples) - p.log_prob(samples)).sum(-1).mean())
    assert math.isclose(closed, monte_carlo, rel_tol=0.01)
    assert torch.allclose(standard_normal_kl(mean_q, log_var_q), diagonal_gaussian_kl(mean_q, log_var_q, 0.0, 0.0))


def test_kl_is_non_negative_and_zero_at_equality() -> None:
    mean, log_var = torch.randn(100, 5, dtype=torch.float64), torch.randn(100, 5, dtype=torch.float64)
    assert (standard_normal_kl(mean, log_var) >= 0).all()
    assert torch.allclose(diagonal_gaussian_kl(mean, log_var, mean, log_var), torch.zeros(100, dtype=torch.float64))


def test_binarize_is_a_threshold_comparison() -> None:
    x = torch.rand(3, 50, dtype=torch.float64)
    assert torch.equal(binarize(x, 0.3), (x >= 0.3).double())
    assert F.relu(binarize(x) - 1).sum() == 0
