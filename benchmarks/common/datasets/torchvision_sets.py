"""Datasets in torchvision's file formats: MNIST (dynamically binarized), FashionMNIST, CIFAR10/100, CelebA.

Files sit under the data root exactly where torchvision's dataset classes look for them
(``<root>/MNIST/raw/``, ``<root>/FashionMNIST/raw/``, ``<root>/cifar-10-batches-py/``,
``<root>/cifar-100-python/``, ``<root>/celeba/``), so a folder torchvision prepared works as is.
Nothing is fetched unless the dataset config says ``download: true`` (then torchvision downloads).
Missing or corrupt files raise :class:`DataMissingError`, never torchvision's ``RuntimeError``.

Images are uint8 tensors ``[N, C, H, W]`` taken straight from torchvision's ``.data`` arrays (no
per-item PIL loop; CelebA, which has no such array, is decoded once with a thread pool) and are
cached per process.

Splits: ``test`` is the official test split; ``valid`` a deterministic holdout of the official
train split (:func:`benchmarks.datasets.base.holdout`, ``valid_size`` images: 10,000 for the
MNIST-likes, giving MNIST's usual 50k/10k/10k, and 5,000 for CIFAR); ``train`` the rest. CelebA
uses its official partition (162,770 / 19,867 / 19,962). Dynamically binarized evaluation splits
are binarized once with fixed seeds, so every model is scored on the same binary images.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import pickle
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from memorybench.benchmarks.common.datasets.base import (
    DataFormatError,
    DataMissingError,
    DatasetConfig,
    ImageDataset,
    ImageSplit,
    holdout,
    register_dataset,
)
from memorybench.memories.configuration import require

VALID_BINARIZATION_SEED = 1  # seeds that freeze dynamically binarized evaluation splits
TEST_BINARIZATION_SEED = 0


def evaluation_split(split: str, train: ImageSplit, test: ImageSplit, valid_size: int) -> ImageSplit:
    """Split ``split`` of a dataset given as a train pool and a test set.

    ``train`` is the pool minus a deterministic holdout of ``valid_size`` images, ``valid`` the
    holdout; ``valid`` and ``test`` are binarized once (fixed seeds) when the data is dynamically
    binarized, ``train`` keeps sampling a fresh binarization at every read.
    """
    if split == "test":
        return test.frozen_binarization(TEST_BINARIZATION_SEED)
    require(valid_size < len(train), "valid_size", f"must be smaller than the {len(train)} training images")
    remaining, valid = holdout(train, valid_size)
    return remaining if split == "train" else valid.frozen_binarization(VALID_BINARIZATION_SEED)


@contextlib.contextmanager
def torchvision_errors(dataset: str, directory: Path, expected: str, files: Sequence[Path] = ()) -> Iterator[None]:
    """Turn torchvision's "not found or corrupted" ``RuntimeError`` into :class:`DataMissingError`,
    and a damaged file (an unreadable pickle, a truncated image) into :class:`DataFormatError`
    naming the first of ``files`` that cannot be unpickled (else the directory)."""
    try:
        yield
    except (DataMissingError, DataFormatError):
        raise
    except RuntimeError as error:
        culprit = next((path for path in files if not _unpickles(path)), None) if files else None
        if culprit is not None and all(path.is_file() for path in files):  # there, but damaged
            raise DataFormatError(culprit, "damaged or not in torchvision's format (it cannot be unpickled)") from None
        raise DataMissingError(dataset, directory, expected, hint=f"torchvision: {error}") from error
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError, TypeError, OSError) as error:
        culprit = next((path for path in files if not _unpickles(path)), directory)
        text = str(error).splitlines()[0] if str(error) else ""
        raise DataFormatError(
            culprit, f"damaged or not in torchvision's format ({type(error).__name__}: {text})"
        ) from None


def _unpickles(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            pickle.load(file, encoding="latin1")
    except Exception:
        return False
    return True


def missing_files(directory: Path, names: list[str]) -> list[str]:
    """The entries of ``names`` (files, or folders when they end in ``/``) absent from ``directory``."""
    return [name for name in names if not (directory / name).exists()]


class TorchvisionDataset(ImageDataset):
    """Base for the torchvision-format sets: ``subdirectory`` is the folder torchvision reads."""

    def expected_files(self) -> list[str]:
        """File names (relative to :attr:`directory`) that must exist when ``download`` is false."""
        raise NotImplementedError

    def check_available(self) -> None:
        if self.config.download:
            return  # torchvision fetches what is missing when the split is loaded
        expected = self.expected_files()
        if missing_files(self.directory, expected):
            raise DataMissingError(
                self.registry_name, self.directory, ", ".join(expected), hint="set download: true to fetch them"
            )


# --- MNIST and FashionMNIST (IDX files) ------------------------------------------------------------------------------

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True, kw_only=True)
class MNISTLikeConfig(DatasetConfig):
    valid_size: int = 10_000  # train images held out as valid (60,000 -> 50,000 train)


class IDXDataset(TorchvisionDataset):
    """Base for MNIST-like sets: IDX files in ``<root>/<subdirectory>/raw/``, plain or ``.gz``.

    torchvision reads the plain files; when only the ``.gz`` files as downloaded are there, they
    are decompressed in memory instead (torchvision itself only reads them after ``download``).
    """

    config_class = MNISTLikeConfig

    def check_available(self) -> None:
        if self.config.download:
            return
        raw = self.directory / "raw"
        if any(not (raw / name).is_file() and not (raw / f"{name}.gz").is_file() for name in IDX_FILES):
            raise DataMissingError(
                self.registry_name,
                raw,
                ", ".join(IDX_FILES),
                hint="or the same names with .gz as downloaded; set download: true to fetch them",
            )

    def pools(self) -> tuple[ImageSplit, ImageSplit]:
        """The official train and test splits as 8-bit ``[N, 1, 28, 28]`` splits."""
        self.check_available()
        with torchvision_errors(self.registry_name, self.directory / "raw", ", ".join(IDX_FILES)):
            arrays = read_idx_dataset(self.root, self.subdirectory, self.config.download)
        train_images, train_labels, test_images, test_labels = arrays
        return ImageSplit(train_images, train_labels, binary=False), ImageSplit(test_images, test_labels, binary=False)

    def load_split(self, split: str) -> ImageSplit:
        train, test = self.pools()
        return evaluation_split(split, train, test, self.config.valid_size)


@functools.lru_cache(maxsize=4)
def read_idx_dataset(root: Path, name: str, download: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train images ``[60000, 1, 28, 28]`` uint8, labels, test images, labels of torchvision set ``name``."""
    raw = root / name / "raw"
    if download:
        import torchvision.datasets

        reader = getattr(torchvision.datasets, name)
        train, test = (reader(str(root), train=is_train, download=download) for is_train in (True, False))
        return train.data.unsqueeze(1), train.targets, test.data.unsqueeze(1), test.targets
    paths = [raw / file if (raw / file).is_file() else raw / f"{file}.gz" for file in IDX_FILES]
    arrays = [read_idx(path) for path in paths]
    for images, labels, image_path, label_path in (
        (arrays[0], arrays[1], paths[0], paths[1]),
        (arrays[2], arrays[3], paths[2], paths[3]),
    ):
        if images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
            raise DataFormatError(image_path, f"expected [N, 28, 28] images, got shape {list(images.shape)}")
        if labels.dim() != 1 or len(labels) != len(images):
            raise DataFormatError(
                label_path, f"{list(labels.shape)} labels for {len(images)} images in {image_path.name}"
            )
    return arrays[0].unsqueeze(1), arrays[1].long(), arrays[2].unsqueeze(1), arrays[3].long()


