"""Train once, evaluate many: one training run per model, shared by every benchmark that needs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from memorybench.runners.cli import main

SUITE = {
    "name": "shared",
    "defaults": {"code_size": 4, "episode_length": 4, "network": "mlp", "hidden_size": 16},
    "memories": {"vae": {}, "gpm": {"memory_size": 4}},
    "datasets": {"digits": {}},
    "benchmarks": {"elbo": {"max_episodes": 2}, "retrieval": {"max_episodes": 2}, "runtime": {}},
    "train": {"steps": 3, "batch_episodes": 2, "checkpoint_every": 2},
}


def run_suite(tmp_path: Path, *sets: str, suite: dict | None = None) -> int:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite or SUITE))
    args = ["run", str(path), "--out", str(tmp_path / "results"), "--no-progress"]
    for item in sets:
        args += ["--set", item]
    return main(args)


def results(tmp_path: Path, benchmark: str | None = None) -> dict[str, dict]:
    """Results keyed ``memory/benchmark/train steps`` (``None`` for benchmarks that do not train)."""
    found = {}
    for path in (tmp_path / "results" / "shared").glob("*/result.json"):
        result = json.loads(path.read_text())
        steps = (result["config"]["train_config"] or {}).get("steps")
        if benchmark is None or result["benchmark"] == benchmark:
            found[f"{result['memory']}/{result['benchmark']}/{steps}"] = result
    return found


def test_benchmarks_of_one_model_share_one_training_run(tmp_path: Path) -> None:
    assert run_suite(tmp_path, "benchmarks.runtime.memory_sizes=[4]", "benchmarks.runtime.steps=[1]") == 0
    training = sorted((tmp_path / "results" / "shared" / "_training").iterdir())
    assert [p.name.split("-")[0] for p in training] == ["gpm", "vae"]  # two models -> two trainings
    done = results(tmp_path)
    gpm_elbo, gpm_retrieval = done["gpm/elbo/3"], done["gpm/retrieval/3"]
    assert gpm_elbo["training_run"] == gpm_retrieval["training_run"] == training[0].name
    trained_here = sorted([gpm_elbo, gpm_retrieval], key=lambda r: r["train_time_s"])
    assert trained_here[0]["start_step"] == 3 and trained_here[0]["train_time_s"] == 0  # loaded, not retrained
    assert trained_here[1]["start_step"] == 0
    assert done["gpm/runtime/None"]["training_run"] is None  # runtime needs no trained model
    state = json.loads((training[0] / "training.json").read_text())
    assert state["state"] == "done" and state["steps"] == 3 and (training[0] / "model-step3.pt").is_file()


def test_training_longer_continues_the_shorter_run_and_keeps_both_snapshots(tmp_path: Path) -> None:
    suite = {**SUITE, "memories": {"vae": {}}, "benchmarks": {"elbo": {"max_episodes": 2}}}
    assert run_suite(tmp_path, suite=suite) == 0
    assert run_suite(tmp_path, "train.steps=5", suite=suite) == 0
    longer = results(tmp_path)["vae/elbo/5"]
    assert longer["start_step"] == 3 and longer["train_steps"] == 5
    (directory,) = (tmp_path / "results" / "shared" / "_training").iterdir()
    assert (directory / "model-step3.pt").is_file() and (directory / "model-step5.pt").is_file()
    # evaluating at the shorter budget loads the step-3 snapshot instead of failing or retraining
    assert main(["evaluate", str(directory), "elbo", "--steps", "3", "--set", "max_episodes=1", "--no-progress"]) == 0
    every = [json.loads(p.read_text()) for p in (tmp_path / "results" / "shared").glob("*/result.json")]
    evaluated = [
        r for r in every if r["config"]["benchmark_config"]["max_episodes"] == 1
    ]  # keyed results() would collide
    assert len(evaluated) == 1 and evaluated[0]["start_step"] == 3 and evaluated[0]["train_time_s"] == 0


def test_evaluate_an_existing_training_run_without_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = {**SUITE, "memories": {"gpm": {"memory_size": 4}}, "benchmarks": {"elbo": {"max_episodes": 2}}}
    assert run_suite(tmp_path, suite=suite) == 0
    (elbo_dir,) = [p for p in (tmp_path / "results" / "shared").glob("gpm-*") if (p / "result.json").is_file()]
    assert main(["evaluate", str(elbo_dir), "retrieval", "--set", "max_episodes=2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "cosine_mean" in out
    retrieval = next(iter(results(tmp_path, "retrieval").values()))
    assert retrieval["status"] == "done" and retrieval["train_time_s"] == 0
    assert retrieval["training_run"] == json.loads((elbo_dir / "result.json").read_text())["training_run"]
    # a second call finds the result and does nothing
    assert main(["evaluate", str(elbo_dir), "retrieval", "--set", "max_episodes=2"]) == 0
    assert "already evaluated" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["retrieval", "--set", "max_episodes=-1"], "benchmarks.retrieval.max_episodes"),
        (["nosuch"], "unknown benchmark 'nosuch'"),
        (["elbo", "--steps", "7"], "no weights saved at step 7"),
    ],
)
def test_evaluate_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    suite = {**SUITE, "memories": {"vae": {}}, "benchmarks": {"elbo": {"max_episodes": 2}}}
    assert run_suite(tmp_path, suite=suite) == 0
    (directory,) = (tmp_path / "results" / "shared" / "_training").iterdir()
    capsys.readouterr()
    assert main(["evaluate", str(directory), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_failed_training_blocks_its_other_evaluations_until_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated divergence")

    monkeypatch.setattr("memorybench.runners.training.train", explode)
    suite = {**SUITE, "memories": {"gpm": {"memory_size": 4}}}
    suite["benchmarks"] = {"elbo": {"max_episodes": 2}, "retrieval": {"max_episodes": 2}}
    assert run_suite(tmp_path, suite=suite) == 1
    failed = results(tmp_path)
    errors = sorted(r["error"] for r in failed.values())
    assert errors[0].startswith("RuntimeError: simulated divergence")
    assert errors[1].startswith("TrainingBlockedError: blocked: training run gpm-digits-s0-")
    assert "simulated divergence" in errors[1]
    monkeypatch.undo()
    path = tmp_path / "suite.yaml"
    assert main(["run", str(path), "--out", str(tmp_path / "results"), "--no-progress", "--retry-failed"]) == 0
    assert all(r["status"] == "done" for r in results(tmp_path).values())
