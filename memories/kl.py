"""Diagonal-Gaussian heads, reparameterised samples and closed-form KLs."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

LOG_VAR_RANGE = (-12.0, 8.0)  # clamp on predicted log-variances: keeps exp() finite early in training


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


def diagonal_gaussian_log_prob(value: Tensor, mean: Tensor | float = 0.0, log_var: Tensor | float = 0.0) -> Tensor:
    """ln N(value; μ, diag σ²) summed over the last dim: ``[..., n] -> [...]`` (scalars broadcast)."""
    log_var_t = torch.as_tensor(log_var, dtype=value.dtype, device=value.device)
    per_dim = -0.5 * ((value - mean).square() * torch.exp(-log_var_t) + log_var_t + math.log(2.0 * math.pi))
    return per_dim.expand_as(value).sum(-1)


def standard_normal_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) summed over the last dim: ``[..., n] -> [...]``."""
    return diagonal_gaussian_kl(mean, log_var)


def diagonal_gaussian_head(features: Tensor, head: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """``head(features)`` split into a mean and a clamped log-variance ``[..., n]`` each."""
    mean, log_var = head(features).chunk(2, dim=-1)
    return mean, log_var.clamp(*LOG_VAR_RANGE)


def reparameterize(mean: Tensor, log_var: Tensor) -> Tensor:
    """One sample of N(mean, diag exp(log_var)), differentiable in both."""
    return mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
