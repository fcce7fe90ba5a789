"""Kanerva++-style model: deterministic writer, spatial-transformer reads, smoke tests."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from memorybench import memories
from memorybench.memories import conformance
from memorybench.memories.kanerva_pp import key_to_affine, place_blocks, read_blocks
from memorybench.memories.kl import diagonal_gaussian_head

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
        {"key_std_init": -0.1},
        {"scale_max": 1.5},
        {"scale_min": 0.8, "scale_max": 0.5},
        {"read_from": "memory"},
    ],
)
def test_invalid_config_is_refused(settings):
    with pytest.raises(memories.ConfigError):
        memories.create("kanerva_pp", **settings)


def test_an_item_is_written_where_its_key_reads():
    """Scatter writer: reading at θ_t returns item t's content (resampled), not its neighbours'."""
    corners = torch.tensor([[-2.0, -2.0, -2.0], [-2.0, 2.0, -2.0], [-2.0, -2.0, 2.0], [-2.0, 2.0, 2.0]], dtype=DTYPE)
    theta = key_to_affine(corners.unsqueeze(0), 0.2, 0.4)  # four small, disjoint blocks near the corners
    content = torch.randn(1, 4, 3, 4, 4, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    grid = place_blocks(content, theta, 16)
    assert grid.shape == (1, 3, 16, 16)
    blocks = read_blocks(grid, theta, 4)  # [1, 4, 3, 4, 4]
    similarity = torch.nn.functional.cosine_similarity(
        blocks[0].flatten(1).unsqueeze(1), content[0].flatten(1).unsqueeze(0), dim=-1
    )  # [read t, content s]
    assert (similarity.diagonal() > 0.9).all()  # random contents: other pairs are chance-level (|cos| ≲ 0.3)
    assert (similarity - torch.diag(similarity.diagonal())).abs().max() < 0.35
    # the identity map places and reads a whole-grid item exactly
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=DTYPE).expand(1, 1, 2, 3)
    whole = torch.randn(1, 1, 3, 8, 8, dtype=DTYPE)
    assert torch.allclose(read_blocks(place_blocks(whole, identity, 8), identity, 8), whole, atol=1e-12)


def test_scatter_write_follows_the_key_means():
    """Moving one item's key moves its content: the grid depends on where the keys point."""
    model = make()
    x = episode()
    with torch.no_grad():
        features = model.encode(x)
        grid = model.write_features(features).grid
        model.key_head.bias[:3] += 1.0
        moved = model.write_features(features).grid
    assert (grid - moved).abs().max() > 1e-6


def test_pooled_writer_remains_selectable():
    model = make(writer="pooled")
    with torch.no_grad():
        assert model.write(episode()).grid.shape == (2, 4, 8, 8)


def test_keys_start_precise_so_reads_land_where_items_were_written():
    """key_std_init: q(y|x) starts with σ ≈ 0.1 (≈ 1 with PyTorch's default init, where sampled reads
    miss the small blocks their items were written to and the keys collapse onto the prior)."""
    x = episode()
    for setting, low, high in ((0.1, 0.05, 0.2), (0.0, 0.5, 2.0)):
        model = make(key_std_init=setting)
        with torch.no_grad():
            _, log_var = diagonal_gaussian_head(model.encode(x), model.key_head)
        std = torch.exp(0.5 * log_var).mean().item()
        assert low < std < high, (setting, std)
