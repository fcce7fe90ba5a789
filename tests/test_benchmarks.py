"""The paper's experiments as benchmarks: end to end on digits, conformance over the registries,
config validation, the suite configs, and the memory-operation script.

One module-scoped grid runs every registered benchmark on every registered memory (tiny MLP
models, 2 training steps, minimal benchmark settings) through the real run path
(``execute_run``); the tests below inspect what those runs wrote.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from memorybench import memories
from memorybench.benchmarks.base import BENCHMARKS, BenchmarkContext
from memorybench.benchmarks.capacity import CapacityBenchmark, CapacityConfig, resolve_lengths
from memorybench.benchmarks.common.datasets import create as create_dataset
from memorybench.benchmarks.common.timing import PeakMemory, extrapolate, peak_memory_mb
from memorybench.memories.configuration import ConfigError, from_mapping
from memorybench.runners.execute import execute_run
from memorybench.runners.suite import build_suite, load_yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "benchmarks"
PAPER_BENCHMARKS = ("elbo", "denoising", "generation", "capacity", "retrieval", "energy", "runtime")
FIVE_MODELS = {"vae", "km", "dkm", "kanerva_pp", "gpm"}
TINY_MODEL = {
    "code_size": 8,
    "episode_length": 4,
    "network": "mlp",
    "hidden_size": 16,
    "memory_size": 4,
    "address_size": 4,
    "head_hidden_size": 8,
    "grid_channels": 4,
    "grid_size": 4,
    "block_size": 2,
    "writer_hidden_size": 8,
}
MINIMAL = {
    "elbo": {"max_episodes": 2},
    "denoising": {
        "episode_lengths": [4, 8],
        "max_episodes": 2,
        "steps": 2,
        "salt_pepper": [0.1, 0.15],
        "block": [6],
        "rotation": [30],
        "gaussian": [0.5],
        "strip_rows": 2,
    },
    "generation": {"max_episodes": 2, "samples": 3, "steps": 1, "grid_episodes": 1, "grid_samples": 2},
    "capacity": {
        "lengths": [4, 8],
        "max_episodes": 1,
        "max_queries": 4,
        "huge_items": 16,
        "huge_queries": 4,
        "huge_steps": 2,
    },
    "retrieval": {"episode_lengths": [4, 8], "max_episodes": 2},
    "energy": {"max_episodes": 2, "steps": 2},
    "runtime": {
        "episode_lengths": [4],
        "memory_sizes": [4],
        "steps": [1],
        "steps_at": [[4, 4]],
        "repeats": 1,
        "warmup": 0,
        "batch_episodes": 2,
    },
}


def tiny_settings(name: str) -> dict:
    fields = {f.name for f in dataclasses.fields(memories.MEMORIES.get(name).config_class)}
    return {key: value for key, value in TINY_MODEL.items() if key in fields}


def run_suite(
    out: Path, benchmark: str, names: list[str], settings: dict | None = None, seed: int = 0
) -> dict[str, tuple[dict, Path]]:
    """Build a one-benchmark suite on digits and execute every run; {memory: (result, run_dir)}."""
    raw = {
        "name": "test",
        "seeds": [seed],
        "memories": {name: tiny_settings(name) for name in names},
        "datasets": {"digits": {}},
        "benchmarks": {benchmark: MINIMAL.get(benchmark, {}) if settings is None else settings},
        "train": {"steps": 2, "batch_episodes": 2, "checkpoint_every": 2},
    }
    runs = {}
    for spec in build_suite(raw).runs:
        run_dir = out / spec.run_id
        runs[spec.memory] = (execute_run(spec, run_dir, progress=False), run_dir)
    return runs


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> dict[tuple[str, str], tuple[dict, Path]]:
    """Every registered benchmark × every registered memory, run once."""
    out = tmp_path_factory.mktemp("grid")
    results = {}
    for benchmark in BENCHMARKS.available():
        for name, value in run_suite(out / benchmark, benchmark, memories.available()).items():
            results[benchmark, name] = value
    return results


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def measured(result: dict, name: str, **tags) -> dict:
    """The one measurement of ``result`` called ``name`` with exactly these tags."""
    found = [m for m in result["measurements"] if m["name"] == name and m["tags"] == tags]
    assert len(found) == 1, f"{name} {tags}: {len(found)} measurements"
    return found[0]


def declared(result: dict) -> dict[str, dict]:
    """The figures a run declared, by name."""
    return {figure["name"]: figure for figure in result["figures"]}


def test_no_metric_name_encodes_a_stderr_or_a_setting(grid):
    for (benchmark, name), (result, _) in grid.items():
        for item in result["measurements"]:
            assert "/" not in item["name"] and not item["name"].endswith("_stderr"), (benchmark, name, item)


# ----------------------------------------------------------------------------- registry, conformance
def test_every_paper_benchmark_is_registered_with_a_description():
    assert set(PAPER_BENCHMARKS) <= set(BENCHMARKS.available())
    for name in PAPER_BENCHMARKS:
        assert BENCHMARKS.describe(name), name


def test_every_benchmark_runs_on_every_registered_model_or_says_why_not(grid):
    problems = []
    for (benchmark, name), (result, run_dir) in grid.items():
        on_disk = json.loads((run_dir / "result.json").read_text())
        assert on_disk["status"] == result["status"]
        if result["status"] == "not_applicable":
            if not str(result.get("reason", "")).startswith("not applicable: "):
                problems.append(f"{benchmark} on {name}: not_applicable without a reason")
        elif result["status"] != "done":
            problems.append(f"{benchmark} on {name}: {result['status']}: {result.get('error')}")
        elif not result["metrics"]:
            problems.append(f"{benchmark} on {name}: no metrics")
        else:
            missing = [f for f in result.get("files", []) if not (run_dir / f).is_file()]
            if missing:
                problems.append(f"{benchmark} on {name}: files listed but missing: {missing}")
    assert not problems, "\n".join(problems)


def test_latent_memory_benchmarks_are_not_applicable_to_memoryless_models(grid):
    for name in ("vae", "kanerva_pp"):
        result, _ = grid["retrieval", name]
        assert result["status"] == "not_applicable" and "latent memory" in result["reason"]
    for name in ("gpm", "km", "dkm"):
        assert grid["retrieval", name][0]["status"] == "done"
    for name in FIVE_MODELS:  # iterative reading through the VAE is a memoryless baseline: it runs
        assert grid["denoising", name][0]["status"] == "done"


# ----------------------------------------------------------------------------- denoising
def test_denoising_writes_the_interface_metrics_and_files(grid):
    result, run_dir = grid["denoising", "gpm"]
    overall_rate, overall_error = measured(result, "success_rate"), measured(result, "hamming_final")
    assert 0.0 <= overall_rate["value"] <= 1.0 and overall_error["value"] >= 0.0
    assert overall_rate["higher_is_better"] is True and overall_error["higher_is_better"] is False
    assert overall_rate["stderr"] is None  # an average over cells that share episodes
    for noise, level in [
        ("salt_pepper", 0.1),
        ("salt_pepper", 0.15),
        ("block", 6),
        ("rotation", 30),
        ("gaussian", 0.5),
    ]:
        for name in ("success_rate", "hamming_final"):
            measured(result, name, noise=noise, level=level)
            for length in (4, 8):
                cell = measured(result, name, T=length, noise=noise, level=level)
                assert cell["stderr"] is not None and cell["stderr"] >= 0
    for length in (4, 8):
        measured(result, "success_rate", T=length)
    cell = {t: measured(result, "success_rate", T=t, noise="salt_pepper", level=0.1)["value"] for t in (4, 8)}
    assert measured(result, "success_rate", noise="salt_pepper", level=0.1)["value"] == pytest.approx(
        (cell[4] + cell[8]) / 2
    )
    steps = read_csv(run_dir / "denoising_steps.csv")
    assert list(steps[0])[:9] == [
        "T",
        "noise",
        "level",
        "step",
        "hamming_mean",
        "hamming_stderr",
        "success_rate",
        "changed_mean",
        "queries",
    ]
    assert len(steps) == 2 * 5 * 3  # T values × noise settings × (steps + 1)
    salt = [r for r in steps if r["noise"] == "salt_pepper" and r["level"] == "0.1" and r["T"] == "8"]
    assert float(salt[0]["hamming_mean"]) == 78.0  # step 0 is the query: exactly 10 % of 784 flipped
    last = next(r for r in salt if r["step"] == "2")
    assert float(last["success_rate"]) == pytest.approx(cell[8])
    queries_t8 = [r for r in read_csv(run_dir / "denoising_queries.csv") if r["T"] == "8" and r["noise"] == "block"]
    wrong = torch.tensor([float(r["hamming_final"]) for r in queries_t8])
    error = measured(result, "hamming_final", T=8, noise="block", level=6)
    assert error["value"] == pytest.approx(float(wrong.mean()))
    assert error["stderr"] == pytest.approx(float(wrong.std() / len(wrong) ** 0.5))
    queries = read_csv(run_dir / "denoising_queries.csv")
    assert len(queries) == 5 * (2 * 4 + 2 * 8)
    for name in ("salt_pepper", "block", "rotation", "gaussian"):
        assert is_png(run_dir / f"denoising_{name}.png")
    assert not (run_dir / "denoising_curves.png").exists()  # line charts are declared, reports draw them
    figures = declared(result)
    assert figures["hamming_per_step_T8"]["kind"] == "line" and figures["hamming_per_step_T8"]["where"] == {"T": 8}
    assert (figures["hamming_per_step_T8"]["x"], figures["hamming_per_step_T8"]["y"]) == ("step", "hamming_mean")
    assert {"success_per_step_T4", "strip_block"} <= set(figures)
    for figure in figures.values():
        assert (run_dir / figure["file"]).is_file()


def test_denoising_queries_are_identical_for_every_model(grid):
    columns = {}
    for name in FIVE_MODELS:
        rows = read_csv(grid["denoising", name][1] / "denoising_queries.csv")
        columns[name] = [(r["T"], r["noise"], r["level"], r["episode"], r["item"], r["hamming_query"]) for r in rows]
    first = next(iter(columns.values()))
    assert all(column == first for column in columns.values())


def test_denoising_is_deterministic_under_its_seed(tmp_path, grid):
    again, _ = run_suite(tmp_path, "denoising", ["gpm"])["gpm"]
    assert again["measurements"] == grid["denoising", "gpm"][0]["measurements"]


# ----------------------------------------------------------------------------- other benchmarks
def test_generation_reports_nearest_neighbour_distances(grid):
    result, run_dir = grid["generation", "gpm"]
    metrics = result["metrics"]
    for name in (
        "nn_distance_mean",
        "nn_distance_unwritten_mean",
        "nn_distance_ratio",
        "copy_rate",
        "within_episode_distance_mean",
    ):
        assert name in metrics
    before = measured(result, "nn_distance_mean", refinement_steps=0)
    assert before["value"] >= 0 and measured(result, "nn_distance_mean")["stderr"] is not None
    rows = read_csv(run_dir / "generation_samples.csv")
    assert len(rows) == 2 * 3
    assert all(0 <= int(r["nn_index"]) < 4 and float(r["nn_distance"]) >= 0 for r in rows)
    assert before["value"] == pytest.approx(sum(float(r["nn_distance_step0"]) for r in rows) / len(rows))
    assert is_png(run_dir / "generation_samples.png") and is_png(run_dir / "generation_distances.png")
    assert {f["kind"] for f in declared(result).values()} == {"image"}


def test_elbo_reports_terms_as_tags_and_draws_reconstructions(grid):
    result, run_dir = grid["elbo", "gpm"]
    cond = measured(result, "nelbo_cond")
    episodes = read_csv(run_dir / "elbo_episodes.csv")
    values = torch.tensor([float(r["nelbo_cond"]) for r in episodes], dtype=torch.float64)
    assert cond["value"] == pytest.approx(float(values.mean())) and cond["unit"] == "nats/image"
    assert cond["stderr"] == pytest.approx(float(values.std() / len(values) ** 0.5))
    terms = [c.removeprefix("term/") for c in episodes[0] if c.startswith("term/")]
    assert terms and {m["tags"]["term"] for m in result["measurements"] if m["name"] == "nelbo_term"} == set(terms)
    assert declared(result)["reconstructions"] == {**declared(result)["reconstructions"], "kind": "image"}
    assert is_png(run_dir / "reconstructions.png")


def test_capacity_reports_every_length_and_the_huge_episode(grid):
    result, run_dir = grid["capacity", "dkm"]
    rows = read_csv(run_dir / "capacity.csv")
    assert [r["T"] for r in rows] == ["4", "8"] and {r["status"] for r in rows} == {"done"}
    for name in ("huge_hamming_final", "huge_success_rate", "longest_length"):
        assert name in result["metrics"]
    recon = measured(result, "reconstruction", T=4)
    assert recon["unit"] == "nats/image" and recon["value"] == pytest.approx(float(rows[0]["reconstruction_mean"]))
    assert measured(result, "nelbo_cond", T=8)["stderr"] == pytest.approx(float(rows[1]["nelbo_cond_stderr"]))
    assert len(read_csv(run_dir / "capacity_huge_denoising.csv")) == 3
    assert not (run_dir / "capacity.png").exists() and is_png(run_dir / "capacity_huge_denoising.png")
    figures = declared(result)
    assert figures["reconstruction_by_length"]["file"] == "capacity.csv" and figures["reconstruction_by_length"]["logx"]
    assert figures["huge_denoising_strip"]["kind"] == "image"


def test_retrieval_cosine_is_a_similarity(grid):
    result, run_dir = grid["retrieval", "gpm"]
    assert -1.0 <= result["metrics"]["cosine_mean"] <= 1.0
    for length in (4, 8):
        assert -1.0 <= measured(result, "cosine_mean", T=length)["value"] <= 1.0
    assert len(read_csv(run_dir / "retrieval_items.csv")) == 2 * 4 + 2 * 8
    assert is_png(run_dir / "retrieval_cosine.png")


def test_energy_records_each_models_definition_and_every_step(grid):
    for name in FIVE_MODELS:
        result, run_dir = grid["energy", name]
        assert result["protocol"]["energy_definition"] == memories.MEMORIES.get(name).energy_definition
        assert 0.0 <= result["metrics"]["descent_fraction"] <= 1.0
        assert [r["step"] for r in read_csv(run_dir / "energy_steps.csv")] == ["0", "1", "2"]
        assert not (run_dir / "energy.png").exists() and declared(result)["energy_per_step"]["y"] == "energy_mean"


def test_runtime_csv_has_the_interface_columns_and_no_training(grid):
    result, run_dir = grid["runtime", "gpm"]
    assert "train_steps" not in result  # needs_training = False
    rows = read_csv(run_dir / "runtime.csv")
    assert list(rows[0])[:6] == ["op", "T", "K", "steps", "device", "median_ms"]
    ops = {(r["op"], r["series"]) for r in rows}
    assert {("train_step", "grid"), ("write_read", "grid"), ("write_read", "steps")} <= ops
    assert all(float(r["median_ms"]) > 0 for r in rows)
    assert measured(result, "write_read_ms", T=4, K=4)["unit"] == "ms"
    assert measured(result, "write_read_ms", T=4, K=4, steps=1)["value"] > 0
    assert {"time_by_size", "time_by_steps"} == set(declared(result))
    vae_rows = read_csv(grid["runtime", "vae"][1] / "runtime.csv")
    assert {r["status"].split(":")[0] for r in vae_rows if r["op"] == "write_read"} == {"not applicable"}
    assert all(r["K"] == "" and r["steps"] == "" for r in vae_rows)
    assert set(declared(grid["runtime", "vae"][0])) == {"time_by_length"}


# ----------------------------------------------------------------------------- capacity internals
def test_capacity_lengths_double_from_the_memory_size_to_the_split():
    model = memories.create("gpm", **tiny_settings("gpm"))
    assert resolve_lengths(CapacityConfig(), model, 37) == [4, 8, 16, 32, 37]
    assert resolve_lengths(CapacityConfig(min_length=5, max_length=30), model, 100) == [5, 10, 20, 30]
    assert resolve_lengths(CapacityConfig(lengths=(3, 9)), model, 100) == [3, 9]


def test_extrapolation_uses_the_measured_growth():
    assert extrapolate([], 8, 3.0) is None
    assert extrapolate([(4, 1.0)], 8, 3.0) == pytest.approx(2.0)
    assert extrapolate([(4, 1.0), (8, 8.0)], 16, 3.0) == pytest.approx(64.0)
    assert extrapolate([(4, 1.0), (8, 8.0)], 16, 2.0) == pytest.approx(32.0)
    assert extrapolate([(4, 1.0), (8, 1.0)], 16, 3.0) == pytest.approx(2.0)  # never below linear


def test_items_in_chunks_changes_memory_not_results_nor_the_model():
    model = memories.create("dkm", **tiny_settings("dkm")).eval()
    methods = {name: getattr(type(model), name) for name in ("encode_items", "decode_items", "read", "write")}
    episode = (torch.rand(2, 8, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with torch.no_grad():
        state = model.write(episode)
        plain = model.read(episode, state).log_prob(episode)
        with model.items_in_chunks(3):
            assert model.item_chunk == 3
            chunked = model.read(episode, model.write(episode)).log_prob(episode)
            assert {name: getattr(model, name).__func__ for name in methods} == methods  # never monkeypatched
    assert torch.allclose(plain, chunked, atol=1e-5)
    assert model.item_chunk == 0 and not {"encode_items", "decode_items"} & set(vars(model))


def test_capacity_leaves_the_models_methods_untouched(tmp_path):
    model = memories.create("gpm", **tiny_settings("gpm")).eval()
    before = dict(vars(model))
    config = from_mapping(CapacityConfig, {"lengths": [4], "max_episodes": 1, "huge_items": 8, "huge_steps": 1}, "c")
    context = BenchmarkContext(model, create_dataset("digits"), tmp_path, 0, torch.device("cpu"))
    CapacityBenchmark(config).run(context)
    assert set(vars(model)) == set(before) and model.item_chunk == 0


def test_capacity_records_lengths_over_budget_as_skipped(tmp_path):
    model = memories.create("gpm", **tiny_settings("gpm")).eval()
    dataset = create_dataset("digits")
    config = from_mapping(
        CapacityConfig,
        {"lengths": [4, 64, 128], "max_episodes": 1, "time_budget_s": 1e-9, "huge_denoising": False},
        "capacity",
    )
    context = BenchmarkContext(model=model, dataset=dataset, run_dir=tmp_path, seed=0, device=torch.device("cpu"))
    outcome = CapacityBenchmark(config).run(context)
    rows = read_csv(tmp_path / "capacity.csv")
    assert [r["status"] for r in rows] == ["done", "skipped", "skipped"]
    assert rows[1]["reason"].startswith("skipped: predicted") and "shorter length" in rows[2]["reason"]
    assert {m.name: m.value for m in outcome.metrics}["lengths_skipped"] == 2


def test_peak_memory_counts_torch_allocations_on_cpu():
    def call() -> None:
        first = torch.ones(2**20)  # 4 MiB
        second = torch.ones(2**20)  # 4 MiB more while the first is alive
        del first, second

    peak = peak_memory_mb(call, torch.device("cpu"))
    assert peak is not None and 7.9 <= peak <= 8.5
    with PeakMemory(torch.device("cpu")) as block:  # the same meter around a block (capacity's use)
        call()
    assert block.mb == pytest.approx(peak)


# ----------------------------------------------------------------------------- configs and CLI
BAD_VALUES = [
    ("denoising", {"steps": 0}, "steps"),
    ("denoising", {"salt_pepper": [1.5]}, "salt_pepper"),
    ("denoising", {"threshold": 1.0}, "threshold"),
    ("denoising", {"salt_pepper": [], "block": [], "rotation": [], "gaussian": []}, "no corruption"),
    ("generation", {"max_episodes": 1}, "max_episodes"),
    ("capacity", {"chunk_size": 0}, "chunk_size"),
    ("capacity", {"huge_noise_level": 2}, "huge_noise_level"),
    ("retrieval", {"episode_lengths": [0]}, "episode_lengths"),
    ("energy", {"noise": "blur"}, "noise"),
    ("runtime", {"ops": ["train_step", "sleep"]}, "ops"),
    ("runtime", {"steps_at": [[64]]}, "steps_at"),
    ("denoising", {"stepz": 3}, "did you mean 'steps'"),
]


@pytest.mark.parametrize(("benchmark", "settings", "message"), BAD_VALUES)
def test_bad_benchmark_settings_are_one_line_config_errors(benchmark, settings, message):
    with pytest.raises(ConfigError) as error:
        from_mapping(BENCHMARKS.get(benchmark).config_class, settings, f"benchmarks.{benchmark}")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_bad_value_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    from memorybench.runners.cli import main

    out = tmp_path / "results"
    code = main(
        ["run", str(CONFIGS / "denoising_quick.yaml"), "--out", str(out), "--set", "benchmarks.denoising.steps=0"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert err.startswith("memorybench: error:") and "steps" in err and len(err.splitlines()) == 1


def test_list_shows_every_benchmark(capsys):
    from memorybench.runners.cli import main

    assert main(["list", "benchmarks"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:] if line.strip()}
    assert set(PAPER_BENCHMARKS) <= listed


@pytest.mark.parametrize("benchmark", PAPER_BENCHMARKS)
def test_quick_and_paper_configs_exist_and_validate(benchmark):
    from memorybench.runners.backends.slurm import slurm_resources

    quick = build_suite(load_yaml(CONFIGS / f"{benchmark}_quick.yaml"))
    assert {run.memory_class for run in quick.runs} == FIVE_MODELS
    assert {run.benchmark for run in quick.runs} == {benchmark}
    assert {run.dataset for run in quick.runs} == {"digits"}
    paper = build_suite(load_yaml(CONFIGS / f"{benchmark}_paper.yaml"), check_data=False)
    assert {run.memory_class for run in paper.runs} >= FIVE_MODELS
    assert {run.benchmark for run in paper.runs} == {benchmark}
    if "slurm" in paper.resources:
        slurm_resources(paper.resources["slurm"], {})


# ----------------------------------------------------------------------------- memory_ops
def test_memory_ops_ends_with_one_json_line(capsys):
    from memorybench.benchmarks.speed.memory_ops import main

    for name in ("gpm", "dkm", "km"):
        args = ["--memory", name, "--episode-length", "8", "--memory-size", "4", "--code-size", "8", "--batch", "2"]
        main([*args, "--repeats", "2", "--warmup", "0"])
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert result["status"] == "done" and result["write_read_ms"] > 0 and result["peak_mb"] >= 0
        assert (result["memory"], result["T"], result["K"], result["C"], result["B"]) == (name, 8, 4, 8, 2)
    main(["--memory", "vae", "--episode-length", "8", "--code-size", "8", "--batch", "2", "--repeats", "1"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "not_applicable" and result["write_read_ms"] is None


def test_memory_ops_rejects_bad_values(capsys):
    from memorybench.benchmarks.speed.memory_ops import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--memory", "gpm", "--episode-length", "0"])
    assert exit_info.value.code == 2 and "--episode-length" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--memory", "gpn"])
    assert exit_info.value.code == 2 and "did you mean 'gpm'" in capsys.readouterr().err


@pytest.mark.slow
def test_memory_ops_module_entry_point_runs_as_a_script():
    import subprocess
    import sys

    args = ["--memory", "gpm", "--episode-length", "16", "--memory-size", "8", "--code-size", "16", "--batch", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "memorybench.benchmarks.speed.memory_ops", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["write_read_ms"] > 0 and result["peak_mb"] is not None


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", PAPER_BENCHMARKS)
def test_quick_config_runs_through_the_cli(benchmark, tmp_path, capsys):
    from memorybench.runners.cli import main

    shorter = ["--set", "train.steps=3"]
    if benchmark == "runtime":
        shorter = ["--set", "benchmarks.runtime.repeats=1", "--set", "benchmarks.runtime.warmup=0"]
    code = main(["run", str(CONFIGS / f"{benchmark}_quick.yaml"), "--out", str(tmp_path), "--no-progress", *shorter])
    assert code == 0, capsys.readouterr().err
    results = [json.loads(path.read_text()) for path in tmp_path.glob("*/*/result.json")]
    assert {r["memory"] for r in results} == FIVE_MODELS
    assert {r["status"] for r in results} <= {"done", "not_applicable"}
