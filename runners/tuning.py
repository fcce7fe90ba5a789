"""Equal-budget hyperparameter search behind ``memorybench tune`` (docs/protocol.md, "Tuning").

Every memory of a suite gets the same number of trials. Trial 0 is the suite's own settings; the
others draw each dimension of the search space from a generator seeded by (tune seed, memory
label, trial), so a search is reproducible and adding a memory changes no other memory's trials.
The space is what the model class declares (``MemoryModel.search_space``) plus the shared
``train.learning_rate``, with the suite's ``tune.space.<label>`` on top. A trial trains on the
training split with the suite's ``train`` settings and is scored by the ELBO benchmark on
``tune.episodes`` episodes of the validation split; the lowest ``tune.metric`` wins. The final runs
are the suite's own benchmarks at each memory's winning settings, under the memory's own label.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memorybench.memories.configuration import ConfigError

TRAIN_PREFIX = "train."
SHARED_SPACE: dict[str, dict[str, list[Any]]] = {"train.learning_rate": {"log_uniform": [1.0e-4, 2.0e-3]}}
KINDS = ("log_uniform", "uniform", "choice")
METRICS = ("nelbo_cond", "nelbo_full", "nelbo_heldout")
TUNE_KEYS = ("trials", "seed", "metric", "episodes", "space")


@dataclass(frozen=True)
class TuneConfig:
    """The suite's ``tune:`` section (``--trials`` and ``--tune-seed`` override it)."""

    trials: int = 8  # per memory, trial 0 included
    seed: int = 0
    metric: str = "nelbo_cond"  # lower is better; scored on the validation split
    episodes: int = 64  # validation episodes per trial
    space: dict[str, dict[str, dict[str, list[Any]]]] = field(default_factory=dict)  # label -> key -> dimension


@dataclass(frozen=True)
class Trial:
    """One point of the search: a memory label, its trial number and the values drawn."""

    label: str
    index: int
    values: dict[str, Any]

    @property
    def name(self) -> str:
        """The trial's memory label in the search suite, e.g. ``gpm-t03``."""
        return f"{self.label}-t{self.index:02d}"


def parse_tune(raw: Any, trials: int | None = None, seed: int | None = None) -> TuneConfig:
    """Validate a ``tune:`` mapping (None: defaults); one-line :class:`ConfigError` naming the key."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"tune: expected a mapping, got {raw!r}")
    unknown = [key for key in raw if key not in TUNE_KEYS]
    if unknown:
        raise ConfigError(f"tune: unknown key {unknown[0]!r}; valid keys: {', '.join(TUNE_KEYS)}")
    values = {
        **raw,
        **({"trials": trials} if trials is not None else {}),
        **({"seed": seed} if seed is not None else {}),
    }
    config = TuneConfig(**{k: copy.deepcopy(v) for k, v in values.items()})
    for key in ("trials", "seed", "episodes"):
        value = getattr(config, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "seed" else 1):
            raise ConfigError(f"tune.{key}: expected an integer >= {0 if key == 'seed' else 1}, got {value!r}")
    if config.metric not in METRICS:
        raise ConfigError(f"tune.metric: {config.metric!r} is not one of {', '.join(METRICS)}")
    if not isinstance(config.space, Mapping):
        raise ConfigError(f"tune.space: expected a mapping of memory labels, got {config.space!r}")
    for label, dimensions in config.space.items():
        if not isinstance(dimensions, Mapping):
            raise ConfigError(f"tune.space.{label}: expected a mapping of settings, got {dimensions!r}")
        for key, dimension in dimensions.items():
            check_dimension(dimension, f"tune.space.{label}.{key}")
    return config


def check_dimension(dimension: Any, where: str) -> None:
    """A dimension is ``{log_uniform: [low, high]}``, ``{uniform: [low, high]}`` or ``{choice: [...]}``."""
    if not isinstance(dimension, Mapping) or len(dimension) != 1 or next(iter(dimension)) not in KINDS:
        raise ConfigError(f"{where}: expected one of {', '.join(f'{{{k}: [...]}}' for k in KINDS)}, got {dimension!r}")
    kind, bounds = next(iter(dimension.items()))
    if not isinstance(bounds, list) or not bounds:
        raise ConfigError(f"{where}.{kind}: expected a non-empty list, got {bounds!r}")
    if kind == "choice":
        return
    numeric = all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
    if len(bounds) != 2 or not numeric or not bounds[0] <= bounds[1] or (kind == "log_uniform" and bounds[0] <= 0):
        raise ConfigError(
            f"{where}.{kind}: expected [low, high] with low <= high{' and low > 0' * (kind == 'log_uniform')}"
        )


def search_space(label: str, declared: Mapping[str, Any], tune: TuneConfig) -> dict[str, dict[str, list[Any]]]:
    """The space of one memory: shared, then the model's declared dimensions, then the suite's."""
    space = {**SHARED_SPACE, **declared, **tune.space.get(label, {})}
    return {key: dict(dimension) for key, dimension in sorted(space.items())}


def draw(space: Mapping[str, Mapping[str, list[Any]]], rng: random.Random) -> dict[str, Any]:
    """One value per dimension of ``space``."""
    values: dict[str, Any] = {}
    for key, dimension in space.items():
        kind, bounds = next(iter(dimension.items()))
        if kind == "choice":
            values[key] = bounds[rng.randrange(len(bounds))]
        elif kind == "uniform":
            values[key] = rng.uniform(bounds[0], bounds[1])
        else:
            values[key] = math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1])))
    return values


def trials_for(label: str, space: Mapping[str, Mapping[str, list[Any]]], tune: TuneConfig) -> list[Trial]:
    """``tune.trials`` trials of ``label``: trial 0 keeps the suite's settings (no values)."""
    trials = [Trial(label, 0, {})]
    for index in range(1, tune.trials):
        rng = random.Random(f"{tune.seed}:{label}:{index}")
        trials.append(Trial(label, index, draw(space, rng)))
    return trials


