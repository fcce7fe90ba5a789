"""The reference network option and the GPM parity script (seconds, CPU, tiny random data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from memorybench import memories
from memorybench.benchmarks.parity import gpm_parity
from memorybench.benchmarks.parity.reference_gpm import ReferenceGPM, code_layout, public_test_loss
from memorybench.memories.configuration import ConfigError
from memorybench.memories.networks import NetworkConfig, build_decoder, build_encoder


def test_reference_network_shapes() -> None:
    config = NetworkConfig(kind="reference", channels=4)
    encoder = build_encoder(config, (1, 28, 28), 10)
    decoder = build_decoder(config, 10, (1, 28, 28), 3)
    codes = encoder(torch.rand(5, 1, 28, 28))
    assert codes.shape == (5, 10)
    assert decoder(codes).shape == (5, 3, 28, 28)
    with pytest.raises(ValueError, match="28×28 images"):
        build_encoder(config, (1, 32, 32), 10)


def test_reference_groupnorm_scores_do_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    config = NetworkConfig(kind="reference_groupnorm", channels=4)
    encoder, decoder = build_encoder(config, (1, 28, 28), 6), build_decoder(config, 6, (1, 28, 28), 1)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in [*encoder.modules(), *decoder.modules()])
    images = torch.rand(4, 1, 28, 28)
    alone = decoder(encoder(images[:1]))  # training mode: GroupNorm normalises each image on its own
    together = decoder(encoder(images))[:1]
    assert torch.allclose(alone, together, atol=1e-5)


def test_default_network_is_unchanged() -> None:
    """Parameter counts of today's default conv networks (a guard against accidental edits)."""
    model = memories.create("gpm", code_size=100, memory_size=32)
    assert sum(p.numel() for p in model.encoder.parameters()) == 25_780
    assert sum(p.numel() for p in model.decoder.parameters()) == 25_841


def test_any_model_selects_the_reference_network() -> None:
    model = memories.create("gpm", network="reference", code_size=8, memory_size=4, episode_length=3, channels=4)
    episode = (torch.rand(2, 3, 1, 28, 28) > 0.5).float()
    model.loss(episode).total.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    vae = memories.create("vae", network="reference", code_size=8, episode_length=3, channels=4)
    assert vae.neg_elbo(episode).cond.shape == (2, 3)
    with pytest.raises(ConfigError, match="network"):
        memories.create("gpm", network="resnet")


def test_reference_test_loss_leaves_the_model_unchanged() -> None:
    torch.manual_seed(0)
    reference = ReferenceGPM(memory_size=4, code_size=8, channels=4)
    images = code_layout((torch.rand(2, 3, 1, 28, 28) > 0.5).float())
    before = {name: buffer.clone() for name, buffer in reference.state_dict().items()}
    value = public_test_loss(reference, [images], episode_length=3)
    assert value > 0 and reference.training
    assert all(torch.equal(before[name], buffer) for name, buffer in reference.state_dict().items())


def test_both_sides_see_the_same_episodes() -> None:
    chunk = torch.arange(12)
    episodes = gpm_parity.chunk_episodes(chunk, episodes=3)  # [B=3, T=4]
    assert episodes.tolist() == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    images = torch.arange(12.0).view(12, 1, 1, 1).expand(12, 1, 28, 28)[episodes]  # [B, T, 1, 28, 28]
    assert torch.equal(code_layout(images)[:, 0], chunk.float())  # the reference's rows: the chunk


def write_amat(path: Path, count: int, generator: torch.Generator) -> None:
    bits = (torch.rand(count, 784, generator=generator) > 0.7).int()
    path.write_text("\n".join(" ".join(map(str, row.tolist())) for row in bits) + "\n")


def test_parity_run_ends_with_one_json_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "binarized_mnist"
    folder.mkdir()
    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", 48), ("valid", 8), ("test", 24)):
        write_amat(folder / f"binarized_mnist_{split}.amat", count, generator)
    argv = ["--data-root", str(tmp_path), "--steps", "3", "--eval-every", "2", "--episodes", "2"]
    argv += ["--episode-length", "4", "--memory-size", "4", "--code-size", "8", "--channels", "4"]
    returned = gpm_parity.main([*argv, "--set", "network=reference"])
    output = capsys.readouterr().out
    result = json.loads(output.strip().splitlines()[-1])
    assert result == json.loads(json.dumps(returned))
    assert result["steps"] == 3 and result["settings"]["test_episodes"] == 6
    assert [row["step"] for row in result["curves"]["ours"]] == [2, 3]
    assert {"reference", "reference_eval", "ours"} <= result["curves"].keys()
    assert result["final_gap"] == pytest.approx(result["final"]["ours"] - result["final"]["reference"])
    assert result["settings"]["ours"]["network"] == "reference"
