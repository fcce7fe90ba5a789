"""Observation likelihoods p(x | decoder output) shared by every model.

A decoder emits ``param_channels`` feature maps per image; the likelihood turns them into a
:class:`Reconstruction`, the decoder distribution the model protocol returns from ``read``.
Log-probabilities are summed over pixels: nats per image.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor


class Reconstruction:
    """A decoder distribution over images ``[..., C, H, W]`` (batch dims ``...`` are free)."""

    @property
    def mean(self) -> Tensor:
        """Expected image ``[..., C, H, W]`` in [0, 1]."""
        raise NotImplementedError

    def log_prob(self, images: Tensor) -> Tensor:
        """ln p(images) summed over pixels and channels: ``[..., C, H, W] -> [...]`` (nats)."""
        raise NotImplementedError

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """One image per distribution ``[..., C, H, W]`` with values in [0, 1]."""
        raise NotImplementedError

    def where(self, choose: Tensor, other: Reconstruction) -> Reconstruction:
        """Per image, this distribution where ``choose`` ``[...]`` (bool) is true, else ``other``."""
        return Selected(choose, self, other)


class Selected(Reconstruction):
    """Per image, ``first`` where ``choose`` ``[...]`` is true, else ``second`` (any two kinds)."""

    def __init__(self, choose: Tensor, first: Reconstruction, second: Reconstruction):
        self.choose, self.first, self.second = choose, first, second

    @property
    def mean(self) -> Tensor:
        return torch.where(self.choose[..., None, None, None], self.first.mean, self.second.mean)

    def log_prob(self, images: Tensor) -> Tensor:
        return torch.where(self.choose, self.first.log_prob(images), self.second.log_prob(images))

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        first, second = self.first.sample(generator), self.second.sample(generator)
        return torch.where(self.choose[..., None, None, None], first, second)


class PointMass(Reconstruction):
    """All mass on ``images`` ``[..., C, H, W]``: iterative reading's stand-in for a query it kept."""

    def __init__(self, images: Tensor):
        self.images = images

    @property
    def mean(self) -> Tensor:
        return self.images

    def log_prob(self, images: Tensor) -> Tensor:
        equal = (images == self.images).flatten(-3).all(-1)
        return torch.where(equal, 0.0, -math.inf).to(self.images.dtype)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self.images


class BernoulliReconstruction(Reconstruction):
    """Independent Bernoulli pixels parameterised by logits ``[..., C, H, W]``."""

    def __init__(self, logits: Tensor):
        self.logits = logits

    @property
    def mean(self) -> Tensor:
        return torch.sigmoid(self.logits)

    def log_prob(self, images: Tensor) -> Tensor:
        # From logits, never log(sigmoid + eps): that caps the loss and kills gradients (§10.9).
        per_pixel = F.binary_cross_entropy_with_logits(self.logits, images.to(self.logits.dtype), reduction="none")
        return -per_pixel.flatten(-3).sum(-1)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        uniform = torch.rand(self.logits.shape, generator=generator, device=self.logits.device)
        return (uniform < self.mean).to(self.logits.dtype)


