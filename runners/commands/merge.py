"""``memorybench merge TREE... --out DIR``: results trees from several machines → one tree.

A study run in pieces (``--only seed=0`` here, ``--only seed=1`` on a cluster) leaves several
results trees; ``merge`` combines them so that ``status`` and ``report`` see one study. Each TREE
is a results root (``results/``) or one suite's directory (``results/quick``). Runs are identified
by their ids (the directory names: evaluation runs ``<suite>/<run id>``, training runs
``<suite>/_training/<training id>``), never by where they came from:

- a run found in several trees with the same result is copied once;
- the same run id with different results (or a finished copy beside an unfinished one) is a
  *conflict*: reported on one line, nothing of it copied (the first finished copy is taken only
  when the others are unfinished copies of it); the exit status is then 1;
- DIR may already hold runs: those are never overwritten (a differing copy is a conflict);
- each run is copied into a temporary directory beside its destination and renamed into place,
  so an interrupted merge never leaves a half-copied run.

Locks, temporary files and the per-suite ``summary.*`` (rebuilt by ``run``/``report``) are not
copied. Standard library only: no torch, nothing of the models or benchmarks.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from memorybench.runners.commands.common import UsageError, check_writable, command_main

HELP = "combine results trees (from several machines) into one, by run id; conflicts reported, nothing overwritten"
SKIPPED_NAMES = (".lock",)  # a lock belongs to the process of the machine that ran the run
# Files that differ between two copies of the same finished run without the result differing.
VOLATILE = {".lock", "status.json", "run.log"}
# Fields of training.json that say when and where, not what was trained.
VOLATILE_TRAINING = {"updated", "train_time_s", "attempts", "data_root", "steps_requested"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trees", nargs="+", metavar="TREE", help="results roots or suite directories to merge")
    parser.add_argument("--out", required=True, help="the merged results root (created; existing runs are kept)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be copied and what conflicts")


@dataclass
class Candidate:
    """One copy of a run (evaluation or training) in one tree."""

    key: tuple[str, ...]  # (suite, run id) or (suite, "_training", training id)
    path: Path

    @property
    def finished(self) -> bool:
        return (self.path / "result.json").is_file() or _training_done(self.path)


@dataclass
class MergePlan:
    copy: list[Candidate] = field(default_factory=list)
    same: int = 0  # copies identical to one already chosen or already in DIR
    conflicts: list[str] = field(default_factory=list)


def run_copies(tree: Path) -> list[Candidate]:
    """Every evaluation run (spec.json or result.json) and training run (training.json) below ``tree``."""
    found: dict[Path, tuple[str, ...]] = {}
    for marker in ("spec.json", "result.json", "training.json"):
        for path in tree.rglob(marker):
            run_dir = path.parent
            if any(part.startswith(".") for part in run_dir.relative_to(tree).parts):
                continue  # staging directories of an interrupted merge or report
            if run_dir.parent.name == "_training":
                found[run_dir] = (run_dir.parent.parent.name, "_training", run_dir.name)
            elif marker != "training.json":
                found[run_dir] = (run_dir.parent.name, run_dir.name)
    return [Candidate(key, path) for path, key in sorted(found.items())]


def same_run(a: Path, b: Path) -> bool:
    """Two copies of a run hold the same outcome: the same files with the same bytes (logs, locks
    and status records aside; an unfinished training run's checkpoints aside when both are done)."""
    names_a, names_b = _files(a), _files(b)
    if names_a != names_b:
        return False
    return all(_same_file(a / name, b / name) for name in names_a)


def _same_file(a: Path, b: Path) -> bool:
    if a.name == "training.json":
        return _training_record(a) == _training_record(b)
    return filecmp.cmp(a, b, shallow=False)


def _training_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {k: v for k, v in record.items() if k not in VOLATILE_TRAINING} if isinstance(record, dict) else None


def _files(run_dir: Path) -> set[str]:
    return {
        path.relative_to(run_dir).as_posix()
        for path in run_dir.rglob("*")
        if path.is_file() and path.name not in VOLATILE and not path.name.endswith(".tmp")
    }


def _training_done(path: Path) -> bool:
    record = _training_record(path / "training.json")
    return record is not None and record.get("state") == "done"


def plan_merge(trees: Sequence[Path], out: Path) -> MergePlan:
    """What to copy from ``trees`` into ``out``, which copies are the same, which conflict."""
    by_key: dict[tuple[str, ...], list[Candidate]] = {}
    for tree in trees:
        for candidate in run_copies(tree):
            by_key.setdefault(candidate.key, []).append(candidate)
    plan = MergePlan()
    for key, copies in sorted(by_key.items()):
        name = "/".join(key)
        destination = out.joinpath(*key)
        finished = [c for c in copies if c.finished]
        chosen = finished[0] if finished else copies[0]
        differing = [c for c in (finished or copies) if not same_run(chosen.path, c.path)]
        if differing:
            where = ", ".join(str(c.path) for c in [chosen, *differing])
            plan.conflicts.append(f"conflict: {name}: different results in {where}; not copied")
            continue
        plan.same += len(copies) - 1
        if destination.exists():
            if same_run(destination, chosen.path):
                plan.same += 1
            else:
                plan.conflicts.append(
                    f"conflict: {name}: {destination} already holds a different copy (kept); {chosen.path} not copied"
                )
            continue
        plan.copy.append(chosen)
    return plan


def copy_run(source: Path, destination: Path) -> None:
    """Copy one run directory into place atomically: a temporary sibling, then one rename."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".merge-{destination.name}-", dir=destination.parent))
    try:
        shutil.copytree(
            source,
            staging,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(*SKIPPED_NAMES, ".*.tmp"),
        )
        os.chmod(staging, 0o777 & ~_umask())
        os.rename(staging, destination)  # fails (nothing replaced) if the destination appeared meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def run(args: argparse.Namespace) -> int:
    trees = [Path(tree) for tree in args.trees]
    out = Path(args.out)
    for tree in trees:
        if not tree.is_dir():
            raise UsageError(f"{tree}: no such results directory")
        if tree.resolve() == out.resolve() or out.resolve().is_relative_to(tree.resolve()):
            raise UsageError(f"--out {out}: must not be {tree} or inside it")
        if not run_copies(tree):
            raise UsageError(f"{tree}: no runs (spec.json/result.json/training.json) found")
    check_writable(out)
    plan = plan_merge(trees, out)
    verb = "would copy" if args.dry_run else "copied"
    for candidate in plan.copy:
        if not args.dry_run:
            copy_run(candidate.path, out.joinpath(*candidate.key))
    evaluations = sum(len(c.key) == 2 for c in plan.copy)
    print(
        f"merge of {len(trees)} tree{'s' if len(trees) > 1 else ''} into {out}: {verb} {evaluations} runs and "
        f"{len(plan.copy) - evaluations} training runs, {plan.same} identical copies skipped, "
        f"{len(plan.conflicts)} conflicts"
    )
    for line in plan.conflicts:
        print(line)
    return 1 if plan.conflicts else 0


def main(argv: Sequence[str] | None = None) -> int:
    return command_main("merge", argv)
