"""The command line as a user drives it: listing, the quick suite, resuming, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from memorybench.runners.cli import main

REPO = Path(__file__).resolve().parents[1]

BENCHMARK_NAMES = ("capacity", "denoising", "elbo", "energy", "generation", "retrieval", "runtime")

TINY_SUITE = {
    "name": "tiny",
    "defaults": {"code_size": 4, "episode_length": 4, "network": "mlp", "hidden_size": 16},
    "memories": {"vae": {}, "gpm": {"memory_size": 4}},
    "datasets": {"digits": {}},
    "benchmarks": {"elbo": {"max_episodes": 3}},
    "train": {"steps": 3, "batch_episodes": 2, "checkpoint_every": 2},
}


def write_suite(tmp_path: Path, suite: dict | None = None, text: str | None = None) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(suite or TINY_SUITE))
    return path


def test_list_shows_every_registry_with_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("vae", "gpm", "digits", "binarized_mnist", "elbo"):
        assert name in out
    assert main(["list", "memories"]) == 0
    assert "Generative Pseudo-Inverse Memory" in capsys.readouterr().out


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    assert main(["run", str(write_suite(tmp_path)), "--out", str(out), "--dry-run", "-v"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("  start ") == 2 and '"memory_size": 4' in printed
    assert not out.exists()


def test_tiny_suite_end_to_end_then_rerun_resumes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    suite = write_suite(tmp_path)
    assert main(["run", str(suite), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "nelbo_cond [nats/image]" in printed
    results = sorted((out / "tiny").glob("*/result.json"))
    assert len(results) == 2
    for path in results:
        result = json.loads(path.read_text())
        assert result["status"] == "done" and result["benchmark"] == "elbo" and result["seed"] == 0
        nelbo = next(m for m in result["measurements"] if m["name"] == "nelbo_cond" and not m["tags"])
        assert result["metrics"]["nelbo_cond"] > 0 and nelbo["stderr"] >= 0
        assert result["start_step"] == 0 and result["attempts"] == 1
        assert "torch" in result["environment"] and "wall_time_s" in result
        assert (path.parent / "train_curve.csv").is_file() and (path.parent / "elbo_episodes.csv").is_file()
    gpm = json.loads(next((out / "tiny").glob("gpm-*/result.json")).read_text())
    assert "nelbo_full" not in gpm["metrics"] and "not applicable" in gpm["protocol"]["nelbo_full"]
    assert (out / "tiny" / "summary.csv").is_file() and (out / "tiny" / "summary.md").is_file()
    mtimes = {p: p.stat().st_mtime_ns for p in results}
    assert main(["run", str(suite), "--out", str(out), "--no-progress"]) == 0
    assert "skip 2 done" in capsys.readouterr().out
    assert all(p.stat().st_mtime_ns == mtimes[p] for p in results)


def test_suite_note_follows_the_summary_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(
        tmp_path, {**TINY_SUITE, "memories": {"vae": {}}, "note": "A smoke test:\n  ranking means nothing."}
    )
    out = tmp_path / "results"
    assert main(["run", str(suite), "--out", str(out), "--no-progress"]) == 0
    assert "note: A smoke test: ranking means nothing." in capsys.readouterr().out
    assert "Note: A smoke test: ranking means nothing." in (out / "tiny" / "summary.md").read_text()


@pytest.mark.parametrize(
    "config", ["quick.yaml", "quick_all.yaml", *(f"benchmarks/{b}_quick.yaml" for b in BENCHMARK_NAMES)]
)
def test_quick_configs_say_what_their_ranking_means(config: str) -> None:
    note = yaml.safe_load((REPO / "configs" / config).read_text()).get("note", "")
    assert "docs/fidelity.md" in note


def test_quick_config_is_valid_and_plans_vae_and_gpm(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", str(REPO / "configs" / "quick.yaml"), "--dry-run", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "vae-digits-elbo" in printed and "gpm-digits-elbo" in printed


BAD_SUITES = {
    "unknown memory": ({"memories": {"gmp": {}}}, "unknown memory 'gmp' (did you mean 'gpm'?)"),
    "unknown dataset": ({"datasets": {"mnist_fancy": {}}}, "unknown dataset 'mnist_fancy'"),
    "unknown benchmark": ({"benchmarks": {"elbow": {}}}, "unknown benchmark 'elbow' (did you mean 'elbo'?)"),
    "unknown model key": (
        {"memories": {"gpm": {"memry_size": 4}}},
        "memories.gpm: unknown key 'memry_size' (did you mean 'memory_size'?)",
    ),
    "wrong type": ({"memories": {"gpm": {"memory_size": "big"}}}, "memories.gpm.memory_size: expected an integer"),
    "impossible value": ({"memories": {"gpm": {"memory_size": 0}}}, "memories.gpm.memory_size: must be positive"),
    "unknown train key": ({"train": {"stpes": 3}}, "train: unknown key 'stpes' (did you mean 'steps'?)"),
    "unknown suite key": ({"memoires": {}}, "unknown suite key 'memoires'"),
    "episode too long": (
        {"defaults": {"episode_length": 400, "code_size": 4, "network": "mlp"}},
        "episode_length 400 is larger than the split",
    ),
    "bad seeds": ({"seeds": "zero"}, "seeds: expected a list of integers"),
    "note not a string": ({"note": ["a", "b"]}, "note: expected a string"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, expected = BAD_SUITES[case]
    suite = {**TINY_SUITE, **change}
    out = tmp_path / "results"
    assert main(["run", str(write_suite(tmp_path, suite)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_invalid_yaml_is_reported_with_its_position(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_suite(tmp_path, text="name: x\nmemories: [vae\n")
    assert main(["run", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "invalid YAML (line" in err and str(path) in err


def test_missing_suite_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "absent.yaml")]) == 2
    assert "no such suite file" in capsys.readouterr().err


def test_missing_data_files_name_dataset_directory_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = {**TINY_SUITE, "datasets": {"binarized_mnist": {}}}
    out = tmp_path / "results"
    code = main(["run", str(write_suite(tmp_path, suite)), "--out", str(out), "--data-root", str(tmp_path / "nodata")])
    assert code == 2
    err = capsys.readouterr().err
    assert "binarized_mnist" in err and str(tmp_path / "nodata") in err and "binarized_mnist_test.amat" in err
    assert not out.exists()


def test_unwritable_output_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["run", str(write_suite(tmp_path)), "--out", str(blocker / "results")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_bad_set_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(write_suite(tmp_path)), "--set", "train.steps", "--out", str(tmp_path / "r")]) == 2
    assert "expected key=value" in capsys.readouterr().err


def test_set_override_changes_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path)
    assert main(["run", str(suite), "--dry-run", "--set", "seeds=[0,1]", "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out.count("  start ") == 4


def test_validate_runs_the_conformance_kit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "vae"]) == 0
    assert "all conformance checks passed" in capsys.readouterr().out
    assert main(["validate", "nope"]) == 2


# Runs the CLI, then says whether torch was imported along the way.
TORCH_PROBE = """
import sys
from memorybench.runners.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
print("torch imported:", "torch" in sys.modules)
sys.exit(code)
"""


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["list", "backends"], ["run", "--help"]])
def test_help_and_list_do_not_import_torch(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", TORCH_PROBE, *argv], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("torch imported: False")
    if argv == ["list"]:
        assert "backends:" in done.stdout and "slurm" in done.stdout and "digits" in done.stdout


def test_the_cli_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "memorybench.runners.cli", "list", "backends"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "inline" in done.stdout and "local" in done.stdout


def test_list_shows_models_registered_with_include(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugin = tmp_path / "listed_model.py"
    plugin.write_text(
        "from memorybench.memories import register_memory\nfrom memorybench.memories.vae import VAE\n\n"
        '@register_memory("listed_vae_for_test")\nclass ListedVAE(VAE):\n    """A model only --include knows."""\n'
    )
    assert main(["--include", str(plugin), "list", "memories"]) == 0
    assert "A model only --include knows." in capsys.readouterr().out


ECHO_BACKEND = '''
from memorybench.runners.backends import register_backend
from memorybench.runners.backends.base import Backend


@register_backend("echo_for_test")
class EchoBackend(Backend):
    """Prints what it is handed instead of running it."""

    def describe(self, plan):
        return [f"echo: {plan.will_run} runs"]

    def execute(self, plan, options):
        print(f"echo executes {len(plan.todo)} runs")
        return 0
'''


def test_a_backend_plugin_is_chosen_through_the_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugin = tmp_path / "echo_backend.py"
    plugin.write_text(ECHO_BACKEND)
    run = ["--include", str(plugin), "run", str(write_suite(tmp_path)), "--out", str(tmp_path / "out")]
    assert main([*run, "--runner", "echo_for_test", "--dry-run"]) == 0
    assert "echo: 2 runs" in capsys.readouterr().out
    assert main([*run, "--runner", "echo_for_test"]) == 0
    assert "echo executes 2 runs" in capsys.readouterr().out
    assert main([*run, "--runner", "echo_for_tset"]) == 2
    assert (
        "unknown runner (did you mean 'echo_for_test'?); choose from echo_for_test, inline" in capsys.readouterr().err
    )
