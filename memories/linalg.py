"""Pseudo-inverses and SPD solves shared by the memory models (batched over leading dims).

All functions act on the last two dimensions and broadcast over the rest, so ``[B, m, n]``
batches of per-episode matrices need no loops.
"""

from __future__ import annotations

import torch
from torch import Tensor

PSEUDO_INVERSES = ("bic", "bic_safe", "ridge", "exact")


def ben_israel_cohen(matrix: Tensor, alpha: float | Tensor, steps: int) -> Tensor:
    """Truncated Ben-Israel–Cohen (Newton–Schulz) pseudo-inverse ``[..., m, n] -> [..., n, m]``.

    X₀ = αAᵀ, X_{i+1} = 2X_i − X_i A X_i. After k steps this is the spectral filter
    g_k(σ) = [1 − (1 − ασ²)^{2^k}]/σ (docs/models/gpm.md); it converges to A⁺ iff 0 < α < 2/σ_max².
    """
    estimate = alpha * matrix.mT
    for _ in range(steps):
        estimate = 2.0 * estimate - estimate @ matrix @ estimate
    return estimate


def safe_bic_alpha(matrix: Tensor) -> Tensor:
    """α = 1/‖A‖_F² per matrix ``[..., 1, 1]``: always below 1/σ_max², so BIC always converges.

    Detached: α only scales the starting point, and a gradient through it would reward
    inflating ‖A‖ instead of improving the inverse.
    """
    norm_sq = matrix.detach().square().sum(dim=(-2, -1), keepdim=True)
    return 1.0 / norm_sq.clamp(min=torch.finfo(matrix.dtype).tiny)


def cholesky_with_jitter(spd: Tensor, jitter: float = 1e-6, tries: int = 5) -> Tensor:
    """Lower Cholesky factor of a batch of SPD matrices ``[..., n, n]``.

    Only the matrices that fail get jitter·mean(diag)·I added (×10 per retry), so one bad episode
    never changes the others' results.
    """
    factor, info = torch.linalg.cholesky_ex(spd)
    if not bool(info.any()):
        return factor
    eye = torch.eye(spd.shape[-1], dtype=spd.dtype, device=spd.device)
    base = jitter * spd.diagonal(dim1=-2, dim2=-1).abs().mean(-1).clamp(min=1.0)[..., None, None]
    added = torch.zeros_like(base)
    for _ in range(tries):
        failed = (info > 0)[..., None, None]
        added = torch.where(failed, torch.where(added > 0, added * 10.0, base), added)
        factor, info = torch.linalg.cholesky_ex(spd + added * eye)
        if not bool(info.any()):
            return factor
    raise torch.linalg.LinAlgError("matrix is not positive definite even after adding jitter")


def ridge_pseudo_inverse(matrix: Tensor, delta: float | Tensor) -> Tensor:
    """Aᵀ(AAᵀ + δI)⁻¹ via a Cholesky solve: ``[..., m, n] -> [..., n, m]`` (δ > 0).

    For a memory M ``[B, K, C]``, ``codes @ ridge_pseudo_inverse(M, λ)`` is the ridge (posterior
    mean) addressing z Mᵀ(MMᵀ + λI)⁻¹ of DKM; as δ → 0 it tends to the exact pseudo-inverse.
    """
    gram = matrix @ matrix.mT
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    factor = cholesky_with_jitter(gram + delta * eye)
    return torch.cholesky_solve(matrix, factor).mT


def pseudo_inverse(
    matrix: Tensor,
    method: str = "bic",
    *,
    steps: int = 7,
    alpha: float | Tensor = 1e-3,
    ridge: float = 1e-3,
) -> Tensor:
    """Pseudo-inverse ``[..., m, n] -> [..., n, m]`` by one of :data:`PSEUDO_INVERSES`.

    ``bic``: Ben-Israel–Cohen with a fixed α (the paper's); ``bic_safe``: α = 1/‖A‖_F²;
    ``ridge``: Aᵀ(AAᵀ + δI)⁻¹; ``exact``: SVD (reference only: its gradient is unstable for
    close or tiny singular values).
    """
    if method == "bic":
        return ben_israel_cohen(matrix, alpha, steps)
    if method == "bic_safe":
        return ben_israel_cohen(matrix, safe_bic_alpha(matrix), steps)
    if method == "ridge":
        return ridge_pseudo_inverse(matrix, ridge)
    if method == "exact":
        return torch.linalg.pinv(matrix)
    raise ValueError(f"unknown pseudo_inverse {method!r}; choose one of {', '.join(PSEUDO_INVERSES)}")


def symmetrize(matrix: Tensor) -> Tensor:
    """½(A + Aᵀ) over the last two dims: removes the asymmetry rounding adds to covariances."""
    return 0.5 * (matrix + matrix.mT)