def read_idx(path: Path) -> Tensor:
    """A uint8 IDX file (plain or gzip-compressed) as a tensor of its declared shape.

    Raises :class:`DataFormatError` naming the file when it is truncated, not gzip, or not IDX."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataFormatError(path, f"damaged gzip file ({type(error).__name__}: {error})") from None
    if len(data) < 4:
        raise DataFormatError(path, f"not an IDX file ({len(data)} bytes)")
    zero, dtype_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or dtype_code != 0x08 or len(data) < 4 + 4 * ndim:
        raise DataFormatError(path, f"not an unsigned-byte IDX file (magic {data[:4].hex()})")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise DataFormatError(path, f"{values.size} values for declared shape {shape} (truncated?)")
    return torch.from_numpy(values.reshape(shape).copy())


@register_dataset("binarized_mnist_dynamic")
class DynamicallyBinarizedMNIST(IDXDataset):
    """MNIST (torchvision files) with a fresh Bernoulli binarization at every read; valid/test fixed."""

    subdirectory = "MNIST"

    def pools(self) -> tuple[ImageSplit, ImageSplit]:
        train, test = super().pools()
        return (
            ImageSplit(train.pixels, train.labels, binary=False, dynamic_binarization=True),
            ImageSplit(test.pixels, test.labels, binary=False, dynamic_binarization=True),
        )


@register_dataset("fashion_mnist")
class FashionMNIST(IDXDataset):
    """Fashion-MNIST, 8-bit grey 28×28 (torchvision files), discretized-logistic likelihood."""

    subdirectory = "FashionMNIST"
    likelihood = "dmol"


# --- CIFAR10 and CIFAR100 (python pickles) ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CIFARConfig(DatasetConfig):
    valid_size: int = 5_000  # train images held out as valid (50,000 -> 45,000 train)


class CIFARDataset(TorchvisionDataset):
    """Base for the CIFAR sets: torchvision's python-pickle batches in ``<root>/<subdirectory>/``."""

    config_class = CIFARConfig
    image_shape = (3, 32, 32)
    likelihood = "dmol"
    torchvision_name: ClassVar[str] = ""

    def expected_files(self) -> list[str]:
        import torchvision.datasets

        reader = getattr(torchvision.datasets, self.torchvision_name)
        return [name for name, _ in reader.train_list + reader.test_list] + [reader.meta["filename"]]

    def load_split(self, split: str) -> ImageSplit:
        self.check_available()
        expected = ", ".join(self.expected_files())
        files = [self.directory / name for name in self.expected_files()]
        with torchvision_errors(self.registry_name, self.directory, expected, files):
            arrays = read_cifar(self.root, self.torchvision_name, self.config.download)
        train_images, train_labels, test_images, test_labels = arrays
        train, test = (
            ImageSplit(train_images, train_labels, binary=False),
            ImageSplit(test_images, test_labels, binary=False),
        )
        return evaluation_split(split, train, test, self.config.valid_size)


