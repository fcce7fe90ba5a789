"""GPM's math (docs/models/gpm.md) and its two modes."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from memorybench import memories
from memorybench.memories.gpm import GPMConfig, PseudoInverseMemory
from memorybench.memories.linalg import ridge_pseudo_inverse

K, C = 32, 100


def latent_memory(**settings: object) -> PseudoInverseMemory:
    torch.manual_seed(0)
    config = GPMConfig(memory_size=K, code_size=C, **settings)  # type: ignore[arg-type]
    return PseudoInverseMemory(config).double()


def codes(t: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, t, C, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b).detach() / torch.linalg.norm(b).detach())


def test_exact_retrieval_without_write_noise() -> None:
    memory = latent_memory(pseudo_inverse="exact", write_noise_std=0.0)
    z = codes(16)
    assert relative_error(memory.read(z, memory.write(z), sample=False), z) < 1e-10


def test_noisy_write_clean_query_is_not_exact_but_the_written_codes_are() -> None:
    memory = latent_memory(pseudo_inverse="exact", write_noise_std=0.5)
    z = codes(16)
    torch.manual_seed(5)
    noise = 0.5 * torch.randn_like(z)
    torch.manual_seed(5)
    state = memory.write(z)
    assert relative_error(memory.read(z + noise, state, sample=False), z + noise) < 1e-10
    assert relative_error(memory.read(z, state, sample=False), z) > 0.2


def test_more_items_than_slots_breaks_exactness() -> None:
    memory = latent_memory(pseudo_inverse="exact", write_noise_std=0.0)
    z = codes(64)
    assert relative_error(memory.read(z, memory.write(z), sample=False), z) > 0.2


def test_ridge_addressing_tends_to_gpm_addressing() -> None:
    """GPM Theorem D.5: Z Mᵀ(MMᵀ + σ²I)⁻¹ -> Z M⁺ as σ -> 0."""
    memory_matrix = codes(K, seed=3)[0]  # [K, C], well conditioned
    z = codes(8, seed=4)[0]
    ridge = z @ ridge_pseudo_inverse(memory_matrix, 1e-8)
    assert relative_error(ridge, z @ torch.linalg.pinv(memory_matrix)) < 1e-3


def test_paper_mode_weight_noise_is_per_entry_and_code_compat_shares_one_scalar() -> None:
    mean = torch.zeros(2, 5, K, dtype=torch.float64)
    paper = latent_memory().sample_weights(mean)
    compat = latent_memory(mode="code_compat").sample_weights(mean)
    assert paper.unique().numel() > 1
    assert compat.unique().numel() == 1


def test_code_compat_defaults_to_the_reference_alpha() -> None:
    assert GPMConfig().alpha == 1e-3
    assert GPMConfig(mode="code_compat").alpha == 5e-4
    assert GPMConfig(mode="code_compat", pseudo_inverse_alpha=2e-3).alpha == 2e-3


def test_weight_kl_matches_the_closed_form() -> None:
    memory = latent_memory(read_weight_std=0.7)
    mean = torch.randn(3, 4, K, dtype=torch.float64)
    var = 0.49
    expected = 0.5 * (K * var + mean.square().sum(-1) - K - K * torch.log(torch.tensor(var, dtype=torch.float64)))
    assert torch.allclose(memory.weight_kl(mean), expected, atol=1e-6)


def test_stored_items_are_fixed_points_of_the_code_map() -> None:
    """§12.19: with exact pinv and σ_ξ = 0, reading a stored item returns d(e(x))."""
    torch.manual_seed(0)
    model = (
        memories.create(
            "gpm",
            code_size=16,
            memory_size=8,
            episode_length=4,
            network="mlp",
            hidden_size=32,
            pseudo_inverse="exact",
            write_noise_std=0.0,
        )
        .double()
        .eval()
    )
    x = (torch.rand(2, 4, 1, 28, 28) < 0.3).double()
    with torch.no_grad():
        state = model.write(x)
        through_memory = model.read(x, state).mean
        autoencoded = model.decode_items(model.decoder, model.encode(x)).mean
    assert torch.allclose(through_memory, autoencoded, atol=1e-8)


def test_nelbo_cond_adds_reconstruction_and_weight_kl_and_excludes_the_autoencoder_term() -> None:
    torch.manual_seed(0)
    model = memories.create("gpm", code_size=8, memory_size=4, episode_length=4, network="mlp", hidden_size=16).double()
    x = (torch.rand(2, 4, 1, 28, 28) < 0.3).double()
    result = model.neg_elbo(x)
    assert set(result.terms) == {"reconstruction", "kl_w"}
    assert torch.allclose(result.cond, result.terms["reconstruction"] + result.terms["kl_w"])
    assert result.full is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("memory_size", 0), ("pseudo_inverse", "svd"), ("write_noise_std", -1.0), ("mode", "faithful"), ("code_size", -3)],
)
def test_impossible_configs_are_refused(key: str, value: object) -> None:
    with pytest.raises(memories.ConfigError, match=key):
        memories.create("gpm", **{key: value})


# ----------------------------------------------------------------------------- defaults (issue 9)
GPM_DOC = Path(__file__).resolve().parents[1] / "docs" / "models" / "gpm.md"


def documented_defaults() -> dict[str, tuple[str, str, str]]:
    """The defaults table of docs/models/gpm.md: setting -> (paper mode, strict paper, code_compat)."""
    rows = {}
    for line in GPM_DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`(\w+)`[^|]*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3), match.group(4))
    return rows


def test_the_defaults_are_the_documented_ones() -> None:
    rows = documented_defaults()
    paper, compat = GPMConfig(), GPMConfig(mode="code_compat")
    assert float(rows["read_weight_std"][0]) == paper.initial_read_weight_std == 0.3
    assert float(rows["read_weight_std"][2]) == compat.initial_read_weight_std == 1.0
    assert float(rows["pseudo_inverse_alpha"][0]) == paper.alpha == 1e-3
    assert float(rows["pseudo_inverse_alpha"][2]) == compat.alpha == 5e-4
    assert float(rows["write_noise_std"][0]) == paper.write_noise_std
    assert int(rows["pseudo_inverse_steps"][0]) == paper.pseudo_inverse_steps


def test_the_strict_paper_values_stay_selectable() -> None:
    rows = documented_defaults()
    strict = GPMConfig(read_weight_std=float(rows["read_weight_std"][1]))
    assert strict.initial_read_weight_std == 1.0 and strict.alpha == float(rows["pseudo_inverse_alpha"][1]) == 1e-3
    assert float(PseudoInverseMemory(strict).log_var_w.detach()) == 0.0  # ln σ_W² = 0, as in the public code
    default = latent_memory()
    assert math.isclose(float(torch.exp(0.5 * default.log_var_w.detach())), 0.3, rel_tol=1e-6)  # a float32 parameter


def test_code_compat_declares_its_shared_noise_and_that_its_number_is_no_bound() -> None:
    tiny: dict[str, Any] = {"code_size": 8, "memory_size": 4, "episode_length": 4, "network": "mlp", "hidden_size": 16}
    paper, compat = memories.create("gpm", **tiny), memories.create("gpm", mode="code_compat", **tiny)
    assert not paper.noise_shared_across_episodes and paper.bound_caveat is None
    assert compat.noise_shared_across_episodes and "not a valid bound" in str(compat.bound_caveat)
