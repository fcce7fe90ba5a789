"""Small, exact metrics shared by the benchmarks: pixel errors, success, distances, similarity.

Images are ``[..., C, H, W]``; "pixels" below means every entry of C·H·W (784 for 28×28 binary
images). For binary data an error is a Hamming distance; for 8-bit data an entry counts as wrong
when its absolute error exceeds a tolerance (so the same success rule applies to both).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from memorybench.memories.likelihoods import nats_to_bits_per_dim
from memorybench.memories.protocol import MemoryModel


def hamming(images: Tensor, targets: Tensor) -> Tensor:
    """Number of differing entries per image: ``[..., C, H, W] x2 -> [...]`` (int64)."""
    return (images != targets).flatten(-3).sum(-1)


def wrong_pixels(images: Tensor, targets: Tensor, binary: bool = True, tolerance: float = 0.1) -> Tensor:
    """Wrong entries per image ``[...]``: Hamming distance for binary data, else |error| > tolerance."""
    if binary:
        return hamming(images, targets)
    return ((images - targets).abs() > tolerance).flatten(-3).sum(-1)


def success_threshold(pixels: int, fraction: float = 0.01) -> int:
    """Most wrong entries a success allows: ⌊fraction·pixels⌋ (7 of 784 at 1 %, GPM Table 2)."""
    return math.floor(fraction * pixels + 1e-9)


def success(errors: Tensor, pixels: int, fraction: float = 0.01) -> Tensor:
    """Boolean ``errors <= ⌊fraction·pixels⌋`` elementwise."""
    return errors <= success_threshold(pixels, fraction)


def pairwise_distances(queries: Tensor, references: Tensor, binary: bool = True) -> Tensor:
    """Distances between every query and every reference of the same episode.

    ``queries`` ``[B, n, C, H, W]``, ``references`` ``[B, m, C, H, W]`` -> ``[B, n, m]``: Hamming
    distances for binary images (exact: computed as Σa + Σb − 2a·b on 0/1 values in float64),
    Euclidean distances otherwise.
    """
    a, b = queries.flatten(-3).double(), references.flatten(-3).double()
    if binary:
        return a.sum(-1, keepdim=True) + b.sum(-1).unsqueeze(-2) - 2.0 * a @ b.mT
    return torch.cdist(a, b)


def nearest(
    queries: Tensor, references: Tensor, binary: bool = True, exclude_self: bool = False
) -> tuple[Tensor, Tensor]:
    """Nearest reference of every query: distances and indices ``[B, n]``.

    ``exclude_self`` (queries = references) skips the diagonal (leave-one-out distances).
    """
    distances = pairwise_distances(queries, references, binary)
    if exclude_self:
        eye = torch.eye(distances.shape[-1], dtype=torch.bool, device=distances.device)
        distances = distances.masked_fill(eye, math.inf)
    values, indices = distances.min(dim=-1)
    return values, indices


def cosine_similarity(a: Tensor, b: Tensor, eps: float = 1e-12) -> Tensor:
    """Cosine similarity along the last dim: ``[..., C] x2 -> [...]``."""
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp(min=eps)


def mean_and_stderr(values: Tensor) -> tuple[float, float]:
    """Mean and standard error of the mean of a tensor (stderr 0 for fewer than two values)."""
    flat = values.double().flatten()
    n = flat.numel()
    if n == 0:
        return math.nan, math.nan
    stderr = float(flat.std(unbiased=True) / math.sqrt(n)) if n > 1 else 0.0
    return float(flat.mean()), stderr


def clustered_stderr(values: Tensor, clusters: Tensor) -> float:
    """Standard error of the mean of ``values`` ``[N]`` when the values within a cluster share
    a random draw (``clusters`` ``[N]``: a cluster id per value): the cluster-robust estimator
    √(G/(G−1) · Σ_g (Σ_{i∈g} (x_i − x̄))²) / N over G clusters. With one value per cluster it
    equals the usual stderr; NaN with fewer than two clusters.
    """
    flat, ids = values.double().flatten(), clusters.flatten()
    groups = ids.unique()
    n, g = flat.numel(), groups.numel()
    if g < 2:
        return math.nan
    residuals = flat - flat.mean()
    sums = torch.zeros(g, dtype=torch.float64).index_add_(0, torch.searchsorted(groups, ids), residuals)
    return float(torch.sqrt(g / (g - 1) * sums.square().sum()) / n)


def quantiles(values: Tensor, levels: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> dict[float, float]:
    """Empirical quantiles (linear interpolation) of a tensor's values."""
    flat = values.double().flatten()
    if flat.numel() == 0:
        return {level: math.nan for level in levels}
    points = torch.quantile(flat, torch.tensor(levels, dtype=torch.float64))
    return {level: float(point) for level, point in zip(levels, points)}


__all__ = [
    "clustered_stderr",
    "cosine_similarity",
    "hamming",
    "mean_and_stderr",
    "nearest",
    "pairwise_distances",
    "quantiles",
    "success",
    "success_threshold",
    "wrong_pixels",
]


def nll_scale(model: MemoryModel) -> tuple[float, str]:
    """Factor and unit for reporting a model's negative log-likelihoods: nats/image for binary
    data, bits/dim (nats / (D ln 2)) for 8-bit data under a discretized likelihood."""
    if model.binary_data:
        return 1.0, "nats/image"
    return nats_to_bits_per_dim(1.0, math.prod(model.image_shape)), "bits/dim"
