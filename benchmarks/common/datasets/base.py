"""Dataset registry, the in-memory split type, and data-root resolution.

A dataset yields splits (``train``, ``valid``, ``test``) of images held as ``uint8`` tensors
``[N, C, H, W]``; :meth:`ImageSplit.images` turns an index tensor into float images in [0, 1]
(binarized on the fly for dynamically binarized data). Files are found under a data root from
the suite config, ``--data-root`` or ``MEMORYBENCH_DATA``; nothing is downloaded unless the
dataset config says ``download: true``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor

from memorybench.memories.configuration import require
from memorybench.memories.registry import Registry

DATA_ROOT_ENV = "MEMORYBENCH_DATA"
SPLITS = ("train", "valid", "test")


class DataMissingError(FileNotFoundError):
    """Dataset files are absent; ``str()`` names the dataset, the directory and the files expected."""

    def __init__(self, dataset: str, directory: Path, expected: str, hint: str = ""):
        message = f"dataset {dataset!r}: no data in {directory} (expected {expected})"
        super().__init__(message + (f"; {hint}" if hint else ""))

    def __str__(self) -> str:
        return str(self.args[0])


class DataFormatError(ValueError):
    """A data file is there but damaged or not in the expected format; ``str()`` names the file."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)


@dataclass(frozen=True, kw_only=True)
class DatasetConfig:
    """Options every dataset accepts."""

    root: str | None = None  # data root; default: --data-root, then $MEMORYBENCH_DATA, then ./data
    download: bool = False  # allow fetching missing files (torchvision sets only)
    valid_size: int = 0  # images held out of train as the validation split when the set has none

    def validate(self) -> None:
        require(self.valid_size >= 0, "valid_size", f"must be >= 0, got {self.valid_size}")


@dataclass
class ImageSplit:
    """One split: ``pixels`` ``[N, C, H, W]`` uint8 (0/1 for binary data, 0..255 otherwise)."""

    pixels: Tensor
    labels: Tensor | None = None
    binary: bool = True
    dynamic_binarization: bool = False  # Bernoulli-sample 8-bit pixels each time they are read

    def __len__(self) -> int:
        return self.pixels.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.pixels.shape[1:])  # type: ignore[return-value]

    def images(self, indices: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Float images ``[*indices.shape, C, H, W]`` in [0, 1] for an index tensor of any shape."""
        chosen = self.pixels[indices.reshape(-1)]
        if self.dynamic_binarization:
            probabilities = chosen.float() / 255.0
            floats = (torch.rand(probabilities.shape, generator=generator) < probabilities).float()
        elif self.binary:
            floats = chosen.float()
        else:
            floats = chosen.float() / 255.0
        return floats.reshape(*indices.shape, *self.pixels.shape[1:])

    def frozen_binarization(self, seed: int) -> ImageSplit:
        """A dynamically binarized split binarized once with ``seed`` (fixed test images)."""
        if not self.dynamic_binarization:
            return self
        generator = torch.Generator().manual_seed(seed)
        sampled = torch.rand(self.pixels.shape, generator=generator) < self.pixels.float() / 255.0
        return ImageSplit(sampled.to(torch.uint8), self.labels, binary=True)


class ImageDataset:
    """Base class: subclasses set the class attributes and implement :meth:`load_split`."""

    config_class: ClassVar[type[DatasetConfig]] = DatasetConfig
    registry_name: ClassVar[str] = ""
    image_shape: ClassVar[tuple[int, int, int]] = (1, 28, 28)
    likelihood: ClassVar[str] = "bernoulli"  # "bernoulli" (binary) or "dmol" (8-bit)
    subdirectory: ClassVar[str] = ""  # folder under the data root holding this dataset's files
    needs_files: ClassVar[bool] = True

    def __init__(self, config: DatasetConfig, data_root: str | Path | None = None):
        self.config = config
        self.root = resolve_data_root(config.root or data_root)
        self._cache: dict[str, ImageSplit] = {}

    @property
    def directory(self) -> Path:
        return self.root / self.subdirectory if self.subdirectory else self.root

    def check_available(self) -> None:
        """Raise :class:`DataMissingError` if the files are missing (called before any work)."""

    def load_split(self, split: str) -> ImageSplit:
        raise NotImplementedError

    def split(self, split: str) -> ImageSplit:
        """The named split, loaded once and cached."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if split not in self._cache:
            self._cache[split] = self.load_split(split)
        return self._cache[split]


def resolve_data_root(explicit: str | Path | None) -> Path:
    """Explicit root, else ``$MEMORYBENCH_DATA``, else ``./data``."""
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get(DATA_ROOT_ENV, "data")).expanduser()


def holdout(split: ImageSplit, size: int, seed: int = 0) -> tuple[ImageSplit, ImageSplit]:
    """Deterministically split ``size`` images off ``split``: (remaining train, held-out valid)."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    keep, held = order[size:], order[:size]

    def subset(index: Tensor) -> ImageSplit:
        labels = None if split.labels is None else split.labels[index]
        return ImageSplit(split.pixels[index], labels, split.binary, split.dynamic_binarization)

    return subset(keep), subset(held)


DATASETS: Registry[type[ImageDataset]] = Registry(
    "dataset", "memorybench.datasets", builtin_package="memorybench.benchmarks", base=ImageDataset
)
register_dataset = DATASETS.register
