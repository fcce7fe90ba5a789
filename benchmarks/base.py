"""The benchmark protocol and registry.

A benchmark receives a (trained) model and a dataset through a :class:`BenchmarkContext` and
returns a :class:`BenchmarkOutcome`: flat metrics with units and direction, the protocol it
followed, and any raw per-step files it wrote into the run directory. A benchmark never knows
which model it runs; what it needs from a model is a declared capability, checked in
:meth:`Benchmark.not_applicable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from memorybench.benchmarks.common.datasets import ImageDataset
from memorybench.memories.configuration import require
from memorybench.memories.protocol import MemoryModel
from memorybench.memories.registry import Registry


@dataclass(frozen=True, kw_only=True)
class BenchmarkConfig:
    """Settings every benchmark accepts."""

    episode_seed: int = 1234  # seeds the evaluation episodes/corruptions: the same for every model
    batch_episodes: int = 32  # episodes evaluated per forward pass

    def validate(self) -> None:
        require(self.batch_episodes > 0, "batch_episodes", f"must be positive, got {self.batch_episodes}")


SPLIT_CHOICES = ("test", "valid", "train")


def require_split(value: str, key: str = "split", choices: tuple[str, ...] = SPLIT_CHOICES) -> None:
    """Config check: ``value`` names one of the dataset splits in ``choices``."""
    require(value in choices, key, f"{value!r} is not one of {', '.join(choices)}")


def require_lengths(lengths: tuple[int, ...], key: str = "episode_lengths") -> None:
    """Config check: every episode length is positive."""
    require(all(t > 0 for t in lengths), key, f"must be positive, got {list(lengths)}")


@dataclass
class BenchmarkContext:
    """What a benchmark gets to work with."""

    model: MemoryModel
    dataset: ImageDataset
    run_dir: Path
    seed: int
    device: torch.device
    progress: bool = False


@dataclass(frozen=True)
class Metric:
    """One measured number: its name, value and unit, the direction that is better, its standard
    error when the benchmark has one (data, never a ``_stderr`` name suffix), and the tags saying
    which setting it was measured at (data, never slash-encoded in the name), e.g.
    ``Metric("success_rate", 0.2, "fraction", True, tags={"T": 16, "noise": "salt_pepper", "level": 0.1})``."""

    name: str
    value: float
    unit: str = ""
    higher_is_better: bool = False
    stderr: float | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    # True for a number that describes the data or the samples rather than ranking models (e.g. the
    # distances between written items): reports show it without a direction and never mark a best.
    descriptive: bool = False


@dataclass
class BenchmarkOutcome:
    """What a benchmark measured: metrics, the protocol followed, files written, figures declared.

    A metric without tags is a headline number; the same name with tags is that quantity at one
    setting (``success_rate`` averages every cell, ``success_rate`` with ``{"T": 16, "noise":
    "block", "level": 12}`` is one cell). ``figures`` declares the charts a report should draw from this run's files (see
    :class:`Figure`); a benchmark never draws line charts itself, only image artifacts.
    """

    metrics: list[Metric] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)

    def add(
        self,
        name: str,
        value: float,
        unit: str = "",
        higher_is_better: bool = False,
        *,
        stderr: float | None = None,
        tags: dict[str, Any] | None = None,
        descriptive: bool = False,
    ) -> None:
        error = None if stderr is None else float(stderr)
        self.metrics.append(Metric(name, float(value), unit, higher_is_better, error, dict(tags or {}), descriptive))


@dataclass(frozen=True)
class Figure:
    """A chart (or an image artifact) a report draws for this benchmark, declared as data.

    ``kind="line"``: one chart per dataset from ``file`` (a CSV this run wrote) over all runs of the
    benchmark: the rows matching ``where``, ``x`` against ``y``, one line per memory (and per value
    of ``hue``; runs of several seeds pooled, with a band of ``error`` columns when given), one
    panel per value of ``facet``. ``kind="image"``: ``file``
    is a PNG the benchmark wrote, shown as it is, one per run.
    """

    name: str  # unique within the benchmark, e.g. "hamming_per_step"
    kind: str  # "line" or "image"
    file: str  # a file in the run directory
    title: str = ""
    x: str = ""
    y: str = ""
    error: str = ""  # column with the standard error of y ("" for none)
    facet: str = ""  # column splitting the chart into panels ("" for one panel)
    hue: str = ""  # column whose values are separate lines within a panel, besides one per memory ("" for none)
    where: dict[str, Any] = field(default_factory=dict)  # only the rows whose columns equal these values
    logx: bool = False  # logarithmic x axis (base 2 when integer_x)
    logy: bool = False  # logarithmic y axis
    xlabel: str = ""
    ylabel: str = ""
    lower_is_better: bool | None = None  # said in the y label when known
    integer_x: bool = False  # integer ticks (steps, lengths)
    trials: str = ""  # column counting the trials of a proportion y: band √(y(1−y)/trials) when no ``error``
    facet_units: dict[str, str] = field(default_factory=dict)  # per facet value: the unit of its hue (levels)


class Benchmark:
    """Base class; subclasses set ``config_class`` and implement :meth:`run`."""

    config_class: ClassVar[type[BenchmarkConfig]] = BenchmarkConfig
    registry_name: ClassVar[str] = ""
    needs_training: ClassVar[bool] = True  # train the model before running (runtime: no)

    def __init__(self, config: BenchmarkConfig):
        self.config = config

    def not_applicable(self, model_class: type[MemoryModel]) -> str | None:
        """Why this benchmark cannot run on ``model_class`` (None when it can)."""
        return None

    def run(self, context: BenchmarkContext) -> BenchmarkOutcome:
        raise NotImplementedError


BENCHMARKS: Registry[type[Benchmark]] = Registry(
    "benchmark", "memorybench.benchmarks", builtin_package="memorybench.benchmarks", base=Benchmark
)
register_benchmark = BENCHMARKS.register
