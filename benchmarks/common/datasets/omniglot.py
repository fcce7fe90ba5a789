"""Omniglot at 28×28, binarized: Burda et al.'s ``chardata.mat`` split, or torchvision-layout images.

Sources, searched in ``<root>/omniglot/`` and ``<root>/omniglot/omniglot-py/`` (where torchvision's
``Omniglot`` puts its downloads); with ``source: auto`` the first that exists wins:

1. ``chardata.mat``, the split of Burda et al. (2016) used by IWAE and GPM (24,345 train / 8,070
   test). Keys ``data`` and ``testdata`` hold grey levels in [0, 1], pixels × examples; each
   column is one 28×28 image in column-major (Fortran) order, as the IWAE reference loader reads
   it. ``reshape_order: C`` reproduces GPM's code, which reads the columns row-major and so
   trains on transposed characters.
2. torchvision's layout: ``images_background/`` and ``images_evaluation/`` folders
   (``<alphabet>/<character>/*.png``) or their zips; when the full set is absent, every small
   split beside it (``images_background_small1.zip``, ...). PNGs are read straight from the zips.
   The 105×105 images are resized to 28×28 with Pillow's bilinear filter (antialiased, so each
   output pixel averages its whole 3.75-pixel footprint; thin strokes stay more connected than
   with a box average) and inverted so strokes are 1.

Splits: ``test`` is chardata's test set or ``images_evaluation``; with background images only,
``test_character_fraction`` (20 %) of each alphabet's characters, chosen with a fixed seed, so
test characters never appear in training. ``valid`` is a deterministic holdout of the training
images (``valid_size`` images, or ``valid_fraction`` = 10 % of them when ``valid_size`` is 0);
``train`` is the rest.

Binarization: ``threshold`` (default; grey level >= 0.5 is 1, GPM's protocol) or ``dynamic``
(8-bit grey levels Bernoulli-sampled at every read, as IWAE; valid and test binarized once with
fixed seeds). Decoded images are cached per process, so repeated loads cost nothing.
"""

from __future__ import annotations

import functools
import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from memorybench.benchmarks.common.datasets.base import (
    DataFormatError,
    DataMissingError,
    DatasetConfig,
    ImageDataset,
    ImageSplit,
    register_dataset,
)
from memorybench.benchmarks.common.datasets.torchvision_sets import evaluation_split, torchvision_errors
from memorybench.memories.configuration import require

CHARDATA = "chardata.mat"
IMAGE_SIDE = 28
CHARACTER_SPLIT_SEED = 0


@dataclass(frozen=True, kw_only=True)
class OmniglotConfig(DatasetConfig):
    source: Literal["auto", "chardata", "images"] = "auto"  # auto: chardata.mat if present, else image folders/zips
    binarization: Literal["threshold", "dynamic"] = "threshold"  # fixed threshold (GPM) or Bernoulli per read (IWAE)
    threshold: float = 0.5  # grey level (strokes = 1) at or above which a pixel becomes 1
    reshape_order: Literal["F", "C"] = "F"  # chardata.mat columns: F as IWAE (upright), C as GPM's code (transposed)
    valid_fraction: float = 0.1  # share of the training images held out as valid when valid_size is 0
    test_character_fraction: float = 0.2  # share of each alphabet's characters used as test without images_evaluation

    def validate(self) -> None:
        super().validate()
        require(0.0 < self.threshold <= 1.0, "threshold", f"must be in (0, 1], got {self.threshold}")
        require(0.0 <= self.valid_fraction < 1.0, "valid_fraction", f"must be in [0, 1), got {self.valid_fraction}")
        fraction = self.test_character_fraction
        require(0.0 < fraction < 1.0, "test_character_fraction", f"must be in (0, 1), got {fraction}")


class Sources(NamedTuple):
    """What was found on disk: the .mat file, or image folders/zips for each torchvision set."""

    chardata: Path | None
    background: tuple[Path, ...]
    evaluation: tuple[Path, ...]


