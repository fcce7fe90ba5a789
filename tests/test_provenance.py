"""Code provenance: results record the package, version and code hash of their model and
benchmark; reports flag runs made by older code; ``run --rerun-stale`` re-runs them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from memorybench import memories
from memorybench.memories.registry import code_hash, code_modules, code_provenance, import_user_module
from memorybench.reports.load import load_results, stale_code
from memorybench.runners import dispatch
from memorybench.runners.cli import main

SUITE = {
    "name": "provenance",
    "defaults": {"code_size": 4, "episode_length": 4, "network": "mlp", "hidden_size": 16},
    "memories": {"vae": {}},
    "datasets": {"digits": {}},
    "benchmarks": {"elbo": {"max_episodes": 2}, "retrieval": {"max_episodes": 2}},
    "train": {"steps": 2, "batch_episodes": 2},
}


def test_a_builtin_comes_from_memorybench_with_its_modules_hashed() -> None:
    found = memories.MEMORIES.provenance("gpm")
    assert found["package"] == "memorybench" and found["version"] and found["file"] is None
    assert found["code_modules"] == ["memorybench.memories.gpm", "memorybench.memories.protocol"]
    assert len(found["code_hash"]) == 16


def test_an_included_file_has_no_package_and_its_hash_follows_its_source(tmp_path: Path) -> None:
    path = tmp_path / "provenance_model.py"
    source = textwrap.dedent(
        '''
        from memorybench.memories.vae import VAE

        class ProvenanceVAE(VAE):
            """A subclass of a built-in: its hash covers vae.py too."""
        '''
    )
    path.write_text(source)
    import_user_module(str(path))
    import sys

    target = sys.modules["memorybench_user_provenance_model"].ProvenanceVAE
    found = code_provenance(target)
    assert found["package"] is None and found["version"] is None and found["file"] == str(path.resolve())
    assert code_modules(target) == [
        "memorybench_user_provenance_model",
        "memorybench.memories.vae",
        "memorybench.memories.protocol",
    ]
    before = code_hash(target)
    path.write_text(source + "# a changed comment is changed code\n")
    assert code_hash(target) != before


def run_suite(tmp_path: Path, *extra: str) -> int:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    return main(["run", str(path), "--out", str(tmp_path / "results"), "--no-progress", *extra])


def results(tmp_path: Path) -> dict[str, dict]:
    paths = (tmp_path / "results" / "provenance").glob("*/result.json")
    return {json.loads(p.read_text())["benchmark"]: json.loads(p.read_text()) for p in paths}


def test_results_record_provenance_and_rerun_stale_reruns_what_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_suite(tmp_path) == 0
    first = results(tmp_path)
    for result in first.values():
        assert result["provenance"]["memory"] == memories.MEMORIES.provenance("vae")
        assert result["provenance"]["benchmark"]["package"] == "memorybench"
    assert run_suite(tmp_path, "--rerun-stale") == 0  # nothing changed: nothing re-runs
    assert "rerun 0 stale, skip 2 done" in capsys.readouterr().out

    # the elbo benchmark's code "changes": only its run re-runs, on the same trained model
    installed = dispatch.current_code
    monkeypatch.setattr(
        dispatch,
        "current_code",
        lambda spec: {**installed(spec), **({"benchmark": "changed"} if spec.benchmark == "elbo" else {})},
    )
    assert run_suite(tmp_path, "--rerun-stale", "--dry-run") == 0
    assert "rerun 1 stale" in capsys.readouterr().out
    assert run_suite(tmp_path, "--rerun-stale") == 0
    elbo_dir = Path(next((tmp_path / "results" / "provenance").glob("vae-digits-elbo-*")))
    assert (elbo_dir / "result.stale-0.json").is_file()
    assert not list((tmp_path / "results" / "provenance" / "_training").glob("*.stale-*"))

    # the model's code "changes": both runs re-run and the model is trained again, once
    monkeypatch.setattr(dispatch, "current_code", lambda spec: {**installed(spec), "memory": "changed"})
    assert run_suite(tmp_path, "--rerun-stale") == 0
    assert len(list((tmp_path / "results" / "provenance" / "_training").glob("*.stale-*"))) == 1
    assert (elbo_dir / "result.stale-1.json").is_file() and results(tmp_path)["elbo"]["status"] == "done"


def test_reports_flag_runs_made_by_older_code(tmp_path: Path) -> None:
    assert run_suite(tmp_path) == 0
    elbo_result = next((tmp_path / "results" / "provenance").glob("vae-digits-elbo-*/result.json"))
    record = json.loads(elbo_result.read_text())
    record["provenance"]["memory"]["code_hash"] = "0ld0ld0ld0ld0ld0"
    record["finished"] = "2000-01-01T00:00:00+00:00"  # older than the retrieval run
    elbo_result.write_text(json.dumps(record))
    loaded = load_results(tmp_path / "results")
    runs = loaded.runs.set_index("benchmark")
    assert runs.at["elbo", "stale"] and not runs.at["retrieval", "stale"]
    assert runs.at["elbo", "code"].startswith("0ld0ld0l/")
    assert loaded.metrics.groupby("benchmark")["stale"].all().to_dict() == {"elbo": True}  # retrieval: no metrics


def test_stale_code_compares_with_the_newest_finished_run_of_the_same_model_and_benchmark() -> None:
    runs = pd.DataFrame(
        {
            "memory_class": ["gpm", "gpm", "gpm", "vae"],
            "benchmark": ["elbo", "elbo", "capacity", "elbo"],
            "status": ["done", "done", "failed", "done"],
            "finished": ["2026-01-01", "2026-02-01", "2026-03-01", "2026-01-15"],
            "code": ["aaaa/bbbb", "cccc/bbbb", "dddd/eeee", "ffff/?"],
        }
    )
    # run 0: gpm code aaaa is older than cccc; the failed run is not compared; vae's elbo code is unknown
    assert stale_code(runs).tolist() == [True, False, False, True]
