"""Linear-Gaussian memory machinery shared by the Kanerva Machine and the Dynamic Kanerva Machine.

A memory is matrix-normal, M ~ MN(R, U, I_C): mean R ``[B, K, C]`` (slot = row), row covariance
U ``[B, K, K]``, the C columns independent. Observations are z = Mᵀw + ξ, ξ ~ N(0, σ_ξ² I_C), so
writing is exact Bayesian linear regression (docs/models/km.md) and every quantity below is closed
form. Everything acts on batch-first tensors and broadcasts over the leading batch dims.

- :func:`batch_write`: one write of T items with fixed weights (A.2, Cholesky solves of the T×T
  predictive covariance; order-free).
- :func:`rank_one_write`: one item (A.3), with β and the per-step KL of §1.1(3).
- :func:`ridge_addressing` / :func:`gram_regularised_addressing`: DKM's least-squares weights
  (A.4; the second is the official DKM module's form, §4.2 and §11.2).
- :func:`matrix_normal_kl` (A.7) and :func:`diagonal_logdet_matrix_normal_kl` (the DKM module's
  diagonal log-det shortcut, ½ included; a lower bound by Hadamard's inequality).
- :func:`sample_matrix_normal`: M = R + chol(U) E; :func:`matrix_normal_log_density` its density.
- :func:`predictive_log_density`: ln p(Z | W) with M integrated out (importance-sampled likelihoods).
- :class:`DiagonalMatrixNormalPrior`: the learnable p(M) = MN(R0, diag(u0), I) of KM and DKM.
- :func:`per_image_terms`: the per-image normalisation of an objective with a memory KL (§12.14).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from memorybench.memories.linalg import cholesky_with_jitter, ridge_pseudo_inverse, symmetrize

DIAGONAL_CLIP = (1e-6, 1e10)  # DKM module's bounds on diag(U) after each rank-1 write (§4.3)
ADDRESSINGS = ("ridge", "dkm_tf_compat")


@dataclass
class MatrixNormalState:
    """A matrix-normal memory MN(R, U, I_C): ``mean`` R ``[B, K, C]``, row ``covariance`` U ``[B, K, K]``."""

    mean: Tensor
    covariance: Tensor

    @property
    def memory_size(self) -> int:
        return self.mean.shape[-2]

    @property
    def code_size(self) -> int:
        return self.mean.shape[-1]


def batch_write(
    state: MatrixNormalState, weights: Tensor, codes: Tensor, noise_var: float | Tensor
) -> MatrixNormalState:
    """Posterior after observing codes ``[B, T, C]`` at weights ``[B, T, K]`` in one step (A.2).

    Σ_c = W U, Σ_z = W U Wᵀ + σ_ξ² I_T, R' = R + Σ_cᵀ Σ_z⁻¹ (Z − W R), U' = U − Σ_cᵀ Σ_z⁻¹ Σ_c, with
    Σ_z⁻¹ applied by Cholesky solves. Exact for any T; costs a T×T factorisation.
    """
    mean, covariance = state.mean, state.covariance
    cross = weights @ covariance  # Σ_c [B, T, K]
    eye = torch.eye(weights.shape[-2], dtype=weights.dtype, device=weights.device)
    factor = cholesky_with_jitter(cross @ weights.mT + noise_var * eye)  # chol Σ_z [B, T, T]
    gain_residual = torch.cholesky_solve(codes - weights @ mean, factor)  # Σ_z⁻¹ Δ [B, T, C]
    gain_cross = torch.cholesky_solve(cross, factor)  # Σ_z⁻¹ Σ_c [B, T, K]
    return MatrixNormalState(
        mean=mean + cross.mT @ gain_residual,
        covariance=symmetrize(covariance - cross.mT @ gain_cross),
    )


def rank_one_write(
    state: MatrixNormalState,
    weight: Tensor,
    code: Tensor,
    noise_var: float | Tensor,
    clip: tuple[float, float] | None = DIAGONAL_CLIP,
) -> tuple[MatrixNormalState, Tensor, Tensor]:
    """Write one item per episode: weight ``[B, K]``, code ``[B, C]`` (A.3).

    g = U w, s = wᵀg + σ_ξ², δ = z − Rᵀw; R ← R + g δᵀ/s, U ← U − g gᵀ/s, then diag(U) clipped to
    ``clip`` (None: no clipping) and symmetrised. Returns the new state, β = wᵀUw/s ``[B]`` and the
    step's KL(q_t ‖ q_{t−1}) = ½[(β/s)‖δ‖² − Cβ − C ln(1 − β)] ``[B]`` (§1.1(3), before clipping; the
    log term is evaluated as log1p(wᵀUw/σ_ξ²), exact and finite even where β rounds to 1).
    """
    mean, covariance = state.mean, state.covariance
    gain = (covariance @ weight.unsqueeze(-1)).squeeze(-1)  # g = U w [B, K]
    explained = (weight * gain).sum(-1)  # wᵀUw [B]
    total = explained + noise_var  # s [B]
    beta = explained / total
    residual = code - (weight.unsqueeze(-2) @ mean).squeeze(-2)  # δ [B, C]
    new_mean = mean + gain.unsqueeze(-1) * (residual / total.unsqueeze(-1)).unsqueeze(-2)
    new_covariance = covariance - gain.unsqueeze(-1) * (gain / total.unsqueeze(-1)).unsqueeze(-2)
    if clip is not None:
        diagonal = new_covariance.diagonal(dim1=-2, dim2=-1).clamp(*clip)
        new_covariance = torch.diagonal_scatter(new_covariance, diagonal, dim1=-2, dim2=-1)
    code_size = code.shape[-1]
    # −ln(1 − β) = ln(s/σ_ξ²) = log1p(wᵀUw/σ_ξ²): finite even where β rounds to 1 (§10.2).
    log_shrink = torch.log1p(explained / noise_var)
    step_kl = 0.5 * (beta / total * residual.square().sum(-1) - code_size * beta + code_size * log_shrink)
    return MatrixNormalState(new_mean, symmetrize(new_covariance)), beta, step_kl


def ridge_addressing(codes: Tensor, memory: Tensor, ridge: float | Tensor) -> Tensor:
    """Posterior-mean weights μ = (M Mᵀ + λI)⁻¹ M z for codes ``[B, T, C]`` and memory ``[B, K, C]``
    -> ``[B, T, K]`` (A.4; in row form z Mᵀ(MMᵀ + λI)⁻¹, a Cholesky solve)."""
    return codes @ ridge_pseudo_inverse(memory, ridge)


def gram_regularised_addressing(codes: Tensor, memory: Tensor, ridge: float | Tensor) -> Tensor:
    """The official DKM module's weights μ = ((MMᵀ)² + λI)⁻¹ MMᵀ M z -> ``[B, T, K]`` (§4.2, §11.2).

    Regularised normal equations of the Gram system (MMᵀ) μ = M z: equal to the ridge weights only
    as λ → 0 with MMᵀ invertible; squares the condition number. Kept for comparison only.
    """
    gram = memory @ memory.mT  # [B, K, K]
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    factor = cholesky_with_jitter(gram @ gram + ridge * eye)
    projection = torch.cholesky_solve(gram @ memory, factor)  # ((MMᵀ)² + λI)⁻¹ MMᵀ M [B, K, C]
    return codes @ projection.mT


def address(codes: Tensor, memory: Tensor, ridge: float | Tensor, form: str = "ridge") -> Tensor:
    """Least-squares weights ``[B, T, K]`` by one of :data:`ADDRESSINGS`."""
    if form == "ridge":
        return ridge_addressing(codes, memory, ridge)
    if form == "dkm_tf_compat":
        return gram_regularised_addressing(codes, memory, ridge)
    raise ValueError(f"unknown addressing {form!r}; choose one of {', '.join(ADDRESSINGS)}")


def _matrix_normal_kl(
    posterior: MatrixNormalState, prior_mean: Tensor, prior_covariance: Tensor, posterior_logdet: Tensor
) -> Tensor:
    """KL of A.7 given ln|U| of the posterior (exact or approximated by the caller)."""
    memory_size, code_size = posterior.mean.shape[-2:]
    difference = posterior.mean - prior_mean
    if prior_covariance.dim() == prior_mean.dim() - 1:  # diagonal U0 given by its diagonal [..., K]
        trace = (posterior.covariance.diagonal(dim1=-2, dim2=-1) / prior_covariance).sum(-1)
        quadratic = (difference.square() / prior_covariance.unsqueeze(-1)).sum((-2, -1))
        prior_logdet = torch.log(prior_covariance).sum(-1)
    else:
        prior_factor = cholesky_with_jitter(prior_covariance)
        posterior_factor = cholesky_with_jitter(posterior.covariance)
        trace = torch.linalg.solve_triangular(prior_factor, posterior_factor, upper=False).square().sum((-2, -1))
        quadratic = torch.linalg.solve_triangular(prior_factor, difference, upper=False).square().sum((-2, -1))
        prior_logdet = 2.0 * torch.log(prior_factor.diagonal(dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (
        code_size * trace + quadratic - memory_size * code_size + code_size * (prior_logdet - posterior_logdet)
    )


def matrix_normal_kl(posterior: MatrixNormalState, prior_mean: Tensor, prior_covariance: Tensor) -> Tensor:
    """Exact KL(MN(R, U, I) ‖ MN(R0, U0, I)) ``[B]`` (§1.1(2), A.7), log-dets from Cholesky factors.

    ``prior_mean`` ``[..., K, C]``; ``prior_covariance`` ``[..., K, K]``, or ``[..., K]`` holding the
    diagonal of a diagonal U0 (the fast path: the triangular solves become divisions).
    """
    factor = cholesky_with_jitter(posterior.covariance)
    logdet = 2.0 * torch.log(factor.diagonal(dim1=-2, dim2=-1)).sum(-1)
    return _matrix_normal_kl(posterior, prior_mean, prior_covariance, logdet)


def diagonal_logdet_matrix_normal_kl(
    posterior: MatrixNormalState, prior_mean: Tensor, prior_covariance: Tensor
) -> Tensor:
    """A.7 with ln|U| replaced by Σ_k ln U_kk ``[B]`` (the official DKM module's shortcut, with the ½).

    By Hadamard's inequality ln|U| ≤ Σ ln U_kk, so this never exceeds :func:`matrix_normal_kl`
    and equals it iff U is diagonal (§4.5, §12.7). The module's "total KL" is twice this value.
    """
    logdet = torch.log(posterior.covariance.diagonal(dim1=-2, dim2=-1)).sum(-1)
    return _matrix_normal_kl(posterior, prior_mean, prior_covariance, logdet)


def sample_matrix_normal(state: MatrixNormalState, generator: torch.Generator | None = None) -> Tensor:
    """One reparameterised sample M = R + L E ``[B, K, C]``, U = L Lᵀ, E standard normal."""
    noise = torch.randn(state.mean.shape, generator=generator, dtype=state.mean.dtype, device=state.mean.device)
    return state.mean + cholesky_with_jitter(state.covariance) @ noise


def matrix_normal_log_density(memory: Tensor, state: MatrixNormalState) -> Tensor:
    """ln MN(M; R, U, I_C) ``[B]`` of memories ``[B, K, C]`` (Cholesky of U)."""
    return _independent_columns_log_density(memory - state.mean, state.covariance)


def predictive_log_density(
    state: MatrixNormalState, weights: Tensor, codes: Tensor, noise_var: float | Tensor
) -> Tensor:
    """ln p(Z | W) ``[B]`` with the memory integrated out: codes ``[B, T, C]`` = Mᵀw + ξ at weights
    ``[B, T, K]``, M ~ MN(R, U, I_C). Each of the C columns is N(W R[:, c], W U Wᵀ + σ_ξ² I_T).

    Equals the chain rule Σ_t ln p(z_t | z_<t) of sequential writes (tested).
    """
    eye = torch.eye(codes.shape[-2], dtype=codes.dtype, device=codes.device)
    covariance = symmetrize(weights @ state.covariance @ weights.mT) + noise_var * eye
    return _independent_columns_log_density(codes - weights @ state.mean, covariance)


def _independent_columns_log_density(residual: Tensor, covariance: Tensor) -> Tensor:
    """Σ_c ln N(residual[:, c]; 0, Σ) ``[B]`` for residuals ``[B, n, C]`` and one covariance Σ ``[B, n, n]``."""
    rows, columns = residual.shape[-2:]
    factor = cholesky_with_jitter(covariance)
    whitened = torch.linalg.solve_triangular(factor, residual, upper=False)
    logdet = 2.0 * torch.log(factor.diagonal(dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (whitened.square().sum((-2, -1)) + columns * logdet + rows * columns * math.log(2 * math.pi))


def per_image_terms(per_item: dict[str, Tensor], memory_kl: Tensor) -> dict[str, Tensor]:
    """Scalar per-image objective terms.

    Per-item terms ``[B, T]`` are averaged over the B·T items; the episode's memory KL ``[B]`` is
    divided by T once and averaged over B (key ``"kl_memory"``), so the terms add up to the mean over
    episodes of (Σ_t per-item terms + KL(M))/T.
    """
    length = next(iter(per_item.values())).shape[-1]
    terms = {name: value.mean() for name, value in per_item.items()}
    terms["kl_memory"] = (memory_kl / length).mean()
    return terms


class DiagonalMatrixNormalPrior(nn.Module):
    """Learnable p(M) = MN(R0, diag(u0), I_C) with u0 = exp(ℓ) + 10⁻⁶ (DKM module's parameterisation).

    R0 ``[K, C]`` starts truncated-normal (std 1); ℓ starts at ln(``variance``), one value per slot
    (``per_slot_variance``) or one shared scalar (scaled identity, as in the DKM module).
    """

    def __init__(self, memory_size: int, code_size: int, per_slot_variance: bool = False, variance: float = 1.0):
        super().__init__()
        self.mean = nn.Parameter(nn.init.trunc_normal_(torch.empty(memory_size, code_size), std=1.0, a=-2.0, b=2.0))
        shape = (memory_size,) if per_slot_variance else (1,)
        self.log_variance = nn.Parameter(torch.full(shape, math.log(variance)))

    @property
    def variance(self) -> Tensor:
        """The diagonal of U0 ``[K]``."""
        return (torch.exp(self.log_variance) + 1e-6).expand(self.mean.shape[0])

    def state(self, batch_size: int) -> MatrixNormalState:
        """The prior broadcast over ``batch_size`` episodes: ``[B, K, C]``, ``[B, K, K]`` (views, no copy)."""
        memory_size, code_size = self.mean.shape
        covariance = torch.diag_embed(self.variance)
        return MatrixNormalState(
            mean=self.mean.expand(batch_size, memory_size, code_size),
            covariance=covariance.expand(batch_size, memory_size, memory_size),
        )

    def kl(self, posterior: MatrixNormalState) -> Tensor:
        """Exact KL(q(M) ‖ p(M)) ``[B]`` (diagonal fast path of :func:`matrix_normal_kl`)."""
        return matrix_normal_kl(posterior, self.mean, self.variance)

    def diagonal_logdet_kl(self, posterior: MatrixNormalState) -> Tensor:
        """:func:`diagonal_logdet_matrix_normal_kl` against this prior ``[B]``."""
        return diagonal_logdet_matrix_normal_kl(posterior, self.mean, self.variance)


__all__ = [
    "ADDRESSINGS",
    "DIAGONAL_CLIP",
    "DiagonalMatrixNormalPrior",
    "MatrixNormalState",
    "address",
    "batch_write",
    "diagonal_logdet_matrix_normal_kl",
    "gram_regularised_addressing",
    "matrix_normal_kl",
    "matrix_normal_log_density",
    "per_image_terms",
    "predictive_log_density",
    "rank_one_write",
    "ridge_addressing",
    "sample_matrix_normal",
]
