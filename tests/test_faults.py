"""Faults: nothing is lost, duplicated or left half-written.

Damaged results trees (``status`` and ``report`` agree, every other run is still processed), the
per-run lock (a run another process holds is never run twice), killed and raising runs (a plain
rerun resumes the first, only ``--retry-failed`` retries the second), damaged checkpoints, a full
disk at every atomic write, ``report --out`` beside the user's own files, workers that never
import the user's directory, the conformance kit under ``python -O``, and report figures that fail.
The heavier end-to-end variants (real processes killed at random points, two concurrent
``memorybench run`` processes) are marked ``slow``.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from memorybench.runners.cli import main
from memorybench.runners.schema import run_lock

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "tests" / "plugins" / "runner_models.py"
MEMORYBENCH_SCRIPT = str(Path(sys.executable).with_name("memorybench"))  # the installed console script
TINY: dict[str, Any] = {
    "name": "tiny",
    "defaults": {"code_size": 4, "episode_length": 4, "network": "mlp", "hidden_size": 16},
    "memories": {"vae": {}, "gpm": {"memory_size": 4}},
    "datasets": {"digits": {}},
    "benchmarks": {"elbo": {"max_episodes": 2}},
    "train": {"steps": 4, "batch_episodes": 2, "checkpoint_every": 2},
}


def write_suite(tmp_path: Path, suite: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite or TINY))
    return path


def run(suite: Path, out: Path, *extra: str) -> int:
    return main(["run", str(suite), "--out", str(out), "--no-progress", *extra])


def results_of(suite_dir: Path) -> dict[str, dict[str, Any]]:
    return {p.parent.name: json.loads(p.read_text()) for p in suite_dir.glob("*/result.json")}


def leftovers(out: Path) -> list[Path]:
    """Temporary files of atomic writes and run directories without a spec under results root
    ``out``: what a fault must not leave."""
    temps = list(out.rglob("*.tmp"))
    empty = [p for p in out.glob("*/*") if p.is_dir() and p.name != "_training" and not (p / "spec.json").exists()]
    return temps + empty


@contextlib.contextmanager
def disk_full_at(monkeypatch: pytest.MonkeyPatch, fault_at: int) -> Iterator[list[int]]:
    """The disk fills up at the ``fault_at``-th file write (every write is fsynced) and stays full;
    yields ``[writes attempted]``."""
    writes = [0]
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:
        writes[0] += 1
        if writes[0] >= fault_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    try:
        yield writes
    finally:
        monkeypatch.setattr(os, "fsync", real_fsync)


# ---------------------------------------------------------------------------- damaged results trees
def good_run(suite_dir: Path, name: str, seed: int, value: float) -> Path:
    run_dir = suite_dir / f"{name}-digits-elbo-s{seed}-000000000{seed}"
    run_dir.mkdir(parents=True)
    spec = {"suite": suite_dir.name, "memory": name, "memory_class": name, "dataset": "digits", "benchmark": "elbo"}
    (run_dir / "spec.json").write_text(json.dumps({**spec, "seed": seed, "run_id": run_dir.name}))
    (run_dir / "status.json").write_text(json.dumps({"state": "done", "attempts": 1}))
    result = {
        **spec,
        "seed": seed,
        "run_id": run_dir.name,
        "schema_version": 1,
        "status": "done",
        "metrics": {"nelbo_cond": value, "nelbo_cond_stderr": 0.1},
        "units": {"nelbo_cond": "nats/image"},
        "higher_is_better": {"nelbo_cond": False},
        "attempts": 1,
        "finished": "2026-01-01T00:00:00+00:00",
    }
    (run_dir / "result.json").write_text(json.dumps(result))
    return run_dir


DAMAGE = {
    "truncated": ("result.json", b'{"status": "do', "result.json: truncated or not JSON"),
    "not-utf8": ("result.json", b'{"status": "d\xffone"}', "result.json: not UTF-8 text"),
    "a-list": ("result.json", b"[1, 2, 3]", "result.json: a JSON list, not an object"),
    "metrics-list": ("result.json", b'{"status": "done", "metrics": [1]}', "field 'metrics' is [1]"),
    "metric-text": ("result.json", b'{"status": "done", "metrics": {"nelbo_cond": "low"}}', "metric 'nelbo_cond'"),
    "status-number": ("result.json", b'{"status": 5, "metrics": {}}', "field 'status' is 5"),
    "unknown-state": ("result.json", b'{"status": "finished"}', "unknown state 'finished'"),
    "attempts-text": ("result.json", b'{"status": "done", "attempts": "two"}', "field 'attempts' is 'two'"),
    "status-truncated": ("status.json", b'{"state": "runn', "status.json: truncated or not JSON"),
    "status-attempts": ("status.json", b'{"state": "running", "attempts": "x"}', "field 'attempts' is 'x'"),
    "status-pid-text": ("status.json", b'{"state": "running", "pid": "123"}', "field 'pid' is '123'"),
    "status-a-number": ("status.json", b"42", "status.json: a JSON int, not an object"),
}


def test_damaged_runs_are_reported_by_status_and_report_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite_dir = tmp_path / "results" / "tiny"
    good = [good_run(suite_dir, "vae", seed, 90.0 + seed) for seed in range(3)]
    damaged = {}
    for index, (case, (name, content, expected)) in enumerate(sorted(DAMAGE.items())):
        run_dir = good_run(suite_dir, "gpm", index, 80.0)
        if name == "status.json":
            (run_dir / "result.json").unlink()
        (run_dir / name).write_bytes(content)
        damaged[run_dir.name] = (case, str(run_dir / name), expected)

    assert main(["status", str(tmp_path / "results"), "--json"]) == 0
    views = {view["run_id"]: view for view in json.loads(capsys.readouterr().out)["runs"]}
    assert main(["status", str(tmp_path / "results")]) == 0  # the table too, without a crash
    capsys.readouterr()
    for run_dir in good:
        assert views[run_dir.name]["state"] == "done"
    for run_id, (case, path, expected) in damaged.items():
        assert views[run_id]["state"] == "damaged", case
        assert path in views[run_id]["reason"] and expected in views[run_id]["reason"], (case, views[run_id])

    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "results"), "--out", str(out), "--format", "md,csv"]) == 0
    with open(out / "runs.csv", newline="") as file:
        runs = {row["run_id"]: row for row in csv.DictReader(file)}
    assert {run_id: runs[run_id]["status"] for run_id in views} == {
        run_id: view["state"] for run_id, view in views.items()
    }  # status and report agree on every run
    for run_id, (_, path, _) in damaged.items():
        assert path in runs[run_id]["reason"]
    metrics = (out / "results.csv").read_text()
    assert metrics.count("nelbo_cond") == 3  # the three good runs, and nothing from a damaged one
    assert "damaged" in (out / "report.md").read_text()


def test_run_leaves_a_damaged_result_alone_until_retry_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path, {**TINY, "memories": {"vae": {}}})
    out = tmp_path / "results"
    assert run(suite, out) == 0
    (result,) = (out / "tiny").glob("*/result.json")
    result.write_bytes(b"\xff\xfe garbage")
    assert run(suite, out) == 1  # reported, not silently rerun over
    assert "1 failed" in capsys.readouterr().out and result.read_bytes() == b"\xff\xfe garbage"
    assert run(suite, out, "--retry-failed") == 0
    assert json.loads(result.read_text())["status"] == "done"
    assert (result.parent / "result.failed-0.json").read_bytes() == b"\xff\xfe garbage"  # kept, not lost


# ---------------------------------------------------------------------------- the per-run lock
def test_a_run_another_process_holds_is_skipped_not_run_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path)
    out = tmp_path / "results"
    assert run(suite, out, "--dry-run") == 0
    capsys.readouterr()
    from memorybench.runners.suite import load_suite

    held = out / "tiny" / load_suite(suite).runs[0].run_id
    held.mkdir(parents=True)
    with run_lock(held):  # what a second `memorybench run` sees while the first runs this run
        assert run(suite, out) == 0
        printed = capsys.readouterr().out
        assert not (held / "result.json").exists()
        assert len(results_of(out / "tiny")) == 1  # the other run went ahead
    assert f"skipped {held.name}" in printed or "already queued or running" in printed
    assert run(suite, out) == 0  # released: the rerun runs it, once
    assert len(results_of(out / "tiny")) == 2
    assert json.loads((held / "result.json").read_text())["attempts"] == 1


def test_a_run_finished_meanwhile_is_not_run_again(tmp_path: Path) -> None:
    from memorybench.runners.execute import execute_run
    from memorybench.runners.suite import load_suite

    spec = load_suite(write_suite(tmp_path)).runs[0]
    run_dir = tmp_path / "results" / "tiny" / spec.run_id
    first = execute_run(spec, run_dir, progress=False)
    stamp = (run_dir / "result.json").stat().st_mtime_ns
    second = execute_run(spec, run_dir, progress=False)  # planned before the first finished
    assert second == json.loads((run_dir / "result.json").read_text()) and first["status"] == "done"
    assert (run_dir / "result.json").stat().st_mtime_ns == stamp


# ---------------------------------------------------------------------------- died vs raised
def test_a_raising_run_stays_failed_until_retry_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path, {**TINY, "memories": {"broken": {"memory": "diverging_vae"}}})
    out = tmp_path / "results"
    argv = ["--include", str(PLUGIN), "run", str(suite), "--out", str(out), "--no-progress"]
    assert main(argv) == 1
    assert main(argv) == 1
    assert "skip 0 done, 1 failed" in capsys.readouterr().out
    (result,) = results_of(out / "tiny").values()
    assert result["attempts"] == 1 and result["error"].startswith("DivergenceError")
    assert main([*argv, "--retry-failed"]) == 1
    assert "retry 1" in capsys.readouterr().out
    (result,) = results_of(out / "tiny").values()
    assert result["attempts"] == 2


def test_a_run_whose_process_died_resumes_from_its_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What kill -9 during training leaves: status "running" for a dead process, a checkpoint, no result."""
    suite = write_suite(tmp_path, {**TINY, "memories": {"vae": {}}})
    out = tmp_path / "results"
    assert run(suite, out) == 0
    run_dir = next((out / "tiny").glob("vae-*"))
    (training,) = (out / "tiny" / "_training").glob("*")
    for path in (run_dir / "result.json", training / "model-step4.pt", training / "checkpoint.pt"):
        path.unlink()  # back to step 2: only checkpoint.prev.pt is left
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "state": "running", "pid": dead.pid}))
    capsys.readouterr()
    assert main(["status", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["interrupted"] == 1
    assert main(["report", str(out), "--out", str(tmp_path / "report"), "--format", "csv"]) == 0
    with open(tmp_path / "report" / "runs.csv", newline="") as file:
        assert [row["status"] for row in csv.DictReader(file)] == ["interrupted"]  # the report agrees
    assert run(suite, out) == 0  # a plain rerun: no --retry-failed
    assert "resume 1" in capsys.readouterr().out
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "done" and result["start_step"] == 2 and result["attempts"] == 2


# ---------------------------------------------------------------------------- damaged checkpoints
def _train(run_dir: Path, steps: int) -> Any:
    import memorybench.benchmarks.common.datasets as datasets
    from memorybench import memories
    from memorybench.benchmarks.common.trainer import TrainConfig, train

    torch.manual_seed(0)
    model = memories.create("vae", image_shape=(1, 28, 28), code_size=4, episode_length=4, network="mlp", hidden_size=8)
    config = TrainConfig(steps=steps, batch_episodes=2, checkpoint_every=2)
    split = datasets.create("digits").split("train")
    return train(model, split, config, run_dir, progress=False)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign-pickle", "empty"])
def test_a_damaged_checkpoint_falls_back_to_the_previous_one_then_to_step_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    import pickle

    assert _train(tmp_path, 4).steps == 4
    newest, previous = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt"
    assert previous.is_file()
    content = {
        "truncated": newest.read_bytes()[: newest.stat().st_size // 2],
        "garbage": os.urandom(2000),
        "foreign-pickle": pickle.dumps(subprocess.Popen),  # a class torch's safe loader refuses
        "empty": b"",
    }[damage]
    newest.write_bytes(content)
    capsys.readouterr()
    outcome = _train(tmp_path, 6)
    err = capsys.readouterr().err
    assert outcome.start_step == 2 and outcome.steps == 6  # the previous checkpoint, not a failure
    assert err.count("\n") == 1 and "damaged checkpoint" in err and "falling back to checkpoint.prev.pt" in err
    assert "weights_only" not in err and (tmp_path / "checkpoint.pt.damaged").is_file()
    for path in (newest, previous):
        path.write_bytes(content)
    outcome = _train(tmp_path, 6)
    err = capsys.readouterr().err
    assert outcome.start_step == 0 and outcome.steps == 6 and "restarting from step 0" in err
    assert "weights_only" not in err
    assert _train(tmp_path, 6).start_step == 6  # and the next attempt is clean: no failure repeats


def test_a_damaged_training_checkpoint_never_fails_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path, {**TINY, "memories": {"vae": {}}})
    out = tmp_path / "results"
    assert run(suite, out, "--set", "train.steps=2") == 0
    (training,) = (out / "tiny" / "_training").glob("*")
    (training / "checkpoint.pt").write_bytes(b"PK\x03\x04 broken zip")
    (training / "model-step2.pt").write_bytes(b"")
    capsys.readouterr()
    assert run(suite, out, "--set", "train.steps=4") == 0
    err = capsys.readouterr().err
    assert "weights_only" not in err
    assert all(r["status"] == "done" for r in results_of(out / "tiny").values())


# ---------------------------------------------------------------------------- disk full
# One clean run of the tiny suite makes 30 atomic writes (spec, status, checkpoints, curves, snapshots,
# CSVs, results, summaries): the disk fills up at a spread of them by default, at every one with -m slow.
WRITES = 30
FAULT_POINTS = (1, 2, 4, 7, 11, 16, 22, 27, 30)
FAULT_SWEEP = [pytest.param(k, marks=pytest.mark.slow) if k not in FAULT_POINTS else k for k in range(1, WRITES + 1)]


@pytest.mark.parametrize("fault_at", FAULT_SWEEP)
def test_disk_full_at_any_write_is_one_line_and_a_rerun_completes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fault_at: int
) -> None:
    suite = write_suite(tmp_path)
    out = tmp_path / "results"
    with disk_full_at(monkeypatch, fault_at) as writes:
        code = run(suite, out)
    captured = capsys.readouterr()
    if writes[0] < fault_at:
        pytest.skip(f"the suite made only {writes[0]} writes")
    assert code == 1 and captured.err.count("\n") == 1, captured.err
    assert "No space left on device" in captured.err and "Traceback" not in captured.err
    assert leftovers(out) == [], leftovers(out)
    assert run(suite, out) == 0  # space again: a plain rerun finishes everything
    results = results_of(out / "tiny")
    assert len(results) == 2 and all(r["status"] == "done" for r in results.values())
    assert leftovers(out) == []


# ---------------------------------------------------------------------------- report --out
def test_report_out_never_deletes_files_it_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite_dir = tmp_path / "results" / "tiny"
    for seed in range(2):
        good_run(suite_dir, "vae", seed, 90.0)
    out = tmp_path / "report"
    mine = [out / "tables" / "mine.csv", out / "figures" / "keep.png", out / "notes.txt"]
    for path in mine:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("the user's own file")
    assert main(["report", str(tmp_path / "results"), "--out", str(out)]) == 0
    manifest = json.loads((out / ".memorybench-report.json").read_text())["written"]
    assert "results.csv" in manifest and all(str(p.relative_to(out)) not in manifest for p in mine)
    stale = out / "figures" / "old_figure.png"  # written by the previous report, not by this one
    stale.write_text("old")
    (out / ".memorybench-report.json").write_text(json.dumps({"written": [*manifest, "figures/old_figure.png"]}))
    assert main(["report", str(tmp_path / "results"), "--out", str(out)]) == 0
    assert all(path.read_text() == "the user's own file" for path in mine) and not stale.exists()
    assert not list(out.glob(".report-staging-*"))


@pytest.mark.parametrize("fault_at", [1, 3, 6])
def test_disk_full_while_reporting_is_one_line_and_leaves_nothing_half_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fault_at: int
) -> None:
    good_run(tmp_path / "results" / "tiny", "vae", 0, 90.0)
    out = tmp_path / "report"
    with disk_full_at(monkeypatch, fault_at):
        code = main(["report", str(tmp_path / "results"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "No space left on device" in err
    assert not list(out.rglob("*.tmp")) and not list(out.glob(".report-staging-*"))
    assert main(["report", str(tmp_path / "results"), "--out", str(out)]) == 0


def test_a_failing_figure_is_in_the_output_and_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from memorybench.reports import benchmark_figures

    def broken(results: Any, out: Path) -> list[Any]:
        raise KeyError("hamming_mean")

    monkeypatch.setattr(benchmark_figures, "FIGURES", [*benchmark_figures.FIGURES, ("denoising curves", broken)])
    good_run(tmp_path / "results" / "tiny", "vae", 0, 90.0)
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "results"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "figure denoising curves: KeyError: 'hamming_mean'" in err and "Traceback" not in err
    assert "Traceback" in (out / "report.log").read_text()
    assert "figure denoising curves" in (out / "report.md").read_text()


# ---------------------------------------------------------------------------- workers and the user's directory
def test_local_workers_never_import_modules_from_the_current_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    marker = tmp_path / "tqdm-was-imported"
    (workdir / "tqdm.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise ImportError('shadowed')\n")
    suite = write_suite(tmp_path, {**TINY, "memories": {"vae": {}}})
    monkeypatch.chdir(workdir)
    assert run(suite, Path("results"), "--runner", "local", "--workers", "1") == 0
    assert not marker.exists()
    (result,) = results_of(workdir / "results" / "tiny").values()  # the relative --out still resolves
    assert result["status"] == "done"


# ---------------------------------------------------------------------------- the conformance kit
BROKEN_MODEL = """
import dataclasses
from memorybench.memories import register_memory
from memorybench.memories.vae import VAE

@register_memory("zero_gradient_vae")
class ZeroGradientVAE(VAE):
    '''A VAE whose loss never depends on its parameters (all gradients are zero).'''

    def loss(self, episode):
        terms = super().loss(episode)
        return dataclasses.replace(terms, total=terms.total * 0.0)
"""


def test_conformance_kit_catches_a_broken_model_under_python_O(tmp_path: Path) -> None:
    plugin = tmp_path / "zero_gradient.py"
    plugin.write_text(BROKEN_MODEL)
    script = (
        "import sys\n"
        "from memorybench.memories.registry import import_user_module\n"
        f"import_user_module({str(plugin)!r})\n"
        "from memorybench.memories.conformance import CHECKS, ConformanceError\n"
        "try:\n"
        "    CHECKS['backward']('zero_gradient_vae')\n"
        "except ConformanceError as error:\n"
        "    print('ConformanceError:', error)\n"
        "    sys.exit(0 if 'exactly zero' in str(error) else 1)\n"
        "sys.exit(1)\n"
    )
    done = subprocess.run([sys.executable, "-O", "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ConformanceError" in done.stdout


# ---------------------------------------------------------------------------- real processes (slow)
def _memorybench(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [MEMORYBENCH_SCRIPT, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.slow
def test_two_concurrent_runs_never_run_the_same_run(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, {**TINY, "seeds": [0, 1], "train": {**TINY["train"], "steps": 40}})
    out = tmp_path / "results"
    first = _memorybench("run", str(suite), "--out", str(out), "--no-progress", cwd=REPO)
    second = _memorybench("run", str(suite), "--out", str(out), "--no-progress", cwd=REPO)
    logs = [process.communicate(timeout=600)[0] for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, logs
    assert run(suite, out) == 0  # anything one of them skipped while the other held it
    results = results_of(out / "tiny")
    assert len(results) == 4 and all(r["status"] == "done" and r["attempts"] == 1 for r in results.values())
    for training in (out / "tiny" / "_training").glob("*"):
        assert json.loads((training / "training.json").read_text())["state"] == "done"


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(6))
def test_kill_9_at_a_random_point_loses_nothing(tmp_path: Path, trial: int) -> None:
    suite = write_suite(tmp_path, {**TINY, "train": {**TINY["train"], "steps": 60, "checkpoint_every": 5}})
    out = tmp_path / "results"
    process = _memorybench("run", str(suite), "--out", str(out), "--no-progress", cwd=REPO)
    deadline = time.monotonic() + 300
    while not list(out.glob("tiny/_training/*/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(random.Random(trial).uniform(0.0, 4.0))  # somewhere in training, evaluation or result writing
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert run(suite, out) == 0  # a plain rerun, no --retry-failed
    results = results_of(out / "tiny")
    assert len(results) == 2 and all(r["status"] == "done" for r in results.values())
    assert leftovers(out) == []
    for path in out.rglob("*.json"):
        json.loads(path.read_text())  # nothing half-written


@pytest.mark.slow
@pytest.mark.parametrize("free_kb", [0, 60, 200, 500, 900, 1300])
def test_a_real_full_disk_on_a_small_tmpfs(tmp_path: Path, capsys: pytest.CaptureFixture[str], free_kb: int) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        filler = disk / "filler"
        stat = os.statvfs(disk)
        filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - free_kb * 1024))
        suite = write_suite(tmp_path)
        out = disk / "results"
        code = run(suite, out)
        err = capsys.readouterr().err
        assert code in (0, 1) and "Traceback" not in err
        assert code == 1 or free_kb > 500  # the suite writes about 1.7 MB: the small ones must run out
        if code == 1:
            assert err.count("\n") == 1 and "No space left on device" in err, err
        if out.exists():
            assert leftovers(out) == []
        filler.unlink()
        assert run(suite, out) == 0
        results = results_of(out / "tiny")
        assert len(results) == 2 and all(r["status"] == "done" for r in results.values())
        assert leftovers(out) == []
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_taking_a_lock_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    from memorybench.runners.schema import STALE_AFTER_S, run_lock

    dead = tmp_path / ".result.json.k1ll3d.tmp"
    fresh_status = tmp_path / ".status.json.w0rk1n.tmp"  # a planner may be writing it without the lock
    fresh_spec = tmp_path / ".spec.json.pl4nn3.tmp"  # so may another process preparing the run
    old_status = tmp_path / ".status.json.0ld0ne.tmp"
    for path in (dead, fresh_status, fresh_spec, old_status):
        path.write_text("{")
    os.utime(old_status, (time.time() - 2 * STALE_AFTER_S,) * 2)
    with run_lock(tmp_path):
        assert not dead.exists() and fresh_status.exists() and fresh_spec.exists() and not old_status.exists()
