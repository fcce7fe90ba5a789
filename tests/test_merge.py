"""``memorybench merge``: a study run in two pieces (``--only seed=0`` / ``--only seed=1``) becomes
one tree that ``status`` and ``report`` read; identical copies are merged once, conflicts are
reported and never overwrite anything, and a failed copy leaves nothing half-copied."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from memorybench.runners.cli import main
from memorybench.runners.commands import merge

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "train.steps=2",
    "train.batch_episodes=2",
    "train.validation_episodes=2",
    "seeds=[0,1]",
    "benchmarks.elbo.max_episodes=2",
]


def run_piece(out: Path, *only: str) -> int:
    argv = ["run", str(REPO / "configs" / "quick.yaml"), "--out", str(out), "--no-progress"]
    argv += [token for value in TINY for token in ("--set", value)]
    argv += [token for value in only for token in ("--only", value)]
    return main(argv)


@pytest.fixture(scope="module")
def pieces(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The quick suite run as two pieces on two "machines": seed 0 and seed 1."""
    root = tmp_path_factory.mktemp("pieces")
    assert run_piece(root / "a", "seed=0") == 0
    assert run_piece(root / "b", "seed=1") == 0
    return root / "a", root / "b"


def run_ids(tree: Path) -> set[str]:
    return {path.parent.name for path in tree.rglob("spec.json")}


def test_pieces_hold_only_the_selected_runs(pieces: tuple[Path, Path]) -> None:
    a, b = pieces
    assert {name.split("-s")[-1][0] for name in run_ids(a)} == {"0"}
    assert {name.split("-s")[-1][0] for name in run_ids(b)} == {"1"}


def test_merge_combines_pieces_for_status_and_report(
    pieces: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = pieces
    out = tmp_path / "merged"
    assert main(["merge", str(a), str(b), "--out", str(out)]) == 0
    line = capsys.readouterr().out
    evaluations = len(run_ids(a)) + len(run_ids(b))
    assert f"copied {evaluations} runs" in line and "0 conflicts" in line
    assert run_ids(out) == run_ids(a) | run_ids(b)
    for result in out.rglob("result.json"):  # every evaluation's training run came along
        training = json.loads(result.read_text())["training_run"]
        assert (result.parent.parent / "_training" / training / "training.json").is_file()
    assert not list(out.rglob(".lock")) and not list(out.rglob(".merge-*"))

    assert main(["status", str(out), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["done"] == evaluations and status["total"] == evaluations
    for run in status["runs"]:  # logs point at files of the merged tree (or at none)
        assert run["log"] is None or Path(run["log"]).is_file()
        assert run["step"] == 2 and run["steps"] == 2 and run["train_time_s"] > 0

    assert main(["report", str(out), "--out", str(tmp_path / "report"), "--format", "csv"]) == 0
    results = pd.read_csv(tmp_path / "report" / "results.csv")
    assert set(results["seed"]) == {0, 1}

    # merging again (or the same trees into the same DIR) copies nothing and conflicts with nothing
    assert main(["merge", str(a), str(b), str(out), "--out", str(tmp_path / "again")]) == 0
    assert run_ids(tmp_path / "again") == run_ids(out) and "0 conflicts" in capsys.readouterr().out
    assert main(["merge", str(a), "--out", str(out)]) == 0
    assert "copied 0 runs and 0 training runs" in capsys.readouterr().out


def test_a_conflict_is_reported_and_overwrites_nothing(
    pieces: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = pieces
    c = tmp_path / "c"
    shutil.copytree(a, c)
    changed = sorted(c.rglob("result.json"))[0]
    record = json.loads(changed.read_text())
    record["wall_time_s"] = 12345.0  # the same run id run again elsewhere: a different result
    changed.write_text(json.dumps(record))
    out = tmp_path / "merged"
    assert main(["merge", str(a), str(b), str(c), "--out", str(out)]) == 1
    lines = capsys.readouterr().out.splitlines()
    conflicts = [line for line in lines if line.startswith("conflict:")]
    assert len(conflicts) == 1 and changed.parent.name in conflicts[0]
    assert not (out / changed.parent.relative_to(c)).exists()  # neither copy taken

    # DIR already holds a copy: it is kept, the differing one reported
    kept = tmp_path / "kept"
    assert main(["merge", str(a), "--out", str(kept)]) == 0
    before = (kept / changed.relative_to(c)).read_bytes()
    assert main(["merge", str(c), "--out", str(kept)]) == 1
    assert "already holds a different copy" in capsys.readouterr().out
    assert (kept / changed.relative_to(c)).read_bytes() == before


def test_a_failed_copy_leaves_nothing_half_copied(
    pieces: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = pieces

    def broken_copy(source: Path, destination: Path, **_: object) -> None:
        Path(destination, "spec.json").write_text("{}")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(merge.shutil, "copytree", broken_copy)
    out = tmp_path / "merged"
    assert main(["merge", str(a), "--out", str(out)]) == 1
    assert not list(out.rglob("spec.json")) and not list(out.rglob(".merge-*"))


def test_merge_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["merge", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "no such results directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["merge", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no runs" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "empty"), "--out", str(tmp_path / "empty" / "inside")]) == 2
    assert not (tmp_path / "out").exists()