@register_dataset("omniglot")
class Omniglot(ImageDataset):
    """Omniglot 28×28 binarized: Burda split from chardata.mat, else torchvision image folders/zips."""

    config_class = OmniglotConfig
    config: OmniglotConfig
    subdirectory = "omniglot"

    def locate(self) -> Sources:
        """The files to read under :attr:`directory`, following ``source``; empty when none are there."""
        directories = [self.directory, self.directory / "omniglot-py"]
        if self.config.source != "images":
            chardata = next((d / CHARDATA for d in directories if (d / CHARDATA).is_file()), None)
            if chardata is not None or self.config.source == "chardata":
                return Sources(chardata, (), ())
        background, evaluation = (image_sources(directories, f"images_{kind}") for kind in ("background", "evaluation"))
        return Sources(None, background, evaluation)

    def check_available(self) -> None:
        sources = self.locate()
        if sources.chardata is not None or sources.background:
            return
        images = "images_background/ or images_background*.zip in torchvision's layout"
        expected = {"auto": f"{CHARDATA}, or {images}", "chardata": CHARDATA, "images": images}[self.config.source]
        if self.config.download and self.config.source != "chardata":
            with torchvision_errors(self.registry_name, self.directory, expected):
                download_images(self.directory)
            if self.locate().background:
                return
        hint = "also searched omniglot-py/ there"
        if self.config.source != "chardata":
            hint += "; set download: true to fetch torchvision's Omniglot zips"
        raise DataMissingError(self.registry_name, self.directory, expected, hint=hint)

    def load_split(self, split: str) -> ImageSplit:
        train, test = self.pools
        valid_size = self.config.valid_size or round(self.config.valid_fraction * len(train))
        return evaluation_split(split, train, test, valid_size)

    @functools.cached_property
    def pools(self) -> tuple[ImageSplit, ImageSplit]:
        """The binarized training pool (valid not yet held out) and test split, built once per instance."""
        self.check_available()
        sources, config = self.locate(), self.config
        if sources.chardata is not None:
            train, train_labels, test, test_labels = read_chardata(sources.chardata, config.reshape_order)
        else:
            train, train_labels, test, test_labels = read_image_splits(
                sources.background, sources.evaluation, config.test_character_fraction
            )
        return self.binarize(train, train_labels), self.binarize(test, test_labels)

    def binarize(self, grey: Tensor, labels: Tensor | None) -> ImageSplit:
        """Grey levels ``[N, 1, 28, 28]`` in [0, 1] (strokes = 1) as a binary or dynamically binarized split."""
        if self.config.binarization == "dynamic":
            pixels = (grey * 255.0).round().to(torch.uint8)
            return ImageSplit(pixels, labels, binary=False, dynamic_binarization=True)
        return ImageSplit((grey >= self.config.threshold).to(torch.uint8), labels)


# --- chardata.mat ----------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def read_chardata(path: Path, order: str) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
    """Train grey images ``[N, 1, 28, 28]`` float32, labels (or None), test images, labels from ``chardata.mat``."""
    from scipy.io import loadmat

    try:
        contents = loadmat(str(path))
    except (ValueError, OSError, TypeError, EOFError, zlib.error) as error:  # scipy: truncated or not a .mat file
        raise DataFormatError(path, f"not a readable MATLAB file ({_first_line(error)})") from None
    missing = [key for key in ("data", "testdata") if key not in contents]
    if missing:
        raise DataFormatError(path, f"not Burda's chardata.mat (no {', '.join(missing)} key)")
    train, test = (columns_to_images(contents[key], order, path) for key in ("data", "testdata"))
    return (
        train,
        labels_from(contents.get("target"), len(train)),
        test,
        labels_from(contents.get("testtarget"), len(test)),
    )


def columns_to_images(columns: np.ndarray, order: str, path: Path) -> Tensor:
    """``[784, N]`` pixels × examples -> ``[N, 1, 28, 28]`` float32, each column reshaped in ``order``."""
    if columns.ndim != 2 or columns.shape[0] != IMAGE_SIDE * IMAGE_SIDE:
        raise DataFormatError(path, f"expected a [784, N] pixels × examples array, got shape {columns.shape}")
    # Column n is image n; order "F" fills the 28×28 image column by column (pixel (r, c) = column[r + 28 c]).
    images = columns.T.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)  # row-major: pixel (r, c) = column[28 r + c]
    if order == "F":
        images = images.transpose(0, 2, 1)
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).unsqueeze(1)


def labels_from(target: np.ndarray | None, count: int) -> Tensor | None:
    """Class indices from a one-hot ``[K, N]`` (or ``[N, K]``) matrix or a length-N vector; None otherwise."""
    if target is None:
        return None
    target = np.asarray(target)
    if target.size == count:
        return torch.from_numpy(target.reshape(-1).astype(np.int64))
    if target.ndim == 2 and count in target.shape:
        axis = 0 if target.shape[1] == count else 1
        return torch.from_numpy(target.argmax(axis=axis).astype(np.int64))
    return None


# --- torchvision image folders and zips ------------------------------------------------------------------------------

Character = tuple[str, str, str]  # (source path, alphabet, character): unique across sources


