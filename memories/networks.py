"""Encoders and decoders shared by every model (GPM paper, Appendix C).

Conv-ResNet: 4×4 stride-2 convolutions, each followed by a bottleneck residual block, swish
activations; the decoder mirrors it with transposed convolutions. GroupNorm replaces BatchNorm
so an evaluation number never depends on which episodes share a batch (MODELS.md Appendix B).
An MLP option serves quick runs and non-image plugins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """Shape of the shared encoder/decoder."""

    kind: str = "conv"  # "conv" (conv-ResNet of Appendix C) or "mlp"
    channels: int = 16  # conv filters per stage: 16 for binarized data, e.g. 256 for RGB
    hidden_size: int = 400  # width of the MLP option's hidden layers
    min_spatial: int = 3  # conv stages stop before the feature map gets smaller than this


def _groups(channels: int) -> int:
    return math.gcd(channels, 4)


class BottleneckBlock(nn.Module):
    """Pre-activation residual block 1×1 → 3×3 → 1×1 at half width: ``[N, C, H, W] -> same``."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(channels // 2, 1)
        self.body = nn.Sequential(
            nn.GroupNorm(_groups(channels), channels),
            nn.SiLU(),
            nn.Conv2d(channels, inner, 1),
            nn.GroupNorm(_groups(inner), inner),
            nn.SiLU(),
            nn.Conv2d(inner, inner, 3, padding=1),
            nn.GroupNorm(_groups(inner), inner),
            nn.SiLU(),
            nn.Conv2d(inner, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def conv_spatial_sizes(size: int, min_spatial: int) -> list[int]:
    """Spatial sizes after each stride-2 stage (k=4, p=1): 28 -> [14, 7, 3] for min_spatial=3."""
    sizes = []
    while (size + 2 - 4) // 2 + 1 >= min_spatial:
        size = (size + 2 - 4) // 2 + 1
        sizes.append(size)
    return sizes


class ConvEncoder(nn.Module):
    """Images ``[N, C, H, W]`` -> features ``[N, out_features]``."""

    def __init__(self, image_shape: tuple[int, int, int], out_features: int, config: NetworkConfig):
        super().__init__()
        channels, height, _ = image_shape
        sizes = conv_spatial_sizes(height, config.min_spatial)
        layers: list[nn.Module] = []
        in_channels = channels
        for _ in sizes:
            layers += [
                nn.Conv2d(in_channels, config.channels, 4, stride=2, padding=1),
                BottleneckBlock(config.channels),
            ]
            in_channels = config.channels
        layers += [nn.SiLU(), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(config.channels * sizes[-1] ** 2, out_features)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.body(images))


class ConvDecoder(nn.Module):
    """Codes ``[N, in_features]`` -> likelihood parameters ``[N, param_channels, H, W]``.

    The mirror of :class:`ConvEncoder`: linear → ``[channels, 3, 3]`` → per stage a bottleneck
    block, then a 4×4 stride-2 transposed convolution (3 → 7 → 14 → 28). The last transposed
    convolution, after GroupNorm + swish, emits the likelihood parameters itself, just as the
    encoder's first convolution reads the image: no feature map ever has ``channels`` maps at
    full resolution. That full-resolution stage (a 16-channel transposed convolution to 28×28,
    GroupNorm, swish and a 3×3 convolution, run twice per GPM step) was two thirds of a GPM
    training step on a 2-core CPU: 0.65 s → 0.22 s per 1,024-image step
    (``python -m benchmarks.throughput --compare-reference --profile``).
    """

    def __init__(self, in_features: int, image_shape: tuple[int, int, int], param_channels: int, config: NetworkConfig):
        super().__init__()
        _, height, _ = image_shape
        sizes = [height, *conv_spatial_sizes(height, config.min_spatial)]
        self.start = (config.channels, sizes[-1], sizes[-1])
        self.head = nn.Linear(in_features, config.channels * sizes[-1] ** 2)
        stages = list(zip(reversed(sizes[1:]), reversed(sizes[:-1]), strict=True))
        layers: list[nn.Module] = []
        for index, (smaller, larger) in enumerate(stages):
            last = index == len(stages) - 1
            extra = larger - 2 * smaller  # output_padding restoring odd sizes (3 -> 7)
            layers.append(BottleneckBlock(config.channels))
            if last:  # pre-activation before the output layer (the blocks' sums are not normalised)
                layers += [nn.GroupNorm(_groups(config.channels), config.channels), nn.SiLU()]
            out_channels = param_channels if last else config.channels
            layers.append(
                nn.ConvTranspose2d(config.channels, out_channels, 4, stride=2, padding=1, output_padding=extra)
            )
        self.body = nn.Sequential(*layers)

    def forward(self, codes: Tensor) -> Tensor:
        return self.body(self.head(codes).view(-1, *self.start))


class MLPEncoder(nn.Module):
    """Images ``[N, C, H, W]`` -> features ``[N, out_features]`` through two hidden layers."""

    def __init__(self, image_shape: tuple[int, int, int], out_features: int, config: NetworkConfig):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(image_shape), config.hidden_size),
            nn.SiLU(),
            nn.Linear(config.hidden_size, config.hidden_size),
            nn.SiLU(),
            nn.Linear(config.hidden_size, out_features),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.body(images)


class MLPDecoder(nn.Module):
    """Codes ``[N, in_features]`` -> likelihood parameters ``[N, param_channels, H, W]``."""

    def __init__(self, in_features: int, image_shape: tuple[int, int, int], param_channels: int, config: NetworkConfig):
        super().__init__()
        _, height, width = image_shape
        self.out_shape = (param_channels, height, width)
        self.body = nn.Sequential(
            nn.Linear(in_features, config.hidden_size),
            nn.SiLU(),
            nn.Linear(config.hidden_size, config.hidden_size),
            nn.SiLU(),
            nn.Linear(config.hidden_size, math.prod(self.out_shape)),
        )

    def forward(self, codes: Tensor) -> Tensor:
        return self.body(codes).view(-1, *self.out_shape)


def build_encoder(config: NetworkConfig, image_shape: tuple[int, int, int], out_features: int) -> nn.Module:
    """The configured encoder: ``[N, C, H, W] -> [N, out_features]``."""
    cls = ConvEncoder if config.kind == "conv" else MLPEncoder
    return cls(image_shape, out_features, config)


def build_decoder(
    config: NetworkConfig, in_features: int, image_shape: tuple[int, int, int], param_channels: int
) -> nn.Module:
    """The configured decoder: ``[N, in_features] -> [N, param_channels, H, W]``."""
    cls = ConvDecoder if config.kind == "conv" else MLPDecoder
    return cls(in_features, image_shape, param_channels, config)


def apply_to_items(module: nn.Module, items: Tensor, item_dims: int) -> Tensor:
    """Run ``module`` on the flattened leading (batch, time) dims: ``[B, T, *item] -> [B, T, *out]``."""
    lead = items.shape[: items.dim() - item_dims]
    out = module(items.reshape(-1, *items.shape[items.dim() - item_dims :]))
    return out.reshape(*lead, *out.shape[1:])
