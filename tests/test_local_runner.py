"""The local worker pool: concurrency bound, one job per GPU, killed workers, and the CLI around it.

Pool mechanics are tested with fake jobs (a few lines of Python that record when they ran and on
which device), so they take fractions of a second; one end-to-end test drives the real CLI and
real worker processes on a tiny suite with a run that fails.
"""

from __future__ import annotations

import _thread
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from memorybench.memories.configuration import ConfigError
from memorybench.runners.backends.local import LocalPool, gpu_slots, parse_gpus
from memorybench.runners.cli import main
from memorybench.runners.dispatch import PlannedRun
from memorybench.runners.suite import RunSpec

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "tests" / "plugins" / "runner_models.py"

# A fake job: records start/end times, its pid and CUDA_VISIBLE_DEVICES; "hang" jobs wait to be killed.
FAKE_JOB = """
import json, os, sys, time
run_dir, seconds = sys.argv[1], float(sys.argv[2])
def write(name, payload):
    path = os.path.join(run_dir, name)
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f)
    os.replace(path + ".tmp", path)
start = time.time()
write("status.json", {"state": "running", "pid": os.getpid()})
write("fake.json", {"start": start, "device": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()})
time.sleep(seconds)
write("fake.json", {"start": start, "end": time.time(), "device": os.environ.get("CUDA_VISIBLE_DEVICES")})
write("result.json", {"status": "done"})
"""


def fake_runs(tmp_path: Path, count: int) -> list[PlannedRun]:
    runs = []
    for index in range(count):
        spec = RunSpec(
            suite="fake",
            memory="vae",
            memory_class="vae",
            memory_config={},
            dataset="digits",
            dataset_config={},
            benchmark="elbo",
            benchmark_config={},
            train_config={},
            seed=index,
        )
        run_dir = tmp_path / "fake" / spec.run_id
        run_dir.mkdir(parents=True)
        (run_dir / "spec.json").write_text(json.dumps(spec.to_dict()))
        runs.append(PlannedRun(spec, run_dir, "start"))
    return runs


def fake_command(seconds: dict[int, float] | None = None, default: float = 0.3):
    def command(run: PlannedRun) -> list[str]:
        return [sys.executable, "-c", FAKE_JOB, str(run.run_dir), str((seconds or {}).get(run.spec.seed, default))]

    return command


def intervals(runs: list[PlannedRun]) -> list[dict]:
    return [json.loads((run.run_dir / "fake.json").read_text()) for run in runs]


def most_at_once(spans: list[dict]) -> int:
    return max(sum(other["start"] <= span["start"] < other["end"] for other in spans) for span in spans)


def test_gpu_slots_pin_one_device_per_worker() -> None:
    assert gpu_slots([0, 1], workers=0, device_count=2) == ["0", "1"]
    assert gpu_slots([0, 1, 2], workers=2, device_count=4) == ["0", "1"]
    assert gpu_slots([1], workers=0, device_count=2, visible="4,5") == ["5"]  # renumbered by the parent's mask
    assert gpu_slots([], workers=3, device_count=0) == [None, None, None]
    assert gpu_slots([], workers=0, device_count=8) == [None]
    with pytest.raises(ConfigError, match="no CUDA device 2 on this machine"):
        gpu_slots([0, 2], workers=0, device_count=2)
    with pytest.raises(ConfigError, match="devices: none"):
        gpu_slots([0], workers=0, device_count=0)
    with pytest.raises(ConfigError, match="one job per GPU"):
        gpu_slots([0, 1], workers=3, device_count=4)
    assert parse_gpus("0, 1,3") == [0, 1, 3]
    for bad in ("", "a", "0,0", "-1"):
        with pytest.raises(ConfigError, match="--gpus"):
            parse_gpus(bad)


def test_pool_never_runs_more_than_n_jobs_at_once(tmp_path: Path) -> None:
    runs = fake_runs(tmp_path, 6)
    report = LocalPool([None, None], command=fake_command(), echo=lambda line: None).run(runs)
    assert report.max_in_flight == 2
    assert set(report.states.values()) == {"done"} and len(report.states) == 6
    spans = intervals(runs)
    assert most_at_once(spans) == 2  # the bound was also reached, so the pool did run in parallel


def test_pool_gives_each_gpu_one_job_at_a_time(tmp_path: Path) -> None:
    runs = fake_runs(tmp_path, 5)
    LocalPool(["0", "1"], command=fake_command(), echo=lambda line: None).run(runs)
    spans = intervals(runs)
    assert {span["device"] for span in spans} == {"0", "1"}
    for span in spans:
        overlapping = [o for o in spans if o is not span and o["start"] < span["end"] and span["start"] < o["end"]]
        assert all(other["device"] != span["device"] for other in overlapping)


