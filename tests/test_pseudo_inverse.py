"""Ben-Israel–Cohen and the other pseudo-inverse backends (docs/models/gpm.md; float64 properties)."""

from __future__ import annotations

import pytest
import torch

from memorybench.memories.linalg import ben_israel_cohen, pseudo_inverse, ridge_pseudo_inverse, safe_bic_alpha


def gaussian(m: int, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(m, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def sigma_max_sq(a: torch.Tensor) -> float:
    return float(torch.linalg.svdvals(a)[0] ** 2)


@pytest.mark.parametrize("shape", [(32, 100), (8, 5), (16, 16)])
def test_converges_to_pinv_below_the_bound(shape: tuple[int, int]) -> None:
    a = gaussian(*shape)
    estimate = ben_israel_cohen(a, 1.0 / sigma_max_sq(a), steps=40)
    assert torch.allclose(estimate, torch.linalg.pinv(a), atol=1e-10)


def test_diverges_above_the_bound() -> None:
    a = gaussian(32, 100)
    estimate = ben_israel_cohen(a, 2.1 / sigma_max_sq(a), steps=30)
    assert not torch.isfinite(estimate).all() or estimate.abs().max() > 1e6


@pytest.mark.parametrize("steps", [0, 1, 3, 7])
def test_matches_the_spectral_filter_closed_form(steps: int) -> None:
    a = gaussian(12, 20)
    alpha = 0.5 / sigma_max_sq(a)
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    filtered = (1 - (1 - alpha * s**2) ** (2**steps)) / s
    closed_form = vh.mT @ torch.diag(filtered) @ u.mT
    assert torch.allclose(ben_israel_cohen(a, alpha, steps), closed_form, atol=1e-12)


def test_iterates_keep_xa_symmetric_and_residuals_shrink() -> None:
    a = gaussian(10, 14)
    alpha = 1.0 / sigma_max_sq(a)
    s = torch.linalg.svdvals(a)
    previous = torch.ones_like(s)
    for steps in range(6):
        x = ben_israel_cohen(a, alpha, steps)
        assert torch.allclose(x @ a, (x @ a).mT, atol=1e-12)
        residual = (1 - alpha * s**2) ** (2**steps)
        assert (residual <= previous + 1e-15).all()
        previous = residual


def test_penrose_conditions_at_convergence() -> None:
    a = gaussian(9, 15)
    x = pseudo_inverse(a, "bic_safe", steps=40)
    assert torch.allclose(a @ x @ a, a, atol=1e-10)
    assert torch.allclose(x @ a @ x, x, atol=1e-10)
    assert torch.allclose(a @ x, (a @ x).mT, atol=1e-10)
    assert torch.allclose(x @ a, (x @ a).mT, atol=1e-10)


def test_safe_alpha_is_below_the_convergence_bound_for_a_batch() -> None:
    batch = torch.stack([gaussian(6, 9, seed) * scale for seed, scale in [(1, 1.0), (2, 100.0), (3, 0.01)]])
    alpha = safe_bic_alpha(batch).squeeze(-1).squeeze(-1)
    bounds = torch.tensor([1.0 / sigma_max_sq(m) for m in batch], dtype=torch.float64)
    assert (alpha <= bounds).all()
    estimate = pseudo_inverse(batch, "bic_safe", steps=60)
    assert torch.allclose(estimate, torch.linalg.pinv(batch), rtol=1e-6, atol=1e-8)


def test_ridge_tends_to_pinv_and_exact_is_pinv() -> None:
    a = gaussian(8, 20)
    assert torch.allclose(ridge_pseudo_inverse(a, 1e-10), torch.linalg.pinv(a), atol=1e-7)
    assert torch.allclose(pseudo_inverse(a, "exact"), torch.linalg.pinv(a))


def test_paper_alpha_under_inverts_a_square_gaussian() -> None:
    """The public code's setting: α = 5e-4, 7 steps on a 32×32 Gaussian is far from the true pinv."""
    a = gaussian(32, 32, seed=0)
    truncated = ben_israel_cohen(a, 5e-4, 7)
    exact = torch.linalg.pinv(a)
    assert torch.linalg.norm(truncated - exact) / torch.linalg.norm(exact) > 0.5


def test_unknown_method_is_rejected() -> None:
    with pytest.raises(ValueError, match="bic_safe"):
        pseudo_inverse(gaussian(3, 3), "newton")


def test_cholesky_jitter_only_touches_the_failing_matrices() -> None:
    from memorybench.memories.linalg import cholesky_with_jitter

    good = gaussian(4, 6, seed=2)
    spd = torch.stack([good @ good.mT, torch.zeros(4, 4, dtype=torch.float64)])
    factor = cholesky_with_jitter(spd)
    assert torch.equal(factor[0], torch.linalg.cholesky(spd[0]))
    assert torch.isfinite(factor[1]).all() and (factor[1].diagonal() > 0).all()
