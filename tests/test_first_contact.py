"""First contact: how many threads a run takes, progress records without a terminal, and the
lines that end a run (who came first, by how much, and the next command)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

from memorybench import memories
from memorybench.benchmarks.common.datasets import create
from memorybench.benchmarks.common.progress import PROGRESS_EVERY_ENV, ProgressRecord, duration, progress_every
from memorybench.benchmarks.common.trainer import TrainConfig, train
from memorybench.runners import threads
from memorybench.runners.backends.local import LocalPool
from memorybench.runners.cli import main
from memorybench.runners.summary import verdict


# ---------------------------------------------------------------------------- threads
def test_the_thread_rule_takes_the_first_setting_that_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: 64)
    both = {"OMP_NUM_THREADS": "3", "SLURM_CPUS_PER_TASK": "5"}
    assert threads.run_threads(2, both) == (2, "train.threads")
    assert threads.run_threads(0, both) == (3, "OMP_NUM_THREADS")
    assert threads.run_threads(0, {"SLURM_CPUS_PER_TASK": "5", "OMP_NUM_THREADS": ""}) == (5, "SLURM_CPUS_PER_TASK")
    count, source = threads.run_threads(0, {})
    assert count == threads.MAX_AUTO_THREADS and source.startswith("cores available (64")
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    assert threads.run_threads(0, {"OMP_NUM_THREADS": "zero"})[0] == 2  # not a count: ignored


def test_a_container_quota_narrows_the_cores(tmp_path: Path) -> None:
    path = tmp_path / "cpu.max"
    path.write_text("150000 100000\n")
    assert threads.cpu_quota(path) == 2
    path.write_text("max 100000\n")
    assert threads.cpu_quota(path) is None
    assert threads.cpu_quota(tmp_path / "missing") is None
    assert threads.available_cores() >= 1


def test_the_local_pool_divides_the_cores_among_its_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("memorybench.runners.backends.local.available_cores", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pool = LocalPool([None, None, None])
    assert pool._environment(None)["OMP_NUM_THREADS"] == "2"
    monkeypatch.setenv("OMP_NUM_THREADS", "4")  # the user's choice wins
    assert pool._environment(None)["OMP_NUM_THREADS"] == "4"


def test_a_run_uses_and_records_its_threads_then_restores_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_EVERY_ENV, "0.000001")
    before = torch.get_num_threads()
    out = _run_tiny_suite(tmp_path, {"threads": 2})
    run_dir = next(out.glob("*/vae-*"))
    environment = json.loads((run_dir / "result.json").read_text())["environment"]
    assert environment["threads"] == 2 and environment["threads_from"] == "train.threads"
    assert torch.get_num_threads() == before
    assert "train vae: step 2/2 (100%)" in (run_dir / "run.log").read_text()  # an inline run's log gets the records


# ---------------------------------------------------------------------------- progress records
def test_progress_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_EVERY_ENV, "0.5")
    assert progress_every() == 0.5
    monkeypatch.setenv(PROGRESS_EVERY_ENV, "soon")
    assert progress_every() == 30.0
    assert (duration(42), duration(93), duration(3720)) == ("42 s", "1 min 33 s", "1 h 02 min")


def test_training_without_a_terminal_writes_progress_records_to_the_console_and_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PROGRESS_EVERY_ENV, "0.000001")  # a record after every step
    torch.manual_seed(0)
    model = memories.create("vae", code_size=4, episode_length=4, network="mlp", hidden_size=16)
    log = tmp_path / "run.log"
    config = TrainConfig(steps=3, batch_episodes=2, checkpoint_every=3)
    train(model, create("digits").split("train"), config, tmp_path / "train", progress=False, log_path=log)
    console = [line for line in capsys.readouterr().err.splitlines() if "train vae" in line]
    logged = log.read_text().splitlines()
    assert console == logged and len(logged) == 3
    assert "train vae: step 3/3 (100%), loss " in logged[-1]
    assert "steps/s, ETA " in logged[0]


def test_a_record_is_not_written_twice_when_stderr_is_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "run.log"
    with log.open("a") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        record = ProgressRecord("train x", 2, every_s=1e-9, console=True, log_path=log)
        record.update(1, 5.0)
        record.update(2, 4.0)
    assert len(log.read_text().splitlines()) == 2
    assert ProgressRecord("train x", 2, every_s=0.0, console=False, log_path=log).update(2, 1.0) is None


# ---------------------------------------------------------------------------- the end of a run
def test_a_run_ends_with_who_came_first_and_the_next_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _run_tiny_suite(tmp_path, {}, memories_={"vae": {}, "gpm": {"memory_size": 4}})
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"next: {lines[-1].split(': ', 1)[1]}" and "memorybench report " in lines[-1]
    assert str(out / "tiny") in lines[-1]
    assert " has the lowest nelbo_cond on digits/elbo (" in lines[-2]
    assert "± one standard error, paired over " in lines[-2] and lines[-2].endswith("read it with the note above")


def test_the_verdict_falls_back_to_unpaired_errors_and_needs_two_models(tmp_path: Path) -> None:
    def run(name: str, value: float, stderr: float) -> Path:
        directory = tmp_path / name
        directory.mkdir()
        measurement = {"name": "score", "value": value, "stderr": stderr, "unit": "", "tags": {}}
        result = {"status": "done", "memory": name, "dataset": "d", "benchmark": "b", "seed": 0}
        result |= {"schema_version": 2, "measurements": [{**measurement, "higher_is_better": True}]}
        (directory / "result.json").write_text(json.dumps(result))
        return directory

    a, b = run("a", 3.0, 0.3), run("b", 1.0, 0.4)
    assert verdict([a]) == []
    assert verdict([a, b]) == [
        "a has the highest score on d/b (3.00): 2.00 ± 0.50 above b (± one standard error, unpaired)"
    ]


def _run_tiny_suite(tmp_path: Path, train_extra: dict, memories_: dict | None = None) -> Path:
    suite = {
        "name": "tiny",
        "note": "a test",
        "seeds": [0],
        "defaults": {"code_size": 4, "episode_length": 4, "network": "mlp"},
        "memories": memories_ or {"vae": {}},
        "datasets": {"digits": {}},
        "benchmarks": {"elbo": {}},
        "train": {"steps": 2, "batch_episodes": 2, **train_extra},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    return out
