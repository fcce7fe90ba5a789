"""Datasets: a registry of image datasets with train/valid/test splits held in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memorybench.benchmarks.common.datasets.base import (
    DATA_ROOT_ENV,
    DATASETS,
    SPLITS,
    DataFormatError,
    DataMissingError,
    DatasetConfig,
    ImageDataset,
    ImageSplit,
    register_dataset,
    resolve_data_root,
)


def available() -> list[str]:
    """Names of every registered dataset."""
    return DATASETS.available()


def create(name: str, data_root: str | Path | None = None, **settings: Any) -> ImageDataset:
    """Instantiate dataset ``name`` with its config keys ``settings``."""
    dataset: ImageDataset = DATASETS.create(name, settings, data_root=data_root)
    return dataset


__all__ = [
    "DATASETS",
    "DATA_ROOT_ENV",
    "SPLITS",
    "DataFormatError",
    "DataMissingError",
    "DatasetConfig",
    "ImageDataset",
    "ImageSplit",
    "available",
    "create",
    "register_dataset",
    "resolve_data_root",
]
