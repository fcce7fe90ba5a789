"""``--only`` on ``run``, ``status`` and ``report``, and what ``status`` says about a run's training:
the step reached, "resumed from step N", the training time over attempts, a log path that exists."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_reports import write_synthetic_tree

from memorybench.runners.cli import main
from memorybench.runners.selection import SelectionError, parse_only
from memorybench.runners.status import collect, status_table

REPO = Path(__file__).resolve().parents[1]
QUICK = str(REPO / "configs" / "quick_all.yaml")


def test_parse_only_combines_and_rejects() -> None:
    keys = ("memory", "seed")
    assert parse_only(["memory=gpm,vae", "seed=0", "memory=km"], keys) == {
        "memory": ("gpm", "vae", "km"),
        "seed": ("0",),
    }
    for bad in ("memory", "model=gpm", "seed="):
        with pytest.raises(SelectionError):
            parse_only([bad], keys)


def test_run_only_plans_the_selected_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    argv = ["run", QUICK, "--out", str(out), "--dry-run", "--set", "seeds=[0,1]"]
    assert main([*argv, "--only", "memory=gpm,vae", "--only", "seed=1"]) == 0
    planned = [line.split()[-1] for line in capsys.readouterr().out.splitlines() if line.startswith("  start")]
    assert sorted(planned) and all(name.split("-")[0] in ("gpm", "vae") and "-s1-" in name for name in planned)
    assert len(planned) == 2 and not out.exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("memory=gmp", "suite 'quick_all' has no memory 'gmp'; choose from"),
        ("seed=3", "has no seed '3'; choose from 0"),
        ("model=gpm", "unknown key 'model'; choose from memory, dataset, benchmark, seed"),
        ("dataset", "expected KEY=VALUE"),
    ],
)
def test_run_only_errors_are_one_line_and_write_nothing(
    option: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    assert main(["run", QUICK, "--out", str(out), "--only", option]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_status_and_report_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = write_synthetic_tree(tmp_path / "results")
    assert main(["status", str(tree), "--json", "--only", "memory=gpm,vae", "--only", "seed=1"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert runs and {run["run_id"].split("-")[0] for run in runs} == {"gpm", "vae"}
    assert all("-s1-" in run["run_id"] for run in runs)
    assert main(["status", str(tree), "--only", "dataset=cifar"]) == 2
    assert "choose from binarized_mnist, omniglot" in capsys.readouterr().err

    out = tmp_path / "report"
    assert main(["report", str(tree), "--out", str(out), "--format", "csv", "--only", "memory=dkm"]) == 0
    assert set(pd.read_csv(out / "results.csv")["model"]) == {"dkm"}
    assert main(["report", str(tree), "--out", str(tmp_path / "r2"), "--only", "suite=nope"]) == 2
    assert "has no suite 'nope'" in capsys.readouterr().err and not (tmp_path / "r2").exists()


# ---------------------------------------------------------------------------- status: training progress
def write_eval_run(suite: Path, name: str, training: str, **files: dict) -> Path:
    run_dir = suite / name
    run_dir.mkdir(parents=True)
    spec = {
        "suite": suite.name,
        "memory": "gpm",
        "memory_class": "gpm",
        "memory_config": {"memory_size": 8},
        "dataset": "digits",
        "benchmark": "elbo",
        "seed": 0,
        "train_config": {"steps": 500, "batch_episodes": 4},
    }
    (run_dir / "spec.json").write_text(json.dumps(spec))
    for file, payload in files.items():
        (run_dir / f"{file}.json").write_text(json.dumps(payload))
    return run_dir


def write_training(suite: Path, name: str, last_step: int, **record: object) -> Path:
    directory = suite / "_training" / name
    directory.mkdir(parents=True)
    identity = {"memory": "gpm", "memory_config": {"memory_size": 8}, "dataset": "digits", "seed": 0}
    identity["train_config"] = {"batch_episodes": 4}
    (directory / "training.json").write_text(json.dumps({"identity": identity, **record}))
    rows = "".join(f"{step},{1.0 / step}\n" for step in range(1, last_step + 1))
    (directory / "train_curve.csv").write_text("step,loss\n" + rows)
    return directory


def test_status_shows_step_resume_training_time_and_a_real_log(tmp_path: Path) -> None:
    suite = tmp_path / "results" / "study"
    write_training(suite, "gpm-digits-s0-aaaa", 200, state="pending", train_time_s=12.5, attempts=1)
    interrupted = write_eval_run(
        suite,
        "gpm-digits-elbo-s0-1111",
        "gpm-digits-s0-aaaa",
        status={"state": "interrupted", "attempts": 1, "error": "killed", "log": "/elsewhere/run.log"},
    )
    (interrupted / "run.log").write_text("traceback\n")
    resumed = {"status": "done", "attempts": 2, "start_step": 200, "train_steps": 500, "train_time_s": 20.0}
    write_training(suite, "gpm-digits-s0-bbbb", 500, state="done", steps=500, train_time_s=31.0, attempts=2)
    write_eval_run(
        suite,
        "gpm-digits-denoising-s0-2222",
        "gpm-digits-s0-bbbb",
        status={"state": "done", "attempts": 2},
        result={**resumed, "training_run": "gpm-digits-s0-bbbb", "measurements": []},
    )
    views = {view.run_id: view for view in collect(tmp_path / "results")}
    stopped, done = views["gpm-digits-elbo-s0-1111"], views["gpm-digits-denoising-s0-2222"]
    assert (stopped.step, stopped.steps, stopped.train_time_s) == (200, 500, 12.5)
    assert stopped.log == str(interrupted / "run.log")  # the recorded path does not exist here
    assert (done.step, done.resumed_from, done.train_time_s) == (500, 200, 31.0)
    table = status_table(list(views.values()))
    assert "step 200/500, trained 12.5 s" in table and f"(log: {interrupted / 'run.log'})" in table
    assert "step 500/500, resumed from step 200, trained 31.0 s" in table