def test_killed_worker_is_recorded_interrupted_and_the_pool_continues(tmp_path: Path) -> None:
    runs = fake_runs(tmp_path, 4)
    victim = runs[1]

    def kill_victim() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(json.loads((victim.run_dir / "fake.json").read_text())["pid"], signal.SIGKILL)
                return
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)

    killer = threading.Thread(target=kill_victim)
    killer.start()
    report = LocalPool([None, None], command=fake_command({1: 60.0}), echo=lambda line: None).run(runs)
    killer.join()
    assert report.states[victim.spec.run_id] == "interrupted"  # resumable by a plain rerun, not failed
    assert [report.states[run.spec.run_id] for run in runs if run is not victim] == ["done"] * 3
    assert not (victim.run_dir / "result.json").exists()
    status = json.loads((victim.run_dir / "status.json").read_text())
    assert status["state"] == "interrupted" and "SIGKILL" in status["error"] and status["log"].endswith("run.log")
    assert "a plain rerun resumes it" in status["error"]


def test_interrupting_the_pool_stops_workers_and_leaves_runs_resumable(tmp_path: Path) -> None:
    # A process started in the background by a non-interactive shell inherits SIGINT ignored, and
    # then interrupt_main() does nothing: give this test the Ctrl-C a terminal user has.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    runs = fake_runs(tmp_path, 3)

    def interrupt() -> None:
        deadline = time.monotonic() + 120  # generous: a loaded machine starts processes slowly
        while not all((run.run_dir / "fake.json").exists() for run in runs[:2]) and time.monotonic() < deadline:
            time.sleep(0.05)
        _thread.interrupt_main()

    threading.Thread(target=interrupt).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            LocalPool([None, None], command=fake_command(default=60.0), echo=lambda line: None).run(runs)
    finally:
        signal.signal(signal.SIGINT, previous)
    for run in runs:
        status = json.loads((run.run_dir / "status.json").read_text())
        assert status["state"] == "pending" and not (run.run_dir / "result.json").exists()
        if (run.run_dir / "fake.json").exists():  # was running: its process is gone
            pid = json.loads((run.run_dir / "fake.json").read_text())["pid"]
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


