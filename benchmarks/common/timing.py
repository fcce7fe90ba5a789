"""Timing and peak memory: the one kit the runtime benchmark, capacity and the speed scripts share.

Every timed call is bracketed by ``torch.cuda.synchronize`` on GPUs (no-op on CPU), so a time
covers the work and not just its launch. :class:`PeakMemory` is the one peak-memory meter: on
CUDA the allocator's peak above what was held when the block began; on CPU the peak of torch's
allocations minus frees inside the block, from ``torch.profiler`` memory events (exact for
tensor storage; Python objects and allocator slack are not counted).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import torch
from torch import Tensor

from memorybench.memories.protocol import LatentMemory


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(
    call: Callable[[], dict[str, float] | None], device: torch.device, warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Run ``call`` ``warmup`` times untimed, then ``repeats`` times timed (ms, synchronized).

    ``call`` may return a dict of named sub-timings in ms (e.g. write and read); they are collected too.
    """
    for _ in range(warmup):
        call()
        synchronize(device)
    timings: dict[str, list[float]] = {"total": []}
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        parts = call()
        synchronize(device)
        timings["total"].append(1e3 * (time.perf_counter() - start))
        for name, value in (parts if isinstance(parts, dict) else {}).items():
            timings.setdefault(name, []).append(value)
    return timings


def summarize(values: list[float]) -> dict[str, float]:
    """Median, mean, min and interquartile range of timings (in the timings' unit)."""
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return {
        "median": statistics.median(ordered),
        "mean": statistics.fmean(ordered),
        "min": ordered[0],
        "iqr": quartiles[2] - quartiles[0],
    }


class PeakMemory:
    """Peak memory (MB) a block adds: ``with PeakMemory(device) as peak: ...`` then ``peak.mb``
    (None when the CPU profiler cannot report memory events)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.mb: float | None = None
        self._before = 0
        self._profile: Any = None

    @property
    def method(self) -> str:
        """What :attr:`mb` measures, in words (recorded in protocols)."""
        if self.device.type == "cuda":
            return "torch.cuda.max_memory_allocated above the memory held when the block began"
        return "peak of torch CPU allocations minus frees during the block (torch.profiler memory events)"

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._before = torch.cuda.memory_allocated(self.device)
            return self
        from torch.profiler import ProfilerActivity, profile

        try:
            self._profile = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
            self._profile.__enter__()
        except (AttributeError, RuntimeError):
            self._profile = None
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.mb = (torch.cuda.max_memory_allocated(self.device) - self._before) / 2**20
            return
        if self._profile is None:
            return
        try:
            self._profile.__exit__(kind, error, trace)
            events = [e for e in self._profile.profiler.kineto_results.events() if e.name() == "[memory]"]
        except (AttributeError, RuntimeError):
            return
        live = peak = 0
        for event in sorted(events, key=lambda e: e.start_ns()):
            if str(event.device_type()).endswith("CPU"):
                live += event.nbytes()
                peak = max(peak, live)
        self.mb = peak / 2**20


def peak_memory_mb(call: Callable[[], Any], device: torch.device) -> float | None:
    """Peak extra memory (MB) of one ``call`` (see :class:`PeakMemory`)."""
    with PeakMemory(device) as peak:
        call()
    return peak.mb


def memory_call(memory: LatentMemory, codes: Tensor, device: torch.device) -> Callable[[], dict[str, float]]:
    """One write of ``codes`` ``[B, T, C]`` then one read of the same codes; returns write/read ms."""

    @torch.no_grad()
    def call() -> dict[str, float]:
        start = time.perf_counter()
        state = memory.write(codes)
        synchronize(device)
        middle = time.perf_counter()
        memory.read(codes, state)
        synchronize(device)
        end = time.perf_counter()
        return {"write": 1e3 * (middle - start), "read": 1e3 * (end - middle)}

    return call


def is_out_of_memory(error: BaseException) -> bool:
    """A CUDA or CPU allocation failure (torch raises these as RuntimeErrors)."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    message = str(error).lower()
    return isinstance(error, (RuntimeError, MemoryError)) and (
        "out of memory" in message or "can't allocate memory" in message
    )


def extrapolate(history: list[tuple[int, float]], length: int, max_exponent: float) -> float | None:
    """Predict a cost at ``length`` from (length, cost) pairs: power law through the last two
    points, exponent clamped to [1, ``max_exponent``] (linear from a single point)."""
    if not history:
        return None
    last_length, last_cost = history[-1]
    exponent = 1.0
    if len(history) >= 2:
        previous_length, previous_cost = history[-2]
        if previous_cost > 0 and last_cost > 0 and last_length > previous_length:
            exponent = math.log(last_cost / previous_cost) / math.log(last_length / previous_length)
            exponent = min(max(exponent, 1.0), max_exponent)
    return last_cost * (length / last_length) ** exponent


__all__ = [
    "PeakMemory",
    "extrapolate",
    "is_out_of_memory",
    "memory_call",
    "peak_memory_mb",
    "summarize",
    "synchronize",
    "time_calls",
]
