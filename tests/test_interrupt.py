"""An inline suite stopped by SIGTERM (``timeout``, a scheduler) is resumable, not failed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MEMORYBENCH_SCRIPT = str(Path(sys.executable).with_name("memorybench"))  # the installed console script
PLUGIN = REPO / "tests" / "plugins" / "runner_models.py"


def test_sigterm_leaves_the_run_pending_and_the_rerun_resumes_it(tmp_path: Path) -> None:
    suite = {
        "name": "stop",
        "memories": {"slow_vae": {"code_size": 4, "episode_length": 4, "network": "mlp", "hidden_size": 8}},
        "datasets": ["digits"],
        "benchmarks": {"elbo": {"max_episodes": 2}},
        "train": {"steps": 200, "batch_episodes": 2, "checkpoint_every": 5},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = tmp_path / "results"
    command = [MEMORYBENCH_SCRIPT, "--include", str(PLUGIN), "run", str(path), "--out", str(out)]
    process = subprocess.Popen([*command, "--no-progress"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(out.glob("stop/_training/*/checkpoint.pt")):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and b"re-run to resume" in err
    run_dir = next(p for p in out.glob("stop/*/") if not p.name.startswith("_"))
    assert json.loads((run_dir / "status.json").read_text())["state"] == "pending"
    assert not (run_dir / "result.json").exists()

    rerun = subprocess.run([*command, "--no-progress"], cwd=REPO, capture_output=True)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert b"start 0, resume 1" in rerun.stdout
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "done" and result["start_step"] > 0 and result["attempts"] == 2
