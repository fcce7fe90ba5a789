"""Suite files: YAML → validated :class:`Suite` → frozen :class:`RunSpec`\\ s.

A suite is a grid of memories × datasets × benchmarks × seeds. Everything is validated here (and
in :mod:`memorybench.runners.checks`), before any work starts: the file itself (UTF-8, no duplicate keys, no
YAML aliases), unknown names and keys, wrong types, impossible values, missing or damaged data
files and episode lengths larger than a split all fail with a one-line :class:`ConfigError`.

Each RunSpec's stable hash (of its resolved configuration; no code version, no paths) names its
run directory, so re-running a suite finds and skips or resumes earlier runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import memorybench.benchmarks.common.datasets as datasets
from memorybench import memories
from memorybench.benchmarks.base import BENCHMARKS
from memorybench.benchmarks.common.datasets import DataMissingError
from memorybench.benchmarks.common.trainer import TrainConfig
from memorybench.memories.configuration import ConfigError, as_dict, from_mapping
from memorybench.memories.registry import RegistryError, suggest
from memorybench.runners.checks import check_benchmarks_fit, check_datasets, check_path_name, check_resources
from memorybench.runners.tuning import parse_tune

SUITE_KEYS = (
    "name",
    "description",
    "note",
    "seeds",
    "data_root",
    "defaults",
    "memories",
    "datasets",
    "benchmarks",
    "train",
    "resources",
    "tune",
)


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs, fully resolved; picklable (it is what SLURM jobs receive)."""

    suite: str
    memory: str  # the suite's label for this model (usually its registry name)
    memory_class: str  # registry name
    memory_config: dict[str, Any]
    dataset: str
    dataset_config: dict[str, Any]
    benchmark: str
    benchmark_config: dict[str, Any]
    train_config: dict[str, Any]
    seed: int
    data_root: str | None = None  # machine-specific: not part of the identity

    def identity(self) -> dict[str, Any]:
        """The resolved configuration that defines the run (what the hash covers)."""
        needs_training = BENCHMARKS.get(self.benchmark).needs_training
        return {
            "memory": self.memory_class,
            "memory_config": self.memory_config,
            "dataset": self.dataset,
            "dataset_config": {k: v for k, v in self.dataset_config.items() if k != "root"},
            "benchmark": self.benchmark,
            "benchmark_config": self.benchmark_config,
            "train_config": self.train_config if needs_training else None,
            "seed": self.seed,
        }

    @property
    def config_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    @property
    def run_id(self) -> str:
        return f"{self.memory}-{self.dataset}-{self.benchmark}-s{self.seed}-{self.config_hash}"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "run_id": self.run_id, "config_hash": self.config_hash}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> RunSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in names})


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    runs: tuple[RunSpec, ...]
    note: str = ""  # printed under the end-of-run table and written into summary.md
    resources: dict[str, Any] = field(default_factory=dict)


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses aliases (no alias bomb can expand) and duplicate keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "anchors and aliases (&name, *name) are not allowed in suite files", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a mapping key must be a plain value, got {key!r}", key_node.start_mark
                ) from None
            if key in seen:
                first = seen[key].line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first defined on line {first})", key_node.start_mark
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
    """YAML ``text`` parsed strictly (see :class:`_StrictLoader`); one-line :class:`ConfigError` otherwise."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise ConfigError(f"{where}: invalid YAML{at}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid YAML: nested too deeply") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A suite file as a mapping; one-line errors for a missing or unreadable file, invalid YAML,
    a file that is not UTF-8, aliases and duplicate keys."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such suite file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the suite file ({error.strerror or error})") from None
    raw = parse_yaml(text, str(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a suite file must be a YAML mapping, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set a.b.c=value`` overrides (values parsed as YAML) to a suite mapping."""
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"--set {override!r}: expected key=value")
        dotted, text = override.split("=", 1)
        keys = dotted.strip().split(".")
        if not all(keys):
            raise ConfigError(f"--set {override!r}: empty key")
        value = parse_yaml(text, f"--set {override!r}: value")
        target = raw
        for key in keys[:-1]:
            child = target.get(key)
            if child is None:
                child = target[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {override!r}: {key!r} is not a mapping")
            target = child
        target[keys[-1]] = value
    return raw


MAX_SEED = 2**63 - 2  # torch seeds are 64-bit; the trainer also uses seed + 1


def _optional_string(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
    return value


def _entries(raw: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    """``memories:``/``datasets:``/``benchmarks:`` as a mapping label -> settings (lists allowed)."""
    value = raw.get(key)
    if value is None or value == [] or value == {}:
        raise ConfigError(f"{key}: the suite names no {key}")
    if isinstance(value, list):
        names = value
        if not all(isinstance(item, str) for item in names):
            odd = next(item for item in names if not isinstance(item, str))
            raise ConfigError(f"{key}: a list of {key} must hold names, got {odd!r}")
        if len(set(names)) != len(names):
            twice = next(item for item in names if names.count(item) > 1)
            raise ConfigError(f"{key}: {twice!r} is listed twice")
        value = {item: {} for item in names}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping or a list of names, got {type(value).__name__} {value!r}")
    entries = {}
    for label, settings in value.items():
        if not isinstance(label, str):
            raise ConfigError(f"{key}: expected names as keys, got {label!r}")
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise ConfigError(f"{key}.{label}: expected a mapping of settings, got {settings!r}")
        entries[label] = dict(settings)
    return entries


def _seeds(raw: dict[str, Any]) -> list[int]:
    seeds = raw.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ConfigError(f"seeds: expected a list of integers, got {seeds!r}")
    out_of_range = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if out_of_range:
        raise ConfigError(f"seeds: {out_of_range[0]} is not in 0..{MAX_SEED}")
    if len(set(seeds)) != len(seeds):
        twice = next(s for s in seeds if seeds.count(s) > 1)
        raise ConfigError(f"seeds: seed {twice} is listed twice (it would run the same runs twice)")
    return seeds


def _model_settings(label: str, settings: dict[str, Any], defaults: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = settings.pop("memory", label)
    if not isinstance(name, str):
        raise ConfigError(f"memories.{label}.memory: expected a registry name, got {name!r}")
    cls = memories.MEMORIES.get(name)
    accepted = {f.name for f in dataclasses.fields(cls.config_class)}
    merged = {k: v for k, v in defaults.items() if k in accepted}
    merged.update(settings)
    config = memories.config_for(name, merged, where=f"memories.{label}")
    return name, as_dict(config)


def build_suite(raw: dict[str, Any], data_root: str | None = None, check_data: bool = True) -> Suite:
    """Validate a suite mapping completely and plan it into run specs."""
    unknown = [key for key in raw if key not in SUITE_KEYS]
    if unknown:
        raise ConfigError(
            f"unknown suite key {unknown[0]!r}{suggest(str(unknown[0]), list(SUITE_KEYS))}; valid keys: {', '.join(SUITE_KEYS)}"
        )
    name = check_path_name(raw.get("name"), "name", "suite name")
    suite_root = _optional_string(raw, "data_root")
    data_root = data_root or suite_root or None
    description = _optional_string(raw, "description")
    note = _optional_string(raw, "note")
    resources = check_resources(raw.get("resources"))
    parse_tune(raw.get("tune"))  # used by `memorybench tune` only; checked here so `run` rejects a bad one too
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"defaults: expected a mapping of model settings, got {defaults!r}")
    try:
        train = as_dict(from_mapping(TrainConfig, raw.get("train"), "train"))
        model_entries = _entries(raw, "memories")
        known_keys = set()
        model_configs = {}
        for label, settings in model_entries.items():
            check_path_name(label, f"memories.{label}", "memory label")
            model_name, config = _model_settings(label, settings, defaults)
            model_configs[label] = (model_name, config)
            known_keys |= set(config)
        stray = [key for key in defaults if key not in known_keys]
        if stray:
            raise ConfigError(f"defaults: key {stray[0]!r} is not a setting of any memory in the suite")
        dataset_objects = {}
        for label, settings in _entries(raw, "datasets").items():
            dataset_objects[label] = datasets.create(label, data_root, **settings)
        benchmark_configs = {}
        benchmark_objects = {}
        for label, settings in _entries(raw, "benchmarks").items():
            benchmark_objects[label] = BENCHMARKS.config_for(label, settings)
            benchmark_configs[label] = as_dict(benchmark_objects[label])
        seeds = _seeds(raw)
        trains = any(BENCHMARKS.get(label).needs_training for label in benchmark_configs)
        check_benchmarks_fit(benchmark_objects, dataset_objects)
    except RegistryError as error:
        raise ConfigError(str(error)) from None

    if check_data:
        check_datasets(dataset_objects, model_configs, trains)

    runs = []
    for dataset_label, dataset in dataset_objects.items():
        for model_label, (model_name, model_config) in model_configs.items():
            for benchmark_label, benchmark_config in benchmark_configs.items():
                for seed in seeds:
                    runs.append(
                        RunSpec(
                            suite=name,
                            memory=model_label,
                            memory_class=model_name,
                            memory_config=model_config,
                            dataset=dataset_label,
                            dataset_config=as_dict(dataset.config),
                            benchmark=benchmark_label,
                            benchmark_config=benchmark_config,
                            train_config=train,
                            seed=seed,
                            data_root=str(data_root) if data_root else None,
                        )
                    )
    return Suite(
        name=name,
        description=description,
        runs=tuple(runs),
        resources=resources,
        note=" ".join(note.split()),
    )


def load_suite(path: str | Path, overrides: list[str] | None = None, data_root: str | None = None) -> Suite:
    """Read, override, validate and plan a suite file."""
    raw = apply_overrides(load_yaml(path), overrides or [])
    try:
        return build_suite(raw, data_root)
    except DataMissingError as error:
        raise ConfigError(str(error)) from None


__all__ = ["RunSpec", "Suite", "apply_overrides", "build_suite", "load_suite", "load_yaml"]
