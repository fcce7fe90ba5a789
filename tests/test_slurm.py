"""The SLURM backend: resource parsing (always), and real submissions (marked ``slurm``).

The ``slurm`` tests need a running controller and node — CI starts a one-node cluster with
``runners/local_slurm.sh start`` and sets ``MEMORYBENCH_REQUIRE_SLURM=1``, which turns "no SLURM"
into a failure instead of a skip. They submit through the real CLI and check the results tree:
an array with one failing run, a job requeued by ``scontrol requeue`` and one signalled the way
SLURM warns before a time limit (submitit's checkpoint path), a cancelled job, and a rerun.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import submitit
import yaml

from memorybench.memories.configuration import ConfigError
from memorybench.runners.backends.slurm import (
    chunks,
    parse_mem_gb,
    parse_time_min,
    sbatch_parameters,
    slurm_resources,
)
from memorybench.runners.backends.slurm_jobs import SlurmRun
from memorybench.runners.cli import main
from memorybench.runners.suite import RunSpec

REPO = Path(__file__).resolve().parents[1]
PLUGIN = str(REPO / "tests" / "plugins" / "runner_models.py")
TIMEOUT_S = float(os.environ.get("MEMORYBENCH_SLURM_TEST_TIMEOUT_S", "300"))
SMALL = {"code_size": 4, "episode_length": 4, "network": "mlp", "hidden_size": 16}
JOB_FLAGS = ["--runner", "slurm", "--mem", "1G", "--time", "10", "--cpus-per-task", "1"]


# ---------------------------------------------------------------------------- without a cluster
def test_time_and_memory_flags_follow_slurm_formats() -> None:
    assert [parse_time_min(t) for t in ("90", "45:30", "1:30:00", "2-00:00:00", "1-2", "1-0:30")] == [
        90,
        46,
        90,
        2880,
        1560,
        1470,
    ]
    assert [parse_mem_gb(m) for m in ("16G", "16gb", "1536M", "1T")] == [16.0, 16.0, 1.5, 1024.0]
    for bad in ("abc", "0", "1:2:3:4"):
        with pytest.raises(ConfigError, match="--time"):
            parse_time_min(bad)
    with pytest.raises(ConfigError, match="--mem 16: expected a size with a unit"):
        parse_mem_gb("16")  # sbatch would read a bare number as megabytes


def test_suite_resources_and_flags_make_the_sbatch_request() -> None:
    section = {"partition": "cpu", "time_min": 30, "mem_gb": 8, "array_parallelism": 10, "additional": {"qos": "low"}}
    resources = slurm_resources(section, {"partition": "gpu", "gpus_per_job": "2", "mem_gb": "1.5G"}, ["account=proj"])
    assert resources.partition == "gpu" and resources.time_min == 30 and resources.gpus_per_job == 2
    parameters = sbatch_parameters(resources, "quick", parallelism=5)
    assert parameters["partition"] == "gpu" and parameters["time"] == 30 and parameters["mem"] == "1536MB"
    assert parameters["gpus_per_node"] == 2 and parameters["array_parallelism"] == 5
    assert parameters["additional_parameters"] == {"qos": "low", "account": "proj"}
    assert parameters["job_name"] == "memorybench-quick"
    with pytest.raises(ConfigError, match=r"resources.slurm: unknown key 'partiton' \(did you mean 'partition'\?\)"):
        slurm_resources({"partiton": "x"}, {})
    with pytest.raises(ConfigError, match=r"resources\.slurm\.time_min: must be a positive number of minutes"):
        slurm_resources({"time_min": 0}, {})
    with pytest.raises(ConfigError, match="--gpus-per-job x: expected an integer >= 0"):
        slurm_resources({}, {"gpus_per_job": "x"})


def test_large_suites_are_cut_into_arrays_below_max_array_size() -> None:
    assert [len(piece) for piece in chunks(list(range(2500)), 1001)] == [1001, 1001, 498]
    assert chunks([], 1001) == []


def test_the_job_callable_carries_only_the_spec_and_checkpoints_itself(tmp_path: Path) -> None:
    spec = RunSpec("s", "vae", "vae", {}, "digits", {}, "elbo", {}, {}, 0)
    job = SlurmRun(spec, str(tmp_path / spec.run_id), ["/abs/plugin.py"])
    assert set(vars(job)) == {"spec", "run_dir", "includes"}
    assert len(pickle.dumps(job)) < 2000
    again = job.checkpoint()
    assert isinstance(again, submitit.helpers.DelayedSubmission)
    assert isinstance(again.function, SlurmRun) and vars(again.function) == vars(job)


def test_slurm_without_sbatch_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path, "nosbatch", {"vae": {}}, steps=3)
    out = tmp_path / "results"
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    assert main(["run", str(suite), "--out", str(out), "--runner", "slurm"]) == 2
    err = capsys.readouterr().err
    assert "sbatch not found on PATH" in err and err.count("\n") == 1 and not out.exists()
    for flags, message in [
        (["--runner", "slurm", "--mem", "16"], "--mem 16: expected a size with a unit"),
        (["--runner", "slurm", "--time", "0"], "--time 0: must be positive"),
        (["--runner", "slurm", "--array-parallelism", "0"], "--array-parallelism 0: expected an integer >= 1"),
        (["--wait"], "--wait applies only to --runner slurm"),
    ]:
        assert main(["run", str(suite), "--out", str(out), *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and not out.exists()


def test_dry_run_shows_the_sbatch_request_without_sbatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path, "plan", {"vae": {}, "gpm": {"memory_size": 4}}, steps=3, seeds=[0, 1])
    out = tmp_path / "results"
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, srun, scontrol
    flags = [*JOB_FLAGS, "--partition", "gpu", "--gpus-per-job", "1", "--sbatch", "account=proj", "--dry-run"]
    assert main(["run", str(suite), "--out", str(out), *flags, "--set", "resources.slurm.max_array_size=3"]) == 0
    printed = capsys.readouterr().out
    assert "slurm: 4 runs in 2 job array(s): partition gpu, 10 min, 1 GB, 1 CPUs, 1 GPUs" in printed
    request = (
        "sbatch --job-name=memorybench-plan --partition=gpu --time=10 --mem=1GB --cpus-per-task=1 --gpus-per-node=1"
    )
    assert f"array 1 (runs 1-3): {request} --signal=USR2@90 --account=proj --array=0-2%128" in printed
    assert "array 2 (runs 4-4):" in printed and "--array=0-0%128" in printed
    assert "dependencies: none" in printed and "3 requeues" in printed
    assert "a real run would stop here: --runner slurm: sbatch not found on PATH" in printed
    assert not out.exists()


# ---------------------------------------------------------------------------- on a real cluster
def require_slurm() -> None:
    """Fail (CI asked for SLURM) or skip when no controller answers with an available node."""
    problem = ""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        problem = "sinfo/sbatch not installed"
    else:
        done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
        states = done.stdout.split()
        if done.returncode != 0 or not any(s.rstrip("*") in ("idle", "mix", "alloc") for s in states):
            problem = f"no usable SLURM node (sinfo: {(done.stdout + done.stderr).strip() or 'nothing'})"
    if problem:
        hint = "start one with: sudo bash runners/local_slurm.sh start"
        if os.environ.get("MEMORYBENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"MEMORYBENCH_REQUIRE_SLURM=1 but SLURM is not up: {problem}; {hint}")
        pytest.skip(f"SLURM is not up ({problem}); {hint}")


def write_suite(tmp_path: Path, name: str, memories: dict, steps: int, seeds: list[int] | None = None) -> Path:
    suite = {
        "name": name,
        "seeds": seeds or [0],
        "defaults": SMALL,
        "memories": memories,
        "datasets": {"digits": {}},
        "benchmarks": {"elbo": {"max_episodes": 2}},
        "train": {"steps": steps, "batch_episodes": 2, "checkpoint_every": 25},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def wait_for(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{squeue()}")


def squeue() -> str:
    return subprocess.run(["squeue", "-r", "--states=all"], capture_output=True, text=True).stdout


def read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def status_json(results: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["status", str(results), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def job_state(job_id: str) -> tuple[str, str]:
    line = subprocess.run(
        ["squeue", "-h", "-r", "--states=all", "-o", "%T|%r", "-j", job_id], capture_output=True, text=True
    ).stdout
    state, _, reason = line.strip().partition("|")
    return state, reason


def release(job_id: str) -> None:
    """A requeued job waits ~2 minutes (BeginTime) before it is eligible again; let it start now."""

    def started() -> bool:
        state, reason = job_state(job_id)
        if state == "PENDING" and reason == "BeginTime":
            subprocess.run(["scontrol", "update", f"jobid={job_id}", "starttime=now"], capture_output=True)
        return state == "RUNNING" or (state == "PENDING" and reason != "BeginTime")

    wait_for(started, f"requeued job {job_id} to be released")


def submit_long_run(tmp_path: Path, name: str, steps: int) -> tuple[Path, str]:
    """Submit one slow run (about 20 ms a step); return its directory and job id once it has a checkpoint."""
    suite = write_suite(tmp_path, name, {"slow": {"memory": "slow_vae", "step_sleep_s": 0.02}}, steps=steps)
    out = tmp_path / "results"
    assert main(["--include", PLUGIN, "run", str(suite), "--out", str(out), *JOB_FLAGS, "--max-requeues", "3"]) == 0
    run_dir = next((out / name).glob("slow-*"))
    wait_for(lambda: any((out / name / "_training").glob("*/checkpoint.pt")), "the first checkpoint")
    status = wait_for(
        lambda: (s := read(run_dir / "status.json")) and s.get("state") == "running" and s, "the job to run"
    )
    return run_dir, status["slurm_job_id"]


def kill_wait_s() -> int:
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    match = re.search(r"^KillWait\s*=\s*(\d+)", config, flags=re.MULTILINE)
    return int(match.group(1)) if match else 30


@pytest.fixture(scope="module")
def array_suite() -> dict[str, Any]:
    """Shared by the array test and the rerun test that follows it."""
    return {}


@pytest.mark.slurm
def test_array_suite_completes_once_and_isolates_a_failing_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], array_suite: dict[str, Any]
) -> None:
    require_slurm()
    memories = {
        "vae": {},
        "vae_c8": {"memory": "vae", "code_size": 8},
        "vae_h32": {"memory": "vae", "hidden_size": 32},
        "vae_c6": {"memory": "vae", "code_size": 6},
        "broken": {"memory": "diverging_vae"},
    }
    suite = write_suite(tmp_path, "array", memories, steps=4)
    out = tmp_path / "results"
    command = ["--include", PLUGIN, "run", str(suite), "--out", str(out), *JOB_FLAGS]
    assert main([*command, "--wait", "--poll", "1"]) == 1  # one run failed; the others completed
    printed = capsys.readouterr().out
    assert "submitted 5 runs as job" in printed and "done 4, failed 1" in printed
    suite_dir = out / "array"
    run_dirs = sorted(path for path in suite_dir.iterdir() if (path / "spec.json").exists())
    assert len(run_dirs) == 5
    results = {path.name: read(path / "result.json") for path in run_dirs}
    assert all(result is not None for result in results.values())
    assert not list(suite_dir.glob("*/result.failed-*.json"))
    job_ids = [read(path / "status.json")["slurm_job_id"] for path in run_dirs]  # type: ignore[index]
    assert len(set(job_ids)) == 5 and len({job.split("_")[0] for job in job_ids}) == 1  # one array, one task each
    assert len(list((suite_dir / "_slurm_logs").glob("*_0_result.pkl"))) == 5  # every task ran exactly once
    for name, result in results.items():
        assert result["attempts"] == 1 and result["start_step"] == 0  # type: ignore[index]
        if name.startswith("broken-"):
            assert result["status"] == "failed" and result["error"].startswith("DivergenceError")  # type: ignore[index]
            status = read(suite_dir / name / "status.json")
            assert status["state"] == "failed" and status["error"].startswith("DivergenceError")  # type: ignore[index]
            assert status["log"] and status["slurm_stderr"].startswith(str(suite_dir / "_slurm_logs"))  # type: ignore[index]
        else:
            assert result["status"] == "done" and result["metrics"]["nelbo_cond"] > 0  # type: ignore[index]
    report = status_json(out, capsys)
    assert (report["done"], report["failed"], report["pending"], report["running"]) == (4, 1, 0, 0)
    array_suite.update(command=command, suite_dir=suite_dir, job_ids=job_ids)


@pytest.mark.slurm
def test_rerunning_a_finished_suite_submits_nothing(
    capsys: pytest.CaptureFixture[str], array_suite: dict[str, Any]
) -> None:
    require_slurm()
    if not array_suite:
        pytest.skip("needs test_array_suite_completes_once_and_isolates_a_failing_run")
    suite_dir = array_suite["suite_dir"]
    submissions = sorted((suite_dir / "_slurm_logs").glob("*_submission.sh"))
    capsys.readouterr()
    assert main(array_suite["command"]) == 1  # the failed run is still failed (not retried unasked)
    printed = capsys.readouterr().out
    assert "start 0, resume 0, retry 0, skip 4 done, 1 failed" in printed and "nothing to submit" in printed
    assert sorted((suite_dir / "_slurm_logs").glob("*_submission.sh")) == submissions
    run_dirs = sorted(path for path in suite_dir.iterdir() if (path / "spec.json").exists())
    assert [read(path / "status.json")["slurm_job_id"] for path in run_dirs] == array_suite["job_ids"]  # type: ignore[index]


@pytest.mark.slurm
def test_requeued_job_resumes_from_its_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_slurm()
    # At >= 20 ms a step it outlives KillWait: `scontrol requeue` sends SIGTERM (submitit ignores it), then SIGKILL.
    run_dir, job_id = submit_long_run(tmp_path, "requeue", steps=int((kill_wait_s() + 5) / 0.02))
    subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True)
    wait_for(lambda: job_state(job_id)[0] == "PENDING", "the job to be requeued")
    view = next(r for r in status_json(tmp_path / "results", capsys)["runs"] if r["run_id"] == run_dir.name)
    assert view["state"] in ("pending", "running") and job_id in view["reason"]
    release(job_id)
    result = wait_for(lambda: read(run_dir / "result.json"), "the requeued run to finish")
    assert result["status"] == "done", result.get("error")
    assert result["start_step"] > 0 and result["start_step"] % 25 == 0  # resumed from a checkpoint, not from zero
    assert result["attempts"] >= 2 and result["train_steps"] == result["config"]["train_config"]["steps"]
    status = read(run_dir / "status.json")
    assert status["slurm_job_id"] == job_id and status["slurm_restarts"] >= 1  # type: ignore[index]


@pytest.mark.slurm
def test_preemption_signal_checkpoints_requeues_and_resumes(tmp_path: Path) -> None:
    require_slurm()
    # SLURM sends USR2 before a time limit (and on preemption when configured): submitit calls
    # SlurmRun.checkpoint(), requeues the job itself and exits at once.
    run_dir, job_id = submit_long_run(tmp_path, "preempt", steps=400)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True, capture_output=True)
    wait_for(lambda: job_state(job_id)[0] == "PENDING", "submitit to requeue the job")
    status = read(run_dir / "status.json")
    assert status["state"] == "pending" and "interrupted" in status["note"]  # type: ignore[index]
    release(job_id)
    result = wait_for(lambda: read(run_dir / "result.json"), "the preempted run to finish")
    assert result["status"] == "done", result.get("error")
    assert result["start_step"] > 0 and result["attempts"] == 2


@pytest.mark.slurm
def test_cancelled_job_is_reported_interrupted_and_a_plain_rerun_resumes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_slurm()
    run_dir, job_id = submit_long_run(tmp_path, "cancel", steps=int((kill_wait_s() + 5) / 0.02))
    subprocess.run(["scancel", job_id], check=True, capture_output=True)
    out = tmp_path / "results"

    def reported_interrupted() -> dict[str, Any] | None:
        view = next(r for r in status_json(out, capsys)["runs"] if r["run_id"] == run_dir.name)
        return view if view["state"] == "interrupted" else None

    view = wait_for(reported_interrupted, "status to report the cancelled job")
    assert f"slurm job {job_id} ended without a result" in view["reason"] and "CANCELLED" in view["reason"]
    capsys.readouterr()
    suite = tmp_path / "cancel.yaml"
    assert main(["--include", PLUGIN, "run", str(suite), "--out", str(out), *JOB_FLAGS, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "resume 1" in printed or "start 1" in printed  # resumed without --retry-failed
    assert not (run_dir / "result.json").exists()


@pytest.mark.slurm
def test_unknown_partition_is_rejected_before_submission(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_slurm()
    suite = write_suite(tmp_path, "nopart", {"vae": {}}, steps=3)
    out = tmp_path / "results"
    assert main(["run", str(suite), "--out", str(out), "--runner", "slurm", "--partition", "no-such-partition"]) == 2
    err = capsys.readouterr().err
    assert "--partition no-such-partition: no such partition (available:" in err and err.count("\n") == 1
    assert not out.exists()
