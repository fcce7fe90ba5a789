"""Iterative reading (the generic loop of ``MemoryModel.iterative_read``): the energy rule is a
descent on every model's energy, ``always`` is the papers' loop, and a short-trained GPM keeps
its stored items instead of drifting away from them (docs/models/gpm.md)."""

from __future__ import annotations

import tempfile

import pytest
import torch

from memorybench import memories
from memorybench.benchmarks.common.datasets import ImageSplit
from memorybench.benchmarks.common.datasets import create as create_dataset
from memorybench.benchmarks.common.metrics import hamming
from memorybench.benchmarks.common.trainer import TrainConfig, train
from memorybench.memories.conformance import small_settings
from memorybench.memories.protocol import binarize

# The K++-style grid and KM's heads need their own small sizes beyond the conformance kit's.
EXTRA_SMALL = {"hidden_size": 16, "address_size": 4, "head_hidden_size": 8, "grid_channels": 4, "grid_size": 4}


def tiny_model(name: str) -> memories.MemoryModel:
    torch.manual_seed(0)
    settings = small_settings(name, block_size=2, writer_hidden_size=8, **EXTRA_SMALL)
    return memories.create(name, **settings).eval()


def binary_episodes(b: int = 2, t: int = 4, seed: int = 0) -> torch.Tensor:
    return (torch.rand(b, t, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


@pytest.mark.parametrize("name", memories.available())
@torch.no_grad()
def test_energy_rule_never_raises_the_energy_of_a_query(name: str) -> None:
    model = tiny_model(name)
    episode = binary_episodes()
    torch.manual_seed(1)
    state = model.write(episode)
    queries = binary_episodes(seed=2)
    trajectory = model.iterative_read(queries, state, steps=6, accept="energy")
    energies = torch.stack([model.energy(model.fed_back(r), state) for r in trajectory])  # [steps, B, Tq]
    assert energies.shape == (6, 2, 4)
    assert bool((energies[1:] <= energies[:-1] + 1e-4 * energies[:-1].abs().clamp(min=1.0)).all())


@torch.no_grad()
def test_always_rule_is_the_plain_feedback_loop() -> None:
    model = tiny_model("gpm")
    state = model.write(binary_episodes())
    current = binary_episodes(seed=2)
    trajectory = model.iterative_read(current, state, steps=3, accept="always", threshold=0.5)
    for reconstruction in trajectory:
        expected = model.read(current, state).mean
        assert torch.allclose(reconstruction.mean, expected)
        current = binarize(expected, 0.5)


def test_an_unknown_rule_is_rejected() -> None:
    model = tiny_model("gpm")
    with pytest.raises(Exception, match="accept"):
        model.iterative_read(binary_episodes(), model.write(binary_episodes()), steps=1, accept="sometimes")


def test_a_short_trained_gpm_keeps_its_stored_items() -> None:
    """Train a small GPM on 32 digits (a few seconds), write episodes of them and read each item
    back for 8 steps: under the energy rule the mean error stays within a pixel of the first
    read's, while the papers' loop drifts away from the stored items step after step."""
    digits = create_dataset("digits").split("train")
    items = ImageSplit(digits.pixels[:32], None)
    torch.manual_seed(0)
    model = memories.create("gpm", code_size=32, episode_length=8, network="mlp", hidden_size=128, memory_size=16)
    with tempfile.TemporaryDirectory() as run_dir:
        config = TrainConfig(steps=150, batch_episodes=8, learning_rate=3e-3, checkpoint_every=10**6)
        train(model, items, config, run_dir, progress=False)
    episodes = items.images(torch.arange(32).view(4, 8))
    with torch.no_grad():
        state = model.write(episodes)
        plain = model.iterative_read(episodes, state, steps=8, accept="always")
        descent = model.iterative_read(episodes, state, steps=8, accept="energy")
        plain_errors = [float(hamming(model.fed_back(r), episodes).double().mean()) for r in plain]
        errors = [float(hamming(model.fed_back(r), episodes).double().mean()) for r in descent]
    assert errors[-1] <= errors[0] + 1.0  # the papers' loop drifts by ~8 pixels here
    assert errors[-1] < plain_errors[-1]
