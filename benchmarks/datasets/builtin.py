"""Built-in datasets that need no download: ``digits`` (bundled) and ``binarized_mnist`` (.amat).

Further loaders (Omniglot, torchvision formats) register themselves from their own modules,
imported at the end of this file so the registry sees every built-in on first use.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.datasets.base import DataMissingError, ImageDataset, ImageSplit, register_dataset

DIGITS_TEST_SIZE = 300
DIGITS_VALID_SIZE = 150


@register_dataset("digits")
class Digits(ImageDataset):
    """scikit-learn's bundled 8×8 digits upscaled to 28×28 and binarized (offline default)."""

    needs_files = False

    def load_split(self, split: str) -> ImageSplit:
        train, valid, test = _digits_splits()
        return {"train": train, "valid": valid, "test": test}[split]


@functools.lru_cache(maxsize=1)
def _digits_splits() -> tuple[ImageSplit, ImageSplit, ImageSplit]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16.0  # [1797, 1, 8, 8] in [0, 1]
    upscaled = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    pixels = (upscaled >= 0.5).to(torch.uint8)
    labels = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(0))
    test, valid = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE : DIGITS_TEST_SIZE + DIGITS_VALID_SIZE]
    train = order[DIGITS_TEST_SIZE + DIGITS_VALID_SIZE :]
    return tuple(ImageSplit(pixels[i], labels[i]) for i in (train, valid, test))  # type: ignore[return-value]


AMAT_FILES = {split: f"binarized_mnist_{split}.amat" for split in ("train", "valid", "test")}


@register_dataset("binarized_mnist")
class BinarizedMNIST(ImageDataset):
    """Statically binarized MNIST of Larochelle & Murray (50k/10k/10k), read from .amat files."""

    subdirectory = "binarized_mnist"

    def check_available(self) -> None:
        missing = [name for name in AMAT_FILES.values() if not (self.directory / name).is_file()]
        if missing:
            raise DataMissingError(self.registry_name, self.directory, ", ".join(AMAT_FILES.values()))

    def load_split(self, split: str) -> ImageSplit:
        self.check_available()
        return ImageSplit(read_amat(self.directory / AMAT_FILES[split]))


@functools.lru_cache(maxsize=8)
def read_amat(path: Path) -> torch.Tensor:
    """An .amat file (one image a line, 784 space-separated 0/1 values) -> uint8 ``[N, 1, 28, 28]``."""
    raw = Path(path).read_bytes()
    line_bytes = 784 * 2  # "v " × 783 + "v\n": every value a single character
    if len(raw) % line_bytes == 0 and raw[line_bytes - 1 :: line_bytes].count(b"\n") == len(raw) // line_bytes:
        values = np.frombuffer(raw, dtype=np.uint8)[0::2] - ord("0")
    else:  # tolerate other whitespace layouts (slower path)
        values = np.array(raw.split(), dtype=np.float32).round().astype(np.uint8)
    if values.size % 784 or values.max(initial=0) > 1:
        raise ValueError(f"{path}: not a binarized MNIST .amat file (expected rows of 784 values 0/1)")
    return torch.from_numpy(values.reshape(-1, 1, 28, 28).copy())


def _register_optional_loaders() -> None:
    import importlib
    import pkgutil

    import benchmarks.datasets as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in ("base", "builtin"):
            importlib.import_module(f"benchmarks.datasets.{module.name}")


_register_optional_loaders()