@functools.lru_cache(maxsize=4)
def read_cifar(root: Path, name: str, download: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train images ``[N, 3, 32, 32]`` uint8, labels, test images, labels of torchvision set ``name``."""
    import torchvision.datasets

    reader = getattr(torchvision.datasets, name)
    arrays: list[Tensor] = []
    for is_train in (True, False):
        dataset = reader(str(root), train=is_train, download=download)
        arrays += [torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(dataset.targets)]
    return arrays[0], arrays[1], arrays[2], arrays[3]


@register_dataset("cifar10")
class CIFAR10(CIFARDataset):
    """CIFAR-10, 8-bit RGB 32×32 (torchvision's python batches), discretized-logistic likelihood."""

    subdirectory = "cifar-10-batches-py"
    torchvision_name = "CIFAR10"


@register_dataset("cifar100")
class CIFAR100(CIFARDataset):
    """CIFAR-100, 8-bit RGB 32×32 (torchvision's python files), fine labels, discretized-logistic likelihood."""

    subdirectory = "cifar-100-python"
    torchvision_name = "CIFAR100"


# --- CelebA (aligned JPEG folder) ------------------------------------------------------------------------------------

CELEBA_PARTITIONS = ("train", "valid", "test")  # torchvision's names for list_eval_partition.txt's 0, 1, 2


@dataclass(frozen=True, kw_only=True)
class CelebAConfig(DatasetConfig):
    image_size: int = 64  # side of the square images after cropping and resizing
    crop_size: int = 148  # side of the centre crop taken from the 178×218 aligned images before resizing
    max_images: int = 0  # keep only the first N images of each split (0: all; decoding all 202,599 takes minutes)

    def validate(self) -> None:
        super().validate()
        require(self.valid_size == 0, "valid_size", "CelebA has its own validation split (list_eval_partition.txt)")
        require(0 < self.crop_size <= 178, "crop_size", f"must be in 1..178 (image width), got {self.crop_size}")
        require(self.image_size > 0, "image_size", f"must be positive, got {self.image_size}")
        require(self.max_images >= 0, "max_images", f"must be >= 0, got {self.max_images}")


@register_dataset("celeba")
class CelebA(TorchvisionDataset):
    """CelebA aligned faces, 8-bit RGB, centre crop 148 resized to 64×64 (configurable), official split."""

    config_class = CelebAConfig
    config: CelebAConfig
    subdirectory = "celeba"
    image_shape = (3, 64, 64)
    likelihood = "dmol"

    def __init__(self, config: DatasetConfig, data_root: str | Path | None = None):
        super().__init__(config, data_root)
        self.image_shape = (3, self.config.image_size, self.config.image_size)  # type: ignore[misc]

    def expected_files(self) -> list[str]:
        from torchvision.datasets import CelebA as Reader

        return ["img_align_celeba/"] + [name for _, _, name in Reader.file_list if not name.endswith(".zip")]

    def load_split(self, split: str) -> ImageSplit:
        self.check_available()
        config = self.config
        with torchvision_errors(self.registry_name, self.directory, ", ".join(self.expected_files())):
            pixels, identities = read_celeba(
                self.root, split, config.image_size, config.crop_size, config.max_images, config.download
            )
        return ImageSplit(pixels, identities, binary=False)


@functools.lru_cache(maxsize=6)
def read_celeba(
    root: Path, split: str, image_size: int, crop_size: int, max_images: int, download: bool
) -> tuple[Tensor, Tensor]:
    """Images ``[N, 3, image_size, image_size]`` uint8 and identity labels ``[N]`` of one official split.

    Each aligned 178×218 image is centre-cropped to ``crop_size`` (the face region) and resized
    with Pillow's antialiased bilinear filter.
    """
    from torchvision.datasets import CelebA as Reader

    dataset = Reader(str(root), split=split, target_type="identity", download=download)
    count = len(dataset.filename) if max_images == 0 else min(max_images, len(dataset.filename))
    folder = Path(dataset.root) / dataset.base_folder / "img_align_celeba"
    paths = [folder / name for name in dataset.filename[:count]]
    decode = functools.partial(decode_face, crop_size=crop_size, image_size=image_size)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # Pillow releases the GIL while decoding
        images = list(pool.map(decode, paths, chunksize=64))
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return pixels, dataset.identity[:count, 0].long()


def decode_face(path: Path, crop_size: int, image_size: int) -> np.ndarray[Any, Any]:
    """One CelebA JPEG -> ``[image_size, image_size, 3]`` uint8: centre crop, then resize."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, ValueError, SyntaxError) as error:  # Pillow: missing, truncated or not an image
        raise DataFormatError(path, f"not a readable image ({type(error).__name__}: {error})") from None
    left, top = (rgb.width - crop_size) // 2, (rgb.height - crop_size) // 2
    face = rgb.crop((left, top, left + crop_size, top + crop_size))
    return np.asarray(face.resize((image_size, image_size), Image.Resampling.BILINEAR))
