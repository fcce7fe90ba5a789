"""How long ``status`` and aggregation take on a large results tree: ``python -m memorybench.runners.scale_check``.

Writes N synthetic run directories shaped like real ones (spec, status, result with metrics, a
checkpoint, curves, a log, and submitit's four files per job in ``_slurm_logs/``), 90 % done, 5 %
failed, 3 % running, 2 % pending, then times each way of reading them back. Nothing is trained;
the numbers measure file-system reads and the Python on top. Example (the README's figures)::

    python -m memorybench.runners.scale_check --runs 3000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memorybench.runners.schema import SCHEMA_VERSION, measured_fields

MEMORIES = ("vae", "km", "dkm", "kanerva_pp", "gpm")


def _write(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def synthetic_tree(root: Path, runs: int, suite: str = "scale") -> Path:
    """``runs`` run directories below ``root/suite`` (plus a _slurm_logs folder); returns the suite dir."""
    suite_dir = root / suite
    logs = suite_dir / "_slurm_logs"
    logs.mkdir(parents=True)
    host, pid = socket.gethostname(), os.getpid()
    for index in range(runs):
        memory, seed = MEMORIES[index % len(MEMORIES)], index // len(MEMORIES)
        run_id = f"{memory}-digits-elbo-s{seed}-{index:010x}"
        run_dir = suite_dir / run_id
        run_dir.mkdir()
        identity: dict[str, Any] = {
            "memory": memory,
            "memory_config": {"code_size": 32, "episode_length": 16, "channels": 16},
            "dataset": "digits",
            "dataset_config": {"download": False, "valid_size": 0},
            "benchmark": "elbo",
            "benchmark_config": {"max_episodes": 64, "split": "test"},
            "train_config": {"steps": 250, "batch_episodes": 16},
            "seed": seed,
        }
        spec = {
            "suite": suite,
            "memory": memory,
            "memory_class": memory,
            "memory_config": identity["memory_config"],
            "dataset": "digits",
            "dataset_config": {},
            "benchmark": "elbo",
            "benchmark_config": identity["benchmark_config"],
            "train_config": identity["train_config"],
            "seed": seed,
            "data_root": None,
            "run_id": run_id,
        }
        _write(run_dir / "spec.json", spec)
        job = f"{1000 + index // 1000}_{index % 1000}"
        state = (
            "done"
            if index % 100 < 90
            else "failed"
            if index % 100 < 95
            else "running"
            if index % 100 < 98
            else "pending"
        )
        status = {
            "state": state,
            "attempts": 1,
            "host": host,
            "pid": pid,
            "run_id": run_id,
            "log": str(run_dir / "run.log"),
        }
        _write(run_dir / "status.json", status)
        (run_dir / "run.log").write_text("worker: training\n")
        (run_dir / "checkpoint.pt").write_bytes(b"\0" * 4096)
        (run_dir / "train_curve.csv").write_text("step,loss\n" + "".join(f"{s},{500 - s}\n" for s in range(0, 250, 10)))
        for name in ("log.out", "log.err"):
            (logs / f"{job}_0_{name}").write_text("submitit INFO: Starting\n")
        (logs / f"{job}_submitted.pkl").write_bytes(b"\0" * 2048)
        (logs / f"{job}_0_result.pkl").write_bytes(b"\0" * 64)
        if state in ("done", "failed"):
            result = {
                "schema_version": SCHEMA_VERSION,
                "run_id": run_id,
                "suite": suite,
                "memory": memory,
                "memory_class": memory,
                "dataset": "digits",
                "benchmark": "elbo",
                "seed": seed,
                "config": identity,
                "attempts": 1,
                "start_step": 0,
                "status": state,
                **measured_fields(
                    [{"name": "nelbo_cond", "value": 90.0 + index % 7, "unit": "nats/image", "stderr": 0.5}]
                    if state == "done"
                    else []
                ),
                "error": "DivergenceError: training diverged at step 7" if state == "failed" else None,
                "git_commit": "0" * 40,
                "environment": {"device": "cpu", "python": "3.11"},
                "finished": "2026-01-01T00:00:00+00:00",
            }
            _write(run_dir / "result.json", result)
    return suite_dir


def timed(label: str, action: Callable[[], Any], rows: list[tuple[str, float, str]]) -> Any:
    started = time.perf_counter()
    value = action()
    rows.append((label, time.perf_counter() - started, ""))
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m memorybench.runners.scale_check", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=3000, help="synthetic run directories (default 3000)")
    parser.add_argument("--dir", default=None, help="where to write them (default: a temporary directory, removed)")
    args = parser.parse_args(argv)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="memorybench-scale-"))
    rows: list[tuple[str, float, str]] = []
    try:
        suite_dir = timed(f"write {args.runs} synthetic run directories", lambda: synthetic_tree(root, args.runs), rows)
        from memorybench.runners.schema import run_directories
        from memorybench.runners.status import collect, status_json, status_table
        from memorybench.runners.summary import write_summary

        run_dirs = timed("find run directories (rglob spec.json)", lambda: run_directories(root), rows)
        views = timed("status: read and probe every run", lambda: collect(root), rows)
        timed("status: render table + JSON", lambda: (status_table(views), json.dumps(status_json(root, views))), rows)
        timed(
            "summary.csv/.md from every result (run's end-of-suite table)",
            lambda: write_summary(suite_dir, run_dirs),
            rows,
        )
        try:
            from memorybench.reports.aggregate import aggregate
            from memorybench.reports.load import load_results

            results = timed("reports: load_results (long-format metrics)", lambda: load_results(root), rows)
            timed("reports: aggregate over seeds", lambda: aggregate(results.current_metrics), rows)
        except ImportError as error:
            rows.append(("reports: not available", 0.0, str(error)))
        command = [sys.executable, "-m", "memorybench.runners.cli", "status", str(root), "--json"]
        done = timed(
            "`memorybench status --json` end to end (new process)",
            lambda: subprocess.run(command, capture_output=True),
            rows,
        )
        if done.returncode != 0:
            rows[-1] = (rows[-1][0], rows[-1][1], f"failed: {done.stderr.decode()[-200:]}")
        files = sum(len(files) for _, _, files in os.walk(root))
        print(f"{args.runs} runs, {files} files, on {socket.gethostname()} ({os.cpu_count()} CPUs)")
        for label, seconds, note in rows:
            print(f"  {seconds:8.2f} s  {label}{'  ' + note if note else ''}")
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
