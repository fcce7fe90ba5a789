"""Checks of a suite before any work starts, beyond the types its config dataclasses check.

Names that become directory names, ``resources:`` validated for every backend as the flags would
be, a model too large for this machine (built on the meta device), every split of every dataset
read (a damaged file fails here, naming it), episodes that fit the splits, a validation split of
at least one episode, and benchmark settings that depend on the images. Each failure is a
one-line :class:`ConfigError`.
"""

from __future__ import annotations

import os
from typing import Any

import memorybench.benchmarks.common.datasets as datasets
from memorybench import memories
from memorybench.benchmarks.common.datasets import DataMissingError
from memorybench.benchmarks.common.episodes import EpisodeLengthError, check_episode_length
from memorybench.memories.configuration import ConfigError
from memorybench.memories.registry import suggest

MAX_NAME_BYTES = 100  # suite names and memory labels become parts of directory names (255 bytes at most)


def check_path_name(value: Any, key: str, what: str) -> str:
    """``value`` if it can be (part of) one directory name on any POSIX filesystem; else ConfigError."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: expected a non-empty {what}, got {value!r}")
    bad = [c for c in value if c in "/\\" or not c.isprintable()]
    if bad:
        raise ConfigError(f"{key}: {value!r} cannot be part of a directory name (it contains {bad[0]!r})")
    if value.startswith(".") or value.startswith("-") or value == "_training":
        raise ConfigError(f"{key}: {value!r} cannot start with '.' or '-' or be '_training'")
    if len(value.encode("utf-8")) > MAX_NAME_BYTES:
        raise ConfigError(f"{key}: {value[:20]!r}... is longer than {MAX_NAME_BYTES} bytes")
    return value


def resource_sections() -> list[str]:
    """The backends a suite's ``resources:`` may configure (those that take resource options)."""
    from memorybench.runners.backends import BACKENDS

    return [name for name in BACKENDS.available() if BACKENDS.get(name).takes_resources()]


def check_resources(resources: Any) -> dict[str, Any]:
    """``resources:`` validated for every backend as the equivalent flags would be (nothing is probed)."""
    from memorybench.runners.backends import BACKENDS

    if resources is None:
        return {}
    sections = resource_sections()
    if not isinstance(resources, dict):
        raise ConfigError(f"resources: expected a mapping with keys {', '.join(sections)}, got {resources!r}")
    unknown = [key for key in resources if key not in sections]
    if unknown:
        raise ConfigError(
            f"resources: unknown key {unknown[0]!r}{suggest(str(unknown[0]), sections)}; valid keys: {', '.join(sections)}"
        )
    for key in sections:
        section = resources.get(key)
        if section is not None and not isinstance(section, dict):
            raise ConfigError(f"resources.{key}: expected a mapping of settings, got {section!r}")
        BACKENDS.config_for(key, BACKENDS.get(key).settings(section, None))
    return resources


def check_model_size(label: str, name: str, config: dict[str, Any], dataset: datasets.ImageDataset) -> None:
    """Build the model on the meta device (no memory) and refuse one this machine cannot hold.

    Training needs about four copies of the parameters (weights, gradients, two Adam moments).
    Errors of the model's own constructor (a ValueError for a combination of settings it
    refuses) are configuration errors too; anything the meta device itself cannot run is left
    to the run.
    """
    import torch

    try:
        with torch.device("meta"):
            model = memories.create(name, image_shape=dataset.image_shape, likelihood=dataset.likelihood, **config)
    except (ConfigError, ValueError) as error:
        raise ConfigError(f"memories.{label}: {str(error).splitlines()[0]}") from None
    except Exception:  # the meta device cannot run this constructor: nothing to learn here
        return
    tensors = [*model.parameters(), *model.buffers()]
    needed = 4 * sum(t.numel() * t.element_size() for t in tensors)
    available = _physical_memory()
    if available and needed > available:
        count = sum(t.numel() for t in model.parameters())
        raise ConfigError(
            f"memories.{label}: {count:,} parameters need about {needed / 2**30:.1f} GiB to train "
            f"(weights, gradients, Adam state), more than this machine's {available / 2**30:.1f} GiB"
        )


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def load_split(label: str, dataset: datasets.ImageDataset, split: str) -> int:
    """Load one split before any work (a damaged file fails here, naming it); its size."""
    try:
        return len(dataset.split(split))
    except (ConfigError, DataMissingError):
        raise
    except (ValueError, OSError, EOFError, RuntimeError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"datasets.{label}: cannot read the {split} split: {message}") from None


def check_datasets(
    dataset_objects: dict[str, datasets.ImageDataset],
    model_configs: dict[str, tuple[str, dict[str, Any]]],
    trains: bool,
) -> None:
    """Every split of every dataset readable and long enough for every model's episodes (and, when a
    benchmark trains, a validation split of at least one episode: training never silently skips it)."""
    for label, dataset in dataset_objects.items():
        dataset.check_available()
        sizes = {split: load_split(label, dataset, split) for split in ("train", "valid", "test")}
        for model_label, (model_name, config) in model_configs.items():
            check_model_size(model_label, model_name, config, dataset)
            for split in ("train", "test"):
                try:
                    check_episode_length(sizes[split], config["episode_length"], f"memories.{model_label}")
                except EpisodeLengthError as error:
                    raise ConfigError(f"{error} of dataset {label!r}") from None
            if trains and sizes["valid"] < config["episode_length"]:
                raise ConfigError(
                    f"datasets.{label}: the validation split has {sizes['valid']} images, fewer than one episode "
                    f"of memories.{model_label} (episode_length {config['episode_length']}); "
                    "training would run without validation (raise valid_size or valid_fraction)"
                )


def check_benchmarks_fit(benchmark_configs: dict[str, Any], dataset_objects: dict[str, datasets.ImageDataset]) -> None:
    """Benchmark settings that depend on the images (a benchmark config may define
    ``check_image_shape(image_shape)`` returning a problem, or None)."""
    for label, config in benchmark_configs.items():
        check = getattr(config, "check_image_shape", None)
        if not callable(check):
            continue
        for dataset_label, dataset in dataset_objects.items():
            problem = check(tuple(dataset.image_shape))
            if problem:
                raise ConfigError(f"benchmarks.{label}: {problem} (dataset {dataset_label!r})")
