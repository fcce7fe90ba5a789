"""Encoders and decoders shared by every model (GPM paper, Appendix C).

Conv-ResNet: 4×4 stride-2 convolutions, each followed by a bottleneck residual block, swish
activations; the decoder mirrors it with transposed convolutions. GroupNorm replaces BatchNorm
so an evaluation number never depends on which episodes share a batch.
An MLP option serves quick runs and non-image plugins. The ``reference`` option is the layout of
the public GPM code (BatchNorm, ReLU, basic residual blocks, 28×28 images only), for parity with
that code (``python -m memorybench.benchmarks.parity.gpm_parity``, docs/models/gpm_parity.md);
``reference_groupnorm`` is the same layout with GroupNorm, so its scores do not depend on which
episodes share a batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """Shape of the shared encoder/decoder."""

    kind: str = "conv"  # one of NETWORKS: "conv" (Appendix C), "mlp", "reference[_groupnorm]" (public GPM code)
    channels: int = 16  # conv filters per stage: 16 for binarized data, e.g. 256 for RGB
    hidden_size: int = 400  # width of the MLP option's hidden layers
    min_spatial: int = 3  # conv stages stop before the feature map gets smaller than this


NETWORKS = ("conv", "mlp", "reference", "reference_groupnorm")  # NetworkConfig.kind / ModelConfig.network


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
    (``python -m memorybench.benchmarks.speed.throughput --compare-reference --profile``).
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


class ResNetBasicBlock(nn.Module):
    """Basic residual block of the public GPM code: ``[N, C, H, W] -> same``.

    3×3 conv (no bias) + norm, ReLU, 3×3 conv (no bias) + norm, plus the identity (no activation
    after the sum). ``group_norm``: GroupNorm (gcd(C, 4) groups) instead of the code's BatchNorm.
    """

    def __init__(self, channels: int, group_norm: bool = False):
        super().__init__()

        def norm() -> nn.Module:
            return nn.GroupNorm(_groups(channels), channels) if group_norm else nn.BatchNorm2d(channels)

        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            norm(),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            norm(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _group_norm(config: NetworkConfig) -> bool:
    return config.kind == "reference_groupnorm"


def _require_28(image_shape: tuple[int, int, int]) -> None:
    if tuple(image_shape[1:]) != (28, 28):
        raise ValueError(f"the reference networks need 28×28 images, got {image_shape[1]}×{image_shape[2]}")


class ReferenceEncoder(nn.Module):
    """The public GPM encoder: images ``[N, C, 28, 28]`` -> features ``[N, out_features]``.

    3 × [4×4 stride-2 conv, padding 2 (``channels`` maps) + :class:`ResNetBasicBlock`]
    (28 → 15 → 8 → 5), flatten (``channels``·5·5), linear. With BatchNorm (``reference``) an
    image's code in training mode depends on the other images of its batch; ``reference_groupnorm``
    normalises each image on its own.
    """

    def __init__(self, image_shape: tuple[int, int, int], out_features: int, config: NetworkConfig):
        super().__init__()
        _require_28(image_shape)
        layers: list[nn.Module] = []
        in_channels = image_shape[0]
        for _ in range(3):
            layers += [
                nn.Conv2d(in_channels, config.channels, 4, stride=2, padding=2),
                ResNetBasicBlock(config.channels, _group_norm(config)),
            ]
            in_channels = config.channels
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(config.channels * 5 * 5, out_features))

    def forward(self, images: Tensor) -> Tensor:
        return self.body(images)


class ReferenceDecoder(nn.Module):
    """The public GPM decoder: codes ``[N, in_features]`` -> parameters ``[N, param_channels, 28, 28]``.

    The code is a ``[in_features, 1, 1]`` map; 4 × [stride-2 transposed conv (kernels 4, 4, 3,
    4; paddings 0, 1, 1, 2: 1 → 4 → 8 → 15 → 28) + :class:`ResNetBasicBlock`], the last stage at
    ``param_channels`` maps, whose block output is the likelihood parameters (Bernoulli logits;
    the public code applies a sigmoid to it).
    """

    STAGES = ((4, 0), (4, 1), (3, 1), (4, 2))  # (kernel, padding) of each transposed conv

    def __init__(self, in_features: int, image_shape: tuple[int, int, int], param_channels: int, config: NetworkConfig):
        super().__init__()
        _require_28(image_shape)
        widths = [in_features, config.channels, config.channels, config.channels, param_channels]
        layers: list[nn.Module] = []
        for (kernel, padding), c_in, c_out in zip(self.STAGES, widths[:-1], widths[1:], strict=True):
            block = ResNetBasicBlock(c_out, _group_norm(config))
            layers += [nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, padding=padding), block]
        self.body = nn.Sequential(*layers)

    def forward(self, codes: Tensor) -> Tensor:
        return self.body(codes[:, :, None, None])


ENCODERS: dict[str, type[nn.Module]] = {
    "conv": ConvEncoder,
    "mlp": MLPEncoder,
    "reference": ReferenceEncoder,
    "reference_groupnorm": ReferenceEncoder,
}
DECODERS: dict[str, type[nn.Module]] = {
    "conv": ConvDecoder,
    "mlp": MLPDecoder,
    "reference": ReferenceDecoder,
    "reference_groupnorm": ReferenceDecoder,
}


def build_encoder(config: NetworkConfig, image_shape: tuple[int, int, int], out_features: int) -> nn.Module:
    """The configured encoder: ``[N, C, H, W] -> [N, out_features]``."""
    return ENCODERS[config.kind](image_shape, out_features, config)


def build_decoder(
    config: NetworkConfig, in_features: int, image_shape: tuple[int, int, int], param_channels: int
) -> nn.Module:
    """The configured decoder: ``[N, in_features] -> [N, param_channels, H, W]``."""
    return DECODERS[config.kind](in_features, image_shape, param_channels, config)


def apply_to_items(module: nn.Module, items: Tensor, item_dims: int, chunk: int = 0) -> Tensor:
    """Run ``module`` on the flattened leading (batch, time) dims: ``[B, T, *item] -> [B, T, *out]``,
    on at most ``chunk`` items per call when ``chunk`` > 0 (same result, lower peak memory)."""
    lead = items.shape[: items.dim() - item_dims]
    flat = items.reshape(-1, *items.shape[items.dim() - item_dims :])
    out = torch.cat([module(part) for part in flat.split(chunk)]) if chunk > 0 else module(flat)
    return out.reshape(*lead, *out.shape[1:])