def image_sources(directories: list[Path], stem: str) -> tuple[Path, ...]:
    """The full set ``stem`` (folder preferred to zip), else every small variant ``stem_*`` (sorted)."""
    for directory in directories:
        for candidate in (directory / stem, directory / f"{stem}.zip"):
            if candidate.exists():
                return (candidate,)
    variants: dict[str, Path] = {}
    for directory in directories:
        for candidate in sorted(directory.glob(f"{stem}_*")):  # a folder sorts before its zip and wins
            name = candidate.name.removesuffix(".zip")
            if name not in variants and (candidate.is_dir() or candidate.suffix == ".zip"):
                variants[name] = candidate
    return tuple(variants[name] for name in sorted(variants))


def download_images(directory: Path) -> None:
    """Fetch torchvision's background and evaluation zips into ``directory/omniglot-py`` (extracted)."""
    from torchvision.datasets import Omniglot as Reader

    for background in (True, False):
        Reader(str(directory), background=background, download=True)


def read_image_splits(
    background: tuple[Path, ...], evaluation: tuple[Path, ...], test_character_fraction: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train and test grey images ``[N, 1, 28, 28]`` float32 with character labels ``[N]``.

    Test is ``evaluation`` when given, else a per-alphabet character holdout of ``background``.
    Labels index the sorted characters of both sets together.
    """
    train, train_characters = read_image_sources(background)
    if evaluation:
        test, test_characters = read_image_sources(evaluation)
    else:
        held_out = held_out_characters(sorted(set(train_characters)), test_character_fraction)
        is_test = torch.tensor([character in held_out for character in train_characters])
        test, test_characters = train[is_test], [c for c in train_characters if c in held_out]
        train, train_characters = train[~is_test], [c for c in train_characters if c not in held_out]
    position = {character: i for i, character in enumerate(sorted(set(train_characters + test_characters)))}
    train_labels, test_labels = (torch.tensor([position[c] for c in cs]) for cs in (train_characters, test_characters))
    return train, train_labels, test, test_labels


def held_out_characters(characters: list[Character], fraction: float) -> set[Character]:
    """``fraction`` of each alphabet's characters (at least one of two or more), chosen with a fixed seed."""
    generator = torch.Generator().manual_seed(CHARACTER_SPLIT_SEED)
    alphabets: dict[tuple[str, str], list[Character]] = {}
    for character in characters:
        alphabets.setdefault(character[:2], []).append(character)
    held_out: set[Character] = set()
    for alphabet in sorted(alphabets):
        members = alphabets[alphabet]
        count = max(1, round(fraction * len(members))) if len(members) > 1 else 0
        held_out.update(members[i] for i in torch.randperm(len(members), generator=generator)[:count].tolist())
    return held_out


@functools.lru_cache(maxsize=4)
def read_image_sources(sources: tuple[Path, ...]) -> tuple[Tensor, list[Character]]:
    """Grey images ``[N, 1, 28, 28]`` float32 (strokes = 1) and the character of each image."""
    images: list[np.ndarray] = []
    characters: list[Character] = []
    for source in sources:
        found = 0
        try:
            for (alphabet, character, name), png in iterate_pngs(source):
                try:
                    images.append(decode_character(png))
                except (OSError, ValueError, SyntaxError) as error:  # Pillow: not an image, truncated
                    raise DataFormatError(
                        f"{source}/{name}" if source.is_dir() else f"{source}:{name}",
                        f"not a readable PNG image ({_first_line(error)})",
                    ) from None
                characters.append((str(source), alphabet, character))
                found += 1
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise DataFormatError(source, f"corrupted zip archive ({_first_line(error)})") from None
        except OSError as error:
            if isinstance(error, DataFormatError):
                raise
            raise DataFormatError(source, f"cannot be read ({_first_line(error)})") from None
        if not found:
            raise DataFormatError(source, "no <alphabet>/<character>/*.png images in it")
    return torch.from_numpy(np.stack(images)).unsqueeze(1), characters


def iterate_pngs(source: Path) -> Iterator[tuple[tuple[str, str, str], bytes]]:
    """``((alphabet, character, file name), png bytes)`` for every ``<alphabet>/<character>/*.png``
    of a folder or zip, sorted (the file name relative to ``source``)."""
    if source.is_dir():
        for path in sorted(source.glob("*/*/*.png")):
            yield (path.parts[-3], path.parts[-2], path.relative_to(source).as_posix()), path.read_bytes()
        return
    with zipfile.ZipFile(source) as archive:
        names = sorted(name for name in archive.namelist() if name.endswith(".png") and name.count("/") >= 2)
        for name in names:
            alphabet, character = name.split("/")[-3:-1]
            yield (alphabet, character, name), archive.read(name)


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def decode_character(png: bytes) -> np.ndarray:
    """One 105×105 black-on-white PNG -> ``[28, 28]`` float32 grey levels with strokes = 1."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        small = image.convert("L").resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BILINEAR)
    return 1.0 - np.asarray(small, dtype=np.float32) / 255.0
