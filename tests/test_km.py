"""Kanerva Machine: exchangeable batch write, bound sanity and normalisation (MODELS.md §12) and smoke tests."""

from __future__ import annotations

from functools import partial

import pytest
import torch

import memories
from memories import conformance
from memories.gaussian_memory import rank_one_write

DTYPE = torch.float64
IMAGE = (1, 8, 8)


def make(**settings):
    torch.manual_seed(0)
    options = dict(code_size=6, memory_size=4, episode_length=5, network="mlp", hidden_size=16, head_hidden_size=16)
    options.update(settings)
    return memories.create("km", image_shape=IMAGE, **options).to(DTYPE)


episode = partial(conformance.episode, batch=2, length=5, image_shape=IMAGE, density=0.5, dtype=DTYPE)


codes = partial(conformance.codes, batch=2, length=5, size=6, dtype=DTYPE)


def test_write_is_exchangeable():
    model = make()
    x = episode()
    with torch.no_grad():
        state, permuted = model.write(x), model.write(x[:, torch.tensor([3, 0, 4, 1, 2])])
    assert torch.allclose(state.mean, permuted.mean, atol=1e-12)
    assert torch.allclose(state.covariance, permuted.covariance, atol=1e-12)


def test_latent_write_equals_item_by_item_bayesian_updates():
    memory = make().memory
    z = codes()
    state = memory.write(z)
    weights = memory.weights(memory.key_posterior(z)[0])
    sequential = memory.prior.state(2)
    for t in range(5):
        sequential = rank_one_write(sequential, weights[:, t], z[:, t], memory.noise_var, clip=None)[0]
    assert torch.allclose(state.mean, sequential.mean, atol=1e-12)
    assert torch.allclose(state.covariance, sequential.covariance, atol=1e-12)
    assert torch.linalg.eigvalsh(state.covariance).min() > 0


def test_latent_memory_shapes_and_mean_read_is_deterministic():
    model = make(address_size=3)
    assert model.latent_memory is model.memory
    state = model.memory.write(codes())
    assert state.mean.shape == (2, 4, 6) and state.covariance.shape == (2, 4, 4)
    queries = codes(length=3, seed=1)
    mean_read = model.memory.read(queries, state, sample=False)
    assert mean_read.shape == (2, 3, 6)
    assert torch.equal(mean_read, model.memory.read(queries, state, sample=False))
    assert not torch.equal(mean_read, model.memory.read(queries, state, sample=True))


def test_episodes_are_written_independently():
    model = make()
    x = episode()
    perturbed = x.clone()
    perturbed[0] = 1.0 - perturbed[0]
    with torch.no_grad():
        state, other = model.write(x), model.write(perturbed)
    assert torch.allclose(state.mean[1], other.mean[1], atol=1e-14)
    assert (state.mean[0] - other.mean[0]).abs().max() > 1e-6


def test_loss_reaches_every_parameter():
    model = make()
    model.loss(episode()).total.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_protocol_shapes():
    model = make()
    x, queries = episode(), episode(length=3, seed=1)
    with torch.no_grad():
        state = model.write(x)
        assert model.read(queries, state).mean.shape == (2, 3, *IMAGE)
        assert torch.equal(model.read(queries, state).mean, model.read(queries, state).mean)
        bound = model.neg_elbo(x, queries)
        assert bound.cond.shape == bound.full.shape == (2, 3)
        assert model.sample(state, 4, steps=2).shape == (2, 4, *IMAGE)
        assert len(model.iterative_read(queries, state, 3)) == 3
        assert model.energy(queries, state).shape == (2, 3)


def test_neg_elbo_kls_are_non_negative_and_bounds_are_ordered():
    model = make()
    with torch.no_grad():
        bound = model.neg_elbo(episode())
    for name in ("kl_z", "kl_y", "kl_memory"):
        assert (bound.terms[name] >= -1e-9).all(), name
    assert (bound.full >= bound.cond).all() and (bound.cond >= bound.terms["reconstruction"]).all()
    assert torch.allclose(bound.cond, bound.terms["reconstruction"] + bound.terms["kl_z"] + bound.terms["kl_y"])


def test_loss_is_the_per_image_full_bound():
    """§12.14: loss = mean over episodes of (Σ_t per-item terms + KL(M))/T, no other term."""
    model, x = make(), episode()
    torch.manual_seed(5)
    loss = model.loss(x)
    torch.manual_seed(5)
    bound = model.neg_elbo(x)
    assert loss.total.item() == pytest.approx(bound.full.mean().item(), rel=1e-12)
    per_episode = bound.terms["reconstruction"].sum(1) + bound.terms["kl_z"].sum(1) + bound.terms["kl_y"].sum(1)
    expected = ((per_episode + bound.terms["kl_memory"][:, 0] * 5) / 5).mean()
    assert loss.total.item() == pytest.approx(expected.item(), rel=1e-12)


@pytest.mark.parametrize(
    "settings",
    [
        {"write_noise_std": 0.0},
        {"write_noise_std": -1.0},
        {"address_size": 0},
        {"memory_size": 0},
        {"prior_variance": 0.0},
    ],
)
def test_invalid_config_is_refused(settings):
    with pytest.raises(memories.ConfigError):
        memories.create("km", **settings)