# ---------------------------------------------------------------------------- through the CLI
def tiny_suite(tmp_path: Path, memories: dict | None = None) -> Path:
    suite = {
        "name": "tiny",
        "defaults": {"code_size": 4, "episode_length": 4, "network": "mlp", "hidden_size": 16},
        "memories": memories or {"vae": {}, "broken": {"memory": "diverging_vae"}},
        "datasets": {"digits": {}},
        "benchmarks": {"elbo": {"max_episodes": 2}},
        "train": {"steps": 3, "batch_episodes": 2, "checkpoint_every": 2},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_local_runner_end_to_end_isolates_a_failing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    run = ["--include", str(PLUGIN), "run", str(tiny_suite(tmp_path)), "--out", str(out), "--no-progress"]
    assert main([*run, "--runner", "local", "--workers", "2"]) == 1  # one run failed
    capsys.readouterr()
    results = {p.parent.name: json.loads(p.read_text()) for p in (out / "tiny").glob("*/result.json")}
    assert len(results) == 2
    good = next(r for name, r in results.items() if name.startswith("vae-"))
    bad = next(r for name, r in results.items() if name.startswith("broken-"))
    assert good["status"] == "done" and good["start_step"] == 0 and good["attempts"] == 1
    assert bad["status"] == "failed" and bad["error"].startswith("DivergenceError") and bad["log"].endswith("run.log")
    status = json.loads((out / "tiny" / bad["run_id"] / "status.json").read_text())
    assert status["state"] == "failed" and status["error"].startswith("DivergenceError") and status["log"]

    assert main(["status", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["done"], report["failed"], report["pending"], report["running"]) == (1, 1, 0, 0)
    assert {(r["run_id"], r["state"]) for r in report["runs"]} == {(good["run_id"], "done"), (bad["run_id"], "failed")}
    assert next(r for r in report["runs"] if r["state"] == "failed")["reason"].startswith("DivergenceError")

    assert main([*run, "--runner", "local", "--dry-run"]) == 0  # a rerun has nothing left to do
    assert "start 0, resume 0, retry 0, skip 1 done, 1 failed" in capsys.readouterr().out
    assert main(["status", str(out / "tiny")]) == 0
    table = capsys.readouterr().out
    assert "done 1, failed 1" in table and "DivergenceError" in table

    assert main([*run, "--retry-failed"]) == 1  # asked to: only the failed run runs again (and fails again)
    assert "start 0, resume 0, retry 1, skip 1 done, 0 failed" in capsys.readouterr().out
    retried = json.loads((out / "tiny" / bad["run_id"] / "result.json").read_text())
    assert retried["attempts"] == 2 and (out / "tiny" / bad["run_id"] / "result.failed-0.json").exists()
    assert json.loads((out / "tiny" / good["run_id"] / "result.json").read_text())["attempts"] == 1


def test_status_reports_a_run_whose_process_died_and_a_plain_rerun_resumes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tiny_suite(tmp_path, {"vae": {}})
    out = tmp_path / "results"
    assert main(["run", str(suite), "--out", str(out), "--dry-run"]) == 0
    capsys.readouterr()
    # A run directory left "running" by a process that no longer exists (e.g. a SIGKILLed inline run).
    from memorybench.runners.suite import load_suite

    spec = load_suite(suite).runs[0]
    run_dir = out / "tiny" / spec.run_id
    run_dir.mkdir(parents=True)
    (run_dir / "spec.json").write_text(json.dumps(spec.to_dict()))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (run_dir / "status.json").write_text(
        json.dumps({"state": "running", "pid": dead.pid, "host": socket.gethostname()})
    )
    assert main(["status", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["interrupted"] == 1 and "ended without a result" in report["runs"][0]["reason"]
    assert "a plain rerun resumes it" in report["runs"][0]["reason"]
    assert not (run_dir / "result.json").exists()  # status only reads
    assert main(["run", str(suite), "--out", str(out), "--dry-run"]) == 0
    assert "start 1," in capsys.readouterr().out and not (run_dir / "result.json").exists()
    assert main(["run", str(suite), "--out", str(out), "--no-progress"]) == 0  # no --retry-failed needed
    assert "start 1," in capsys.readouterr().out
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "done"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--runner", "lokal"], "unknown runner (did you mean 'local'?)"),
        (["--runner", "local", "--workers", "0"], "--workers 0: expected a positive integer"),
        (["--runner", "local", "--gpus", "99"], "--gpus 99: no CUDA device 99"),
        (["--runner", "local", "--gpus", "0,x"], "--gpus 0,x: expected comma-separated device indices"),
        (["--runner", "local", "--partition", "gpu"], "--partition applies only to --runner slurm"),
        (["--gpus", "0"], "--gpus applies only to --runner local"),
        (["--set", "resources.lokal.workers=2"], "resources: unknown key 'lokal' (did you mean 'local'?)"),
        (
            ["--runner", "local", "--set", "resources.local.workers=-1"],
            "resources.local.workers: must be a positive integer",
        ),
    ],
)
def test_bad_runner_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    out = tmp_path / "results"
    assert main(["run", str(tiny_suite(tmp_path, {"vae": {}})), "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_status_of_a_missing_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(tmp_path / "nope")]) == 2
    assert "no such results directory" in capsys.readouterr().err


def test_two_workers_evaluating_one_model_train_it_once(tmp_path: Path) -> None:
    """Both runs start at once; the second blocks on the training run's lock, then only loads."""
    path = tiny_suite(tmp_path, {"gpm": {"memory_size": 4}})
    suite = yaml.safe_load(path.read_text())
    suite["benchmarks"] = {"elbo": {"max_episodes": 2}, "retrieval": {"max_episodes": 2}}
    suite["train"]["steps"] = 40
    path.write_text(yaml.safe_dump(suite))
    out = tmp_path / "results"
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--runner", "local", "--workers", "2"]) == 0
    results = [json.loads(p.read_text()) for p in (out / "tiny").glob("*/result.json")]
    assert len(results) == 2 and len({r["training_run"] for r in results}) == 1
    assert sorted(r["start_step"] for r in results) == [0, 40]
    assert len(list((out / "tiny" / "_training").iterdir())) == 1


def test_runs_are_interleaved_over_their_training_runs(tmp_path: Path) -> None:
    from memorybench.runners.backends.local import interleave_trainings
    from memorybench.runners.dispatch import PlannedRun
    from memorybench.runners.suite import load_suite

    path = tiny_suite(tmp_path, {"gpm": {"memory_size": 4}, "vae": {}})
    suite = yaml.safe_load(path.read_text())
    suite["benchmarks"] = {"elbo": {"max_episodes": 2}, "generation": {"max_episodes": 2}}
    path.write_text(yaml.safe_dump(suite))
    runs = [PlannedRun(spec, tmp_path / spec.run_id, "start") for spec in load_suite(path).runs]
    assert [r.spec.memory for r in runs] == ["gpm", "gpm", "vae", "vae"]
    assert [r.spec.memory for r in interleave_trainings(runs)] == ["gpm", "vae", "gpm", "vae"]
