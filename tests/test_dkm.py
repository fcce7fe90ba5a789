"""Dynamic Kanerva Machine: write-loop properties and smoke tests."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from memorybench import memories
from memorybench.memories import conformance
from memorybench.memories.gaussian_memory import (
    batch_write,
    diagonal_logdet_matrix_normal_kl,
    gram_regularised_addressing,
    ridge_addressing,
)

DTYPE = torch.float64
IMAGE = (1, 8, 8)


def make(**settings):
    torch.manual_seed(0)
    options = dict(code_size=6, memory_size=4, episode_length=5, network="mlp", hidden_size=16)
    options.update(settings)
    return memories.create("dkm", image_shape=IMAGE, **options).to(DTYPE)


episode = partial(conformance.episode, batch=2, length=5, image_shape=IMAGE, density=0.5, dtype=DTYPE)


codes = partial(conformance.codes, batch=2, length=5, size=6, dtype=DTYPE)


def test_dynamic_write_is_order_dependent():
    memory = make().memory
    z = codes()
    state = memory.write(z)
    permuted = memory.write(z.flip(1))
    assert (state.mean - permuted.mean).abs().max() > 1e-6
    assert (state.covariance - permuted.covariance).abs().max() > 1e-6


def test_single_item_write_equals_the_batch_update_at_the_mean_address():
    memory = make().memory
    z = codes(length=1)
    prior = memory.prior.state(2)
    weights = ridge_addressing(z, prior.mean, memory.ridge)
    expected = batch_write(prior, weights, z, memory.noise_var)
    state = memory.write(z)
    assert torch.allclose(state.mean, expected.mean, atol=1e-12)
    assert torch.allclose(state.covariance, expected.covariance, atol=1e-12)


def test_write_diagnostics_are_valid():
    memory = make(memory_size=8).memory
    state, betas, step_kls = memory.write_with_diagnostics(codes(length=12))
    assert betas.shape == step_kls.shape == (2, 12)
    assert ((betas >= 0) & (betas < 1)).all() and (step_kls >= 0).all()
    assert torch.equal(state.covariance, state.covariance.mT)
    assert torch.linalg.eigvalsh(state.covariance).min() > 0


def test_checkpointed_write_matches_plain_write_in_value_and_gradient():
    z = codes(length=7).requires_grad_(True)
    results = []
    for chunk in (0, 3):
        memory = make(checkpoint_steps=chunk, learn_write_noise=True).memory
        state = memory.write(z)
        loss = state.mean.square().sum() + memory.kl(state).sum()
        grads = torch.autograd.grad(loss, [z, memory.prior.mean, memory.log_noise_std])
        results.append((state.mean, state.covariance, grads))
    (mean_a, cov_a, grads_a), (mean_b, cov_b, grads_b) = results
    assert torch.allclose(mean_a, mean_b, atol=1e-12) and torch.allclose(cov_a, cov_b, atol=1e-12)
    for grad_a, grad_b in zip(grads_a, grads_b, strict=True):
        assert torch.allclose(grad_a, grad_b, atol=1e-10)


def test_episodes_are_written_independently():
    memory = make().memory
    z = codes()
    perturbed = z.clone()
    perturbed[0] += 1.0
    state, other = memory.write(z), memory.write(perturbed)
    assert torch.allclose(state.mean[1], other.mean[1], atol=1e-14)
    assert (state.mean[0] - other.mean[0]).abs().max() > 1e-3


def test_compat_addressing_and_refinement_options():
    memory = make(addressing="dkm_tf_compat").memory
    z, table = codes(), torch.randn(2, 4, 6, dtype=DTYPE)
    assert torch.allclose(memory.address(z, table), gram_regularised_addressing(z, table, 1.0), atol=1e-12)
    refined = make(write_iterations=3).memory.write(z)
    assert (refined.mean - make().memory.write(z).mean).abs().max() > 1e-6


def test_training_memory_kl_compat_is_twice_the_diagonal_logdet_kl():
    memory = make(training_memory_kl="dkm_tf_compat").memory
    state = memory.write(codes())
    expected = 2.0 * diagonal_logdet_matrix_normal_kl(state, memory.prior.mean, memory.prior.variance)
    assert torch.allclose(memory.training_kl(state), expected)
    assert (memory.kl(state) > 0).all()


def test_latent_memory_read_shapes_and_mean_read_is_deterministic():
    model = make()
    assert model.latent_memory is model.memory
    state = model.memory.write(codes())
    queries = codes(length=3, seed=1)
    mean_read = model.memory.read(queries, state, sample=False)
    assert mean_read.shape == (2, 3, 6)
    assert torch.equal(mean_read, model.memory.read(queries, state, sample=False))
    assert not torch.equal(mean_read, model.memory.read(queries, state, sample=True))


def test_loss_reaches_every_parameter():
    model = make(learn_write_noise=True, sample_memory=True)
    model.loss(episode()).total.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_protocol_shapes():
    model = make()
    x, queries = episode(), episode(length=3, seed=1)
    with torch.no_grad():
        state = model.write(x)
        assert state.mean.shape == (2, 4, 6) and state.covariance.shape == (2, 4, 4)
        assert model.read(queries, state).mean.shape == (2, 3, *IMAGE)
        assert torch.equal(model.read(queries, state).mean, model.read(queries, state).mean)
        assert model.neg_elbo(x, queries).cond.shape == (2, 3)
        assert model.sample(state, 4, steps=2).shape == (2, 4, *IMAGE)
        assert len(model.iterative_read(queries, state, 3)) == 3
        assert model.energy(queries, state).shape == (2, 3)


def test_neg_elbo_ordering_and_no_autoencoder_term():
    model = make()
    with torch.no_grad():
        bound = model.neg_elbo(episode())
    assert "autoencoder" not in bound.terms
    assert bound.full is not None
    assert (bound.terms["kl_w"] >= -1e-9).all() and (bound.terms["kl_memory"] >= -1e-9).all()
    assert (bound.full >= bound.cond).all() and (bound.cond >= bound.terms["reconstruction"]).all()
    assert torch.allclose(bound.cond, bound.terms["reconstruction"] + bound.terms["kl_w"])


def test_loss_is_the_full_bound_per_image_plus_the_autoencoder_term():
    model, x = make(), episode()
    model.eval()  # a training-mode loss would also move the moment-matched σ_0 before neg_elbo reads it
    torch.manual_seed(3)
    loss = model.loss(x)
    torch.manual_seed(3)
    bound = model.neg_elbo(x)
    assert loss.total.item() == pytest.approx((bound.full.mean() + loss.terms["autoencoder"]).item(), rel=1e-12)
    assert loss.terms["kl_memory"].item() == pytest.approx(
        (model.memory.kl(model.write(x)) / 5).mean().item(), rel=1e-12
    )


def test_moment_matched_weight_prior_minimises_the_weight_kl():
    """σ_0² ← σ_w² + mean μ² (momentum 0) is the σ_0 at which the batch's mean KL(q(w) ‖ N(0, σ_0² I)) is
    smallest; it only moves in training mode and is saved with the model."""
    model, x = make(weight_prior="moment_matched", weight_prior_momentum=0.0), episode()
    memory = model.memory
    assert "memory.log_weight_prior_var" in model.state_dict()
    model.eval()
    with torch.no_grad():
        model.loss(x)
        assert memory.weight_prior_std.item() == pytest.approx(1.0)
        means = memory.address(model.encode(x), model.write(x).mean)  # at σ_0 = 1, as the loss sees them
        model.train()
        model.loss(x)
    variance = torch.exp(memory.log_weight_var) + means.square().mean()
    assert memory.weight_prior_std.item() ** 2 == pytest.approx(variance.item(), rel=1e-12)

    def mean_kl(prior_variance):
        memory.log_weight_prior_var = torch.log(torch.as_tensor(prior_variance, dtype=DTYPE))
        return memory.weight_kl(means).mean().item()

    matched = mean_kl(variance)
    for other in (0.8 * variance, 1.25 * variance, torch.tensor(1.0, dtype=DTYPE)):
        assert matched <= mean_kl(other) + 1e-12


def test_moment_matched_training_lowers_the_weight_kl_at_equal_reconstruction():
    """The read-outs do not depend on σ_0's scale; only the KL does (the symmetry the default exploits)."""
    model, x = make(weight_prior_std=1.0), episode()
    with torch.no_grad():
        state = model.write(x)
        means = model.memory.address(model.encode(x), state.mean)
        kl_fixed = model.memory.weight_kl(means).mean()
        matched = torch.exp(model.memory.log_weight_var) + means.square().mean()
        model.memory.log_weight_prior_var = torch.log(matched)
        kl_matched = model.memory.weight_kl(means).mean()
    assert kl_matched < kl_fixed


@pytest.mark.parametrize(
    "settings",
    [
        {"weight_prior_momentum": 1.0},
        {"weight_prior": "learned"},
        {"write_noise_std": 0.0},
        {"addressing": "lstsq"},
        {"checkpoint_steps": -1},
        {"read_weight_std": -1.0},
        {"memory_size": 0},
    ],
)
def test_invalid_config_is_refused(settings):
    with pytest.raises(memories.ConfigError):
        memories.create("dkm", **settings)


def test_nelbo_full_is_flagged_unless_the_memory_is_sampled():
    """Decoding from the mean memory is not an estimate of the bound's expectation over q(M)."""
    mean_memory = memories.create("dkm", image_shape=(1, 8, 8), code_size=4, memory_size=3, network="mlp")
    sampled = memories.create(
        "dkm", image_shape=(1, 8, 8), code_size=4, memory_size=3, network="mlp", sample_memory=True
    )
    assert "sample_memory: false" in str(mean_memory.bound_caveat) and sampled.bound_caveat is None