class DiscretizedLogisticMixture(Reconstruction):
    """Discretized mixture of logistics over 8-bit pixels (PixelCNN++ parameterisation).

    ``params`` is ``[..., P, H, W]`` with ``P = n_mix * (1 + 2*C + C*(C-1)/2)``: mixture logits,
    per-channel means and log-scales, and the autoregressive channel coefficients (R→G, R,G→B)
    for RGB. Images are in [0, 1] holding k/255 values.
    """

    def __init__(self, params: Tensor, image_channels: int, n_mix: int):
        self.params = params
        self.channels = image_channels
        self.n_mix = n_mix

    def _split(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c, k = self.channels, self.n_mix
        n_coeff = c * (c - 1) // 2
        p = self.params.movedim(-3, -1)  # [..., H, W, P]
        logit_mix = p[..., :k]
        rest = p[..., k:].unflatten(-1, (2 * c + n_coeff, k))  # [..., H, W, 2C+n, K]
        means = rest[..., :c, :]
        log_scales = rest[..., c : 2 * c, :].clamp(min=-7.0)
        coeffs = torch.tanh(rest[..., 2 * c :, :])
        return logit_mix, means, log_scales, coeffs

    def _conditioned_means(self, means: Tensor, coeffs: Tensor, x: Tensor) -> Tensor:
        """Channel c's mean shifted by the coefficients times the previous channels' values."""
        if self.channels == 1:
            return means
        shifted = [means[..., 0, :]]
        index = 0
        for c in range(1, self.channels):
            mean_c = means[..., c, :]
            for previous in range(c):
                mean_c = mean_c + coeffs[..., index, :] * x[..., previous, :]
                index += 1
            shifted.append(mean_c)
        return torch.stack(shifted, dim=-2)

    def log_prob(self, images: Tensor) -> Tensor:
        logit_mix, means, log_scales, coeffs = self._split()
        x = (images.movedim(-3, -1) * 2.0 - 1.0).unsqueeze(-1)  # [..., H, W, C, 1] in [-1, 1]
        means = self._conditioned_means(means, coeffs, x.expand_as(means))
        centered = x - means
        inv_scale = torch.exp(-log_scales)
        half_bin = 1.0 / 255.0
        cdf_plus = torch.sigmoid(inv_scale * (centered + half_bin))
        cdf_minus = torch.sigmoid(inv_scale * (centered - half_bin))
        log_cdf_plus = (inv_scale * (centered + half_bin)) - F.softplus(inv_scale * (centered + half_bin))
        log_one_minus_cdf_minus = -F.softplus(inv_scale * (centered - half_bin))
        mid = inv_scale * centered
        log_pdf_mid = mid - log_scales - 2.0 * F.softplus(mid)
        bin_mass = cdf_plus - cdf_minus
        # Interior bins use the CDF difference, falling back to the density for tiny masses.
        interior = torch.where(
            bin_mass > 1e-5,
            torch.log(bin_mass.clamp(min=1e-12)),
            log_pdf_mid - math.log(127.5),
        )
        log_probs = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_minus, interior))
        per_mixture = log_probs.sum(-2) + F.log_softmax(logit_mix, dim=-1)  # [..., H, W, K]
        return torch.logsumexp(per_mixture, dim=-1).flatten(-2).sum(-1)

    @property
    def mean(self) -> Tensor:
        # Mean of the mixture of per-component means (channel coupling evaluated at the means).
        logit_mix, means, _, coeffs = self._split()
        weights = torch.softmax(logit_mix, dim=-1).unsqueeze(-2)  # [..., H, W, 1, K]
        component = self._conditioned_means(means, coeffs, means)
        image = (weights * component).sum(-1).clamp(-1.0, 1.0)
        return ((image + 1.0) / 2.0).movedim(-1, -3)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        logit_mix, means, log_scales, coeffs = self._split()
        device = self.params.device
        gumbel = -torch.log(
            -torch.log(torch.rand(logit_mix.shape, generator=generator, device=device).clamp(1e-10, 1.0))
        )
        choice = F.one_hot((logit_mix + gumbel).argmax(-1), self.n_mix).unsqueeze(-2).to(means.dtype)
        mean = (means * choice).sum(-1)
        log_scale = (log_scales * choice).sum(-1)
        coeff = (coeffs * choice).sum(-1)
        u = torch.rand(mean.shape, generator=generator, device=device).clamp(1e-5, 1 - 1e-5)
        noise = torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
        values: list[Tensor] = []
        index = 0
        for c in range(self.channels):
            value = mean[..., c] + noise[..., c]
            for previous in range(c):
                value = value + coeff[..., index] * values[previous]
                index += 1
            values.append(value.clamp(-1.0, 1.0))
        image = torch.stack(values, dim=-1)
        return (torch.round((image + 1.0) * 127.5) / 255.0).movedim(-1, -3)


class Likelihood:
    """How many decoder channels a likelihood needs and how to turn them into a distribution."""

    name: ClassVar[str]
    unit: ClassVar[str]  # the unit reported for negative ELBOs under this likelihood

    def __init__(self, image_channels: int):
        self.image_channels = image_channels

    @property
    def param_channels(self) -> int:
        raise NotImplementedError

    def __call__(self, params: Tensor) -> Reconstruction:
        raise NotImplementedError


class Bernoulli(Likelihood):
    """Bernoulli pixels for binarized data (nats/image)."""

    name = "bernoulli"
    unit = "nats/image"

    @property
    def param_channels(self) -> int:
        return self.image_channels

    def __call__(self, params: Tensor) -> Reconstruction:
        return BernoulliReconstruction(params)


class LogisticMixture(Likelihood):
    """Discretized mixture of logistics for 8-bit images (reported in bits/dim)."""

    name = "dmol"
    unit = "bits/dim"

    def __init__(self, image_channels: int, n_mix: int = 10):
        super().__init__(image_channels)
        self.n_mix = n_mix

    @property
    def param_channels(self) -> int:
        c = self.image_channels
        return self.n_mix * (1 + 2 * c + c * (c - 1) // 2)

    def __call__(self, params: Tensor) -> Reconstruction:
        return DiscretizedLogisticMixture(params, self.image_channels, self.n_mix)


LIKELIHOODS: dict[str, type[Likelihood]] = {"bernoulli": Bernoulli, "dmol": LogisticMixture}


def nats_to_bits_per_dim(nats_per_image: float, pixels_times_channels: int) -> float:
    """Convert a negative log-likelihood in nats/image to bits/dim (discretized likelihoods)."""
    return nats_per_image / (pixels_times_channels * math.log(2.0))
