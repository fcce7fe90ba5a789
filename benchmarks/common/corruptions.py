"""Query corruptions for the denoising benchmarks (GPM §3.2 and Appendix B).

Every function takes a batch of images ``[..., C, H, W]`` with values in [0, 1] (any leading
dims), draws all its randomness from one ``torch.Generator`` (so the same seed gives the same
corrupted queries for every model of a suite) and works on the whole batch at once.

- :func:`salt_and_pepper`: exactly ⌊p·H·W⌋ pixel positions per image, chosen uniformly without
  replacement. ``mode="flip"`` (default) inverts them (x → 1 − x), so a binary image has exactly
  that many wrong pixels; ``mode="random_value"`` sets each to 0 or 1 with probability ½ (on
  binary images this changes only about half of them). All channels of a
  chosen pixel get the same treatment.
- :func:`block`: one b×b square per image at a uniformly random position fully inside the frame,
  filled with ``fill`` (0: occlusion).
- :func:`rotation`: bilinear rotation by ``degrees`` about the image centre (zero padding);
  ``sign="random"`` picks ± per image, ``"positive"`` always rotates counter-clockwise.
- :func:`gaussian`: additive N(0, σ²) noise, clipped to [0, 1].
Binary images are re-binarized at 0.5 after rotation and Gaussian noise (``binary=True``).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

CORRUPTIONS = ("salt_pepper", "block", "rotation", "gaussian")


def _as_batch(images: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """``[..., C, H, W] -> [N, C, H, W]`` and the leading shape to restore."""
    if images.dim() < 3:
        raise ValueError(f"expected images [..., C, H, W], got shape {list(images.shape)}")
    lead = tuple(images.shape[:-3])
    return images.reshape(-1, *images.shape[-3:]), lead


def _rand(shape: tuple[int, ...], generator: torch.Generator, like: Tensor) -> Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device, then moved next to ``like``."""
    return torch.rand(shape, generator=generator, device=generator.device).to(like.device)


def salt_and_pepper_mask(shape: tuple[int, ...], fraction: float, generator: torch.Generator) -> Tensor:
    """Boolean mask ``[N, H, W]`` with exactly ⌊fraction·H·W⌋ True positions per image."""
    count, height, width = shape[0], shape[-2], shape[-1]
    pixels = height * width
    chosen = math.floor(fraction * pixels + 1e-9)
    keys = torch.rand(count, pixels, generator=generator, device=generator.device)
    mask = torch.zeros(count, pixels, dtype=torch.bool, device=generator.device)
    if chosen:
        mask.scatter_(1, keys.topk(chosen, dim=1).indices, True)
    return mask.view(count, height, width)


