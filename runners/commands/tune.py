"""``memorybench tune SUITE --trials N``: the same seeded random search for every memory, then the
suite's benchmarks at each memory's best settings (:mod:`memorybench.runners.tuning`).

Phase 1 trains every trial (suite ``<name>-tune``) and scores it on the validation split; phase 2
writes ``tune.json`` (the whole search and the choice) into the suite's results directory and runs
the suite with the chosen settings. Both phases go through the ``--runner`` backend and resume
like ``memorybench run``: a second call skips finished trials. With a backend that returns before
the jobs end (``--runner slurm`` without ``--wait``) the command stops after phase 1 and says to
call it again.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from memorybench.runners.commands import run as run_command
from memorybench.runners.commands.common import command_main

HELP = "tune every memory with the same number of random-search trials, then run the suite at the best settings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    run_command.add_arguments(parser)
    parser.add_argument(
        "--trials",
        type=int,
        default=None,
        help="trials per memory, the suite's own settings first (default: tune.trials or 8)",
    )
    parser.add_argument("--tune-seed", type=int, default=None, help="seed of the search (default: tune.seed or 0)")
    parser.add_argument("--search-only", action="store_true", help="stop after the search and tune.json")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from memorybench import memories
    from memorybench.memories.configuration import ConfigError
    from memorybench.runners import tuning
    from memorybench.runners.schema import atomic_write_json, read_result, run_state, suite_dir
    from memorybench.runners.suite import RunSpec, Suite, apply_overrides, build_suite, load_yaml

    raw = apply_overrides(load_yaml(args.config), args.set)
    base = build_suite(raw, args.data_root)  # the whole suite, checked before any work
    tune = tuning.parse_tune(raw.get("tune"), args.trials, args.tune_seed)
    if isinstance(raw["memories"], list):  # `memories: [vae, gpm]`: names with default settings
        raw["memories"] = {name: {} for name in raw["memories"]}
    selected = run_command.select(base, args.only).runs
    labels = sorted({spec.memory for spec in selected}, key=list(raw["memories"]).index)
    datasets = list(dict.fromkeys(spec.dataset for spec in selected))

    stray = [label for label in tune.space if label not in raw["memories"]]
    if stray:
        raise ConfigError(f"tune.space.{stray[0]}: not a memory of the suite; memories: {', '.join(raw['memories'])}")
    trials: list[tuning.Trial] = []
    search_runs: list[tuple[tuning.Trial, RunSpec]] = []
    for label in labels:
        settings = raw["memories"][label] or {}
        declared = memories.MEMORIES.get(settings.get("memory", label)).search_space
        space = tuning.search_space(label, declared, tune)
        for trial in tuning.trials_for(label, space, tune):
            trials.append(trial)
            suite = build_suite(tuning.search_suite(raw, trial, tune, datasets), args.data_root, check_data=False)
            search_runs.extend((trial, spec) for spec in suite.runs)
    search = Suite(
        name=f"{base.name}-tune",
        description=base.description,
        runs=tuple(s for _, s in search_runs),
        resources=base.resources,
    )
    print(
        f"search: {len(labels)} memories x {tune.trials} trials on {', '.join(datasets)} (validation split, {tune.metric})"
    )
    status = run_command.execute_suite(search, args)
    if args.dry_run:
        return status

    search_dir = suite_dir(Path(args.out), search.name)
    scores: dict[tuple[str, str], float | None] = {}
    pending = 0
    for trial, spec in search_runs:
        state = run_state(search_dir / spec.run_id).state
        result = read_result(search_dir / spec.run_id) if state == "done" else None
        pending += state in ("pending", "running")
        scores[(trial.name, spec.dataset)] = ((result or {}).get("metrics") or {}).get(tune.metric)
    if pending:
        print(f"search: {pending} trial run(s) not finished; call the same command again when they are")
        return status
    chosen = {}
    for label in labels:
        mine = [t for t in trials if t.label == label]
        for dataset in datasets:
            chosen[(label, dataset)] = tuning.best(mine, {t.name: scores[(t.name, dataset)] for t in mine})
    results_dir = suite_dir(Path(args.out), base.name)
    results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(results_dir / "tune.json", tuning.record(trials, scores, chosen, tune))
    _print_choice(chosen, scores, tune.metric)
    print(f"search recorded in {results_dir / 'tune.json'}")
    if args.search_only:
        return status

    final = []
    for (label, dataset), trial in chosen.items():
        final.extend(build_suite(tuning.final_suite(raw, label, dataset, trial), args.data_root, check_data=False).runs)
    tuned = dataclasses.replace(base, runs=tuple(final))
    return run_command.execute_suite(run_command.select(tuned, args.only), args) or status


def _print_choice(chosen: dict, scores: dict, metric: str) -> None:
    from memorybench.runners.tuning import Trial

    for (label, dataset), trial in chosen.items():
        default = scores.get((Trial(label, 0, {}).name, dataset))
        values = ", ".join(f"{k}={_short(v)}" for k, v in trial.values.items()) or "the suite's own settings"
        print(
            f"  {label} on {dataset}: trial {trial.index} ({values}): {metric} "
            f"{scores[(trial.name, dataset)]:.2f} (suite settings: {_short(default)})"
        )


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("tune", argv)
