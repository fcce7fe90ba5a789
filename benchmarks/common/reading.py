"""Iterative reading as the benchmarks run it: the model's own ``iterative_read`` and ``fed_back``
(memories/protocol.py), never a re-implementation of the feedback step."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from memorybench.benchmarks.common.metrics import wrong_pixels
from memorybench.memories.protocol import MemoryModel


def read_trajectory(
    model: MemoryModel, queries: Tensor, state: Any, steps: int, threshold: float | None, accept: str = "always"
) -> list[Tensor]:
    """The images ``[B, Tq, C, H, W]`` fed back after each of ``steps`` iterative reads of
    ``queries`` ``[B, Tq, C, H, W]`` from ``state`` (one per step; the memory is never updated)."""
    return [model.fed_back(r, threshold) for r in model.iterative_read(queries, state, steps, threshold, accept)]


def denoise(
    model: MemoryModel,
    queries: Tensor,
    clean: Tensor,
    state: Any,
    steps: int,
    threshold: float | None,
    accept: str = "always",
    tolerance: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """Read corrupted ``queries`` ``[B, Tq, C, H, W]`` iteratively and count the wrong pixels
    against ``clean`` (same shape): the images ``[steps+1, B, Tq, C, H, W]`` (step 0: the query)
    and their errors ``[steps+1, B, Tq]`` (Hamming for binary data, else pixels with |error| >
    ``tolerance``)."""
    images = torch.stack([queries, *read_trajectory(model, queries, state, steps, threshold, accept)])
    return images, wrong_pixels(images, clean, model.binary_data, tolerance)


__all__ = ["denoise", "read_trajectory"]