def salt_and_pepper(
    images: Tensor,
    fraction: float,
    generator: torch.Generator,
    mode: Literal["flip", "random_value"] = "flip",
) -> Tensor:
    """Corrupt exactly ⌊fraction·H·W⌋ pixels per image (see the module docstring)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"salt-and-pepper fraction must lie in [0, 1], got {fraction}")
    batch, lead = _as_batch(images)
    mask = salt_and_pepper_mask(tuple(batch.shape), fraction, generator).to(batch.device).unsqueeze(1)
    if mode == "flip":
        replacement = 1.0 - batch
    elif mode == "random_value":
        values = (_rand((batch.shape[0], 1, *batch.shape[-2:]), generator, batch) < 0.5).to(batch.dtype)
        replacement = values.expand_as(batch)
    else:
        raise ValueError(f"unknown salt-and-pepper mode {mode!r}; choose 'flip' or 'random_value'")
    return torch.where(mask, replacement, batch).reshape(*lead, *batch.shape[1:])


def block_mask(shape: tuple[int, ...], size: int, generator: torch.Generator) -> Tensor:
    """Boolean mask ``[N, H, W]``: one size×size square per image, uniformly placed inside the frame."""
    count, height, width = shape[0], shape[-2], shape[-1]
    if not 0 <= size <= min(height, width):
        raise ValueError(f"a {size}×{size} block does not fit a {height}×{width} image")
    device = generator.device
    top = torch.randint(0, height - size + 1, (count, 1), generator=generator, device=device)
    left = torch.randint(0, width - size + 1, (count, 1), generator=generator, device=device)
    rows = torch.arange(height, device=device).unsqueeze(0)
    cols = torch.arange(width, device=device).unsqueeze(0)
    inside_rows = (rows >= top) & (rows < top + size)  # [N, H]
    inside_cols = (cols >= left) & (cols < left + size)  # [N, W]
    return inside_rows.unsqueeze(-1) & inside_cols.unsqueeze(-2)


def block(images: Tensor, size: int, generator: torch.Generator, fill: float = 0.0) -> Tensor:
    """Fill one size×size square per image with ``fill`` (0: occlusion), all channels."""
    batch, lead = _as_batch(images)
    mask = block_mask(tuple(batch.shape), size, generator).to(batch.device).unsqueeze(1)
    return batch.masked_fill(mask, fill).reshape(*lead, *batch.shape[1:])


def rotation(
    images: Tensor,
    degrees: float,
    generator: torch.Generator,
    sign: Literal["random", "positive"] = "random",
    binary: bool = True,
) -> Tensor:
    """Rotate each image by ±``degrees`` about its centre (bilinear, zero padding).

    Binary images are re-binarized at 0.5. A rotation by 0° returns the images unchanged.
    """
    batch, lead = _as_batch(images)
    count, _, height, width = batch.shape
    if sign == "random":
        signs = torch.where(_rand((count,), generator, batch) < 0.5, -1.0, 1.0)
    elif sign == "positive":
        signs = torch.ones(count, device=batch.device)
    else:
        raise ValueError(f"unknown rotation sign {sign!r}; choose 'random' or 'positive'")
    angles = signs.to(batch.dtype) * math.radians(degrees)
    cos, sin = torch.cos(angles), torch.sin(angles)
    zero = torch.zeros_like(cos)
    # affine_grid works in normalised coordinates; the aspect factors keep the rotation rigid.
    theta = torch.stack(
        [torch.stack([cos, -sin * height / width, zero], -1), torch.stack([sin * width / height, cos, zero], -1)], -2
    )
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    rotated = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if binary:
        rotated = (rotated >= 0.5).to(batch.dtype)
    rotated = torch.where((angles == 0).view(-1, 1, 1, 1), batch, rotated.clamp(0.0, 1.0))
    return rotated.reshape(*lead, *batch.shape[1:])


def gaussian(images: Tensor, std: float, generator: torch.Generator, binary: bool = True) -> Tensor:
    """Add N(0, std²) noise, clip to [0, 1]; binary images are re-binarized at 0.5."""
    if std < 0:
        raise ValueError(f"Gaussian noise std must be >= 0, got {std}")
    noise = torch.randn(images.shape, generator=generator, device=generator.device).to(images.device, images.dtype)
    noisy = (images + std * noise).clamp(0.0, 1.0)
    return (noisy >= 0.5).to(images.dtype) if binary else noisy


def corrupt(
    images: Tensor,
    kind: str,
    level: float,
    generator: torch.Generator,
    *,
    binary: bool = True,
    salt_pepper_mode: Literal["flip", "random_value"] = "flip",
    block_fill: float = 0.0,
    rotation_sign: Literal["random", "positive"] = "random",
) -> Tensor:
    """Apply corruption ``kind`` (one of :data:`CORRUPTIONS`, or ``"none"``) at ``level``."""
    actions: dict[str, Callable[[], Tensor]] = {
        "none": lambda: images.clone(),
        "salt_pepper": lambda: salt_and_pepper(images, level, generator, salt_pepper_mode),
        "block": lambda: block(images, int(level), generator, block_fill),
        "rotation": lambda: rotation(images, level, generator, rotation_sign, binary),
        "gaussian": lambda: gaussian(images, level, generator, binary),
    }
    if kind not in actions:
        raise ValueError(f"unknown corruption {kind!r}; choose one of {', '.join(actions)}")
    return actions[kind]()


def format_level(level: float) -> str:
    """A level as it appears in metric names: 0.15 -> '0.15', 12 -> '12', 30.0 -> '30'."""
    return f"{float(level):g}"


def tag_level(level: float) -> int | float:
    """A level as a metric tag: an int when whole (block 12, rotation 30), else the float (0.15)."""
    return int(level) if float(level).is_integer() else float(level)


def corruption_seed(base: int, *parts: object) -> int:
    """A stable 63-bit seed for one corruption setting (same on every machine and Python run)."""
    text = "/".join(str(part) for part in (base, *parts))
    return (base * 1_000_003 + zlib.crc32(text.encode())) % (2**63 - 1)


__all__ = [
    "CORRUPTIONS",
    "block",
    "block_mask",
    "corrupt",
    "corruption_seed",
    "format_level",
    "gaussian",
    "rotation",
    "salt_and_pepper",
    "salt_and_pepper_mask",
    "tag_level",
]