def with_values(raw: Mapping[str, Any], label: str, values: Mapping[str, Any], new_label: str) -> dict[str, Any]:
    """A copy of the suite mapping with one memory (renamed ``new_label``) at ``values``:
    ``train.*`` keys go to the train section, the rest to the memory's settings."""
    suite = copy.deepcopy(dict(raw))
    suite.pop("tune", None)
    settings = dict((suite.get("memories") or {}).get(label) or {})
    settings.setdefault("memory", label)
    train = dict(suite.get("train") or {})
    for key, value in values.items():
        if key.startswith(TRAIN_PREFIX):
            train[key[len(TRAIN_PREFIX) :]] = value
        else:
            settings[key] = value
    suite["memories"] = {new_label: settings}
    suite["train"] = train
    return suite


def search_suite(raw: Mapping[str, Any], trial: Trial, tune: TuneConfig, datasets: list[str]) -> dict[str, Any]:
    """The suite mapping of a trial: its memory on ``datasets``, trained with the suite's first
    seed and scored by the ELBO benchmark on the validation split."""
    suite = with_values(raw, trial.label, trial.values, trial.name)
    suite["name"] = f"{raw['name']}-tune"
    suite["datasets"] = dataset_entries(raw, datasets)
    seeds = raw.get("seeds", [0])
    suite["seeds"] = [seeds[0] if isinstance(seeds, list) and seeds else seeds]
    suite["benchmarks"] = {
        "elbo": {"split": "valid", "max_episodes": tune.episodes, "reconstruction_episodes": 0, "heldout_queries": 0}
    }
    if tune.metric == "nelbo_heldout":
        suite["benchmarks"]["elbo"]["heldout_queries"] = 8
    return suite


def final_suite(raw: Mapping[str, Any], label: str, dataset: str, trial: Trial) -> dict[str, Any]:
    """The suite mapping of ``label`` on ``dataset`` at the chosen trial's values, every benchmark
    and seed of the suite, under the memory's own label."""
    suite = with_values(raw, label, trial.values, label)
    suite["datasets"] = dataset_entries(raw, [dataset])
    return suite


def dataset_entries(raw: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """The suite's settings of datasets ``names`` (a list-form ``datasets:`` has none)."""
    datasets = raw.get("datasets")
    return {name: (datasets.get(name) or {}) if isinstance(datasets, Mapping) else {} for name in names}


def best(trials: list[Trial], scores: Mapping[str, float | None]) -> Trial:
    """The trial with the lowest score (ties: the lower trial number); unscored trials never win."""
    scored = [t for t in trials if scores.get(t.name) is not None and math.isfinite(float(scores[t.name]))]  # type: ignore[arg-type]
    if not scored:
        raise ConfigError(f"tune: no trial of {trials[0].label!r} produced a score")
    return min(scored, key=lambda t: (float(scores[t.name]), t.index))  # type: ignore[arg-type]


def record(
    trials: list[Trial],
    scores: Mapping[tuple[str, str], float | None],
    chosen: Mapping[tuple[str, str], Trial],
    tune: TuneConfig,
) -> dict[str, Any]:
    """The whole search as one JSON-able mapping (written next to the results as ``tune.json``);
    ``scores`` and ``chosen`` are keyed by (trial or memory label, dataset)."""
    datasets = sorted({dataset for _, dataset in chosen})
    return {
        "config": dataclasses.asdict(tune),
        "split": "valid",
        "chosen": [
            {
                "memory": label,
                "dataset": dataset,
                "trial": t.index,
                "values": t.values,
                tune.metric: scores.get((t.name, dataset)),
            }
            for (label, dataset), t in sorted(chosen.items())
        ],
        "trials": [
            {
                "memory": t.label,
                "dataset": dataset,
                "trial": t.index,
                "values": t.values,
                tune.metric: scores.get((t.name, dataset)),
            }
            for t in trials
            for dataset in datasets
        ],
    }


__all__ = [
    "SHARED_SPACE",
    "Trial",
    "TuneConfig",
    "best",
    "draw",
    "final_suite",
    "parse_tune",
    "record",
    "search_space",
    "search_suite",
    "trials_for",
    "with_values",
]
