"""Closed-form KL divergences (MODELS.md §1.1), written out so each term is checkable."""

from __future__ import annotations

import torch
from torch import Tensor


def diagonal_gaussian_kl(
    mean_q: Tensor, log_var_q: Tensor, mean_p: Tensor | float = 0.0, log_var_p: Tensor | float = 0.0
) -> Tensor:
    """KL(N(μ_q, diag σ_q²) ‖ N(μ_p, diag σ_p²)) summed over the last dim: ``[..., n] -> [...]``.

    Either side's log-variance may be a broadcastable tensor or a scalar (isotropic).
    """
    log_var_p_t = torch.as_tensor(log_var_p, dtype=mean_q.dtype, device=mean_q.device)
    var_ratio = torch.exp(log_var_q - log_var_p_t)
    mahalanobis = (mean_q - mean_p).square() * torch.exp(-log_var_p_t)
    per_dim = 0.5 * (var_ratio + mahalanobis - 1.0 - (log_var_q - log_var_p_t))
    return per_dim.sum(-1)


def standard_normal_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) summed over the last dim: ``[..., n] -> [...]``."""
    return diagonal_gaussian_kl(mean, log_var)
