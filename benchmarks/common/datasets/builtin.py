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

from memorybench.benchmarks.common.datasets.base import (
    DataFormatError,
    DataMissingError,
    ImageDataset,
    ImageSplit,
    register_dataset,
)

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
    """An .amat file (one image a line, 784 space-separated 0/1 values) -> uint8 ``[N, 1, 28, 28]``.

    Raises :class:`DataFormatError` naming the file and the first bad line: a line without
    exactly 784 values, a value other than 0 or 1, an empty file.
    """
    path = Path(path)
    raw = path.read_bytes()
    line_bytes = IMAGE_PIXELS * 2  # "v " × 783 + "v\n": every value a single character
    rows = len(raw) // line_bytes
    if raw and len(raw) % line_bytes == 0:
        table = np.frombuffer(raw, dtype=np.uint8).reshape(rows, line_bytes)
        separators = table[:, 1::2]
        if (separators[:, :-1] == ord(" ")).all() and (separators[:, -1] == ord("\n")).all():
            values = table[:, 0::2] - ord("0")
            if values.max(initial=0) <= 1:
                return torch.from_numpy(values.reshape(-1, 1, 28, 28).copy())
    return torch.from_numpy(_parse_amat_lines(path, raw).reshape(-1, 1, 28, 28))


IMAGE_PIXELS = 784


def _parse_amat_lines(path: Path, raw: bytes) -> np.ndarray:
    """The strict slow path for other whitespace layouts; names the first bad line."""
    rows = []
    for number, line in enumerate(raw.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != IMAGE_PIXELS:
            raise DataFormatError(path, f"line {number} has {len(tokens)} values, expected {IMAGE_PIXELS}")
        try:
            row = np.array([float(token) for token in tokens])
        except ValueError:
            bad = next(t for t in tokens if not _is_number(t))
            raise DataFormatError(path, f"line {number}: {bad[:20]!r} is not a number") from None
        if not np.isin(row, (0.0, 1.0)).all():
            bad_value = row[~np.isin(row, (0.0, 1.0))][0]
            raise DataFormatError(path, f"line {number}: value {bad_value:g} is not 0 or 1 (binarized MNIST)")
        rows.append(row.astype(np.uint8))
    if not rows:
        raise DataFormatError(path, "no images (empty file)")
    return np.stack(rows)


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _register_optional_loaders() -> None:
    import importlib
    import pkgutil

    import memorybench.benchmarks.common.datasets as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in ("base", "builtin"):
            importlib.import_module(f"memorybench.benchmarks.common.datasets.{module.name}")


_register_optional_loaders()
