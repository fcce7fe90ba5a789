"""Kanerva++-style model: deterministic writer, spatial-transformer reads (MODELS.md §12 items 16–18), smoke tests."""

from __future__ import annotations

from functools import partial

import pytest
import torch

import memories
from memories import conformance
from memories.kanerva_pp import key_to_affine, read_blocks

DTYPE = torch.float64
IMAGE = (1, 8, 8)


def make(**settings):
    torch.manual_seed(0)
    options = dict(
        code_size=6,
        episode_length=5,
        network="mlp",
        hidden_size=16,
        grid_channels=4,
        grid_size=8,
        block_size=4,
        writer_hidden_size=16,
        head_hidden_size=16,
    )
    options.update(settings)
    return memories.create("kanerva_pp", image_shape=IMAGE, **options).to(DTYPE)


episode = partial(conformance.episode, batch=2, length=5, image_shape=IMAGE, density=0.5, dtype=DTYPE)


def test_writer_is_deterministic_and_permutation_invariant():
    model = make()
    x = episode()
    with torch.no_grad():
        grid = model.write(x).grid
        assert grid.shape == (2, 4, 8, 8)
        assert torch.equal(grid, model.write(x).grid)
        assert torch.allclose(grid, model.write(x[:, torch.tensor([4, 2, 0, 3, 1])]).grid, atol=1e-12)


def test_episodes_are_written_independently():
    model = make()
    x = episode()
    perturbed = x.clone()
    perturbed[0] = 1.0 - perturbed[0]
    with torch.no_grad():
        grid, other = model.write(x).grid, model.write(perturbed).grid
    assert torch.allclose(grid[1], other[1], atol=1e-14)


@pytest.mark.parametrize("align_corners", [False, True])
def test_identity_read_of_the_whole_grid_returns_the_grid(align_corners):
    grid = torch.randn(2, 3, 6, 6, dtype=DTYPE)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=DTYPE).expand(2, 4, 2, 3)
    blocks = read_blocks(grid, identity, 6, align_corners)
    assert blocks.shape == (2, 4, 3, 6, 6)
    assert torch.allclose(blocks, grid.unsqueeze(1).expand_as(blocks), atol=1e-12)
    assert torch.allclose(key_to_affine(torch.zeros(2, 4, 3, dtype=DTYPE), 1.0, 1.0), identity)


def test_blocks_stay_inside_the_grid_and_keys_get_gradients():
    keys = (3.0 * torch.randn(2, 5, 3, dtype=DTYPE)).requires_grad_(True)
    theta = key_to_affine(keys, 0.3, 0.9)
    scale, shift = theta[..., 0, 0], theta[..., :, 2]
    assert ((scale >= 0.3) & (scale <= 0.9)).all()
    assert (shift.abs() <= (1.0 - scale).unsqueeze(-1) + 1e-12).all()

    interior = (0.5 * torch.randn(2, 5, 3, dtype=DTYPE)).requires_grad_(True)
    grid = torch.randn(2, 3, 8, 8, dtype=DTYPE)
    blocks = read_blocks(grid, key_to_affine(interior, 0.3, 0.9), 4)
    (blocks * torch.randn_like(blocks)).sum().backward()
    assert torch.isfinite(interior.grad).all() and (interior.grad.abs() > 0).all()


@pytest.mark.parametrize("grid_size", [7, 12, 16])
def test_writer_handles_grid_sizes(grid_size):
    model = make(grid_size=grid_size, block_size=3)
    with torch.no_grad():
        assert model.write(episode()).grid.shape == (2, 4, grid_size, grid_size)


def test_loss_reaches_every_parameter():
    model = make()
    model.loss(episode()).total.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("read_from", ["prior", "posterior"])
def test_protocol_shapes(read_from):
    model = make(read_from=read_from)
    assert model.latent_memory is None and not model.has_memory_prior
    x, queries = episode(), episode(length=3, seed=1)
    with torch.no_grad():
        state = model.write(x)
        assert model.read(queries, state).mean.shape == (2, 3, *IMAGE)
        assert torch.equal(model.read(queries, state).mean, model.read(queries, state).mean)
        bound = model.neg_elbo(x, queries)
        assert bound.cond.shape == (2, 3) and bound.full is None
        assert model.sample(state, 4, steps=2).shape == (2, 4, *IMAGE)
        assert len(model.iterative_read(queries, state, 3)) == 3
        assert model.energy(queries, state).shape == (2, 3)


def test_neg_elbo_kls_are_non_negative_and_loss_is_the_per_image_bound():
    model, x = make(), episode()
    torch.manual_seed(2)
    loss = model.loss(x)
    torch.manual_seed(2)
    with torch.no_grad():
        bound = model.neg_elbo(x)
    assert (bound.terms["kl_z"] >= -1e-9).all() and (bound.terms["kl_y"] >= -1e-9).all()
    assert (bound.cond >= bound.terms["reconstruction"]).all()
    assert loss.total.item() == pytest.approx(bound.cond.mean().item(), rel=1e-12)


@pytest.mark.parametrize(
    "settings",
    [
        {"block_size": 20, "grid_size": 16},
        {"grid_channels": 0},
        {"block_size": 0},
        {"scale_min": 0.0},
        {"scale_max": 1.5},
        {"scale_min": 0.8, "scale_max": 0.5},
        {"read_from": "memory"},
    ],
)
def test_invalid_config_is_refused(settings):
    with pytest.raises(memories.ConfigError):
        memories.create("kanerva_pp", **settings)
