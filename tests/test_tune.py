"""``memorybench tune``: an equal, seeded random search per memory, then the suite at the best settings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from memorybench import memories
from memorybench.memories.configuration import ConfigError
from memorybench.runners import tuning
from memorybench.runners.cli import main

SUITE = {
    "name": "tt",
    "seeds": [0, 1],
    "defaults": {"code_size": 8, "episode_length": 6, "channels": 4},
    "memories": {"vae": {}, "gpm": {"memory_size": 4}},
    "datasets": {"digits": {}},
    "benchmarks": {"elbo": {"max_episodes": 4, "reconstruction_episodes": 0}},
    "train": {"steps": 3, "batch_episodes": 2, "learning_rate": 1.0e-3},
    "tune": {"trials": 3, "episodes": 4},
}


def write_suite(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({**SUITE, **changes}))
    return path


def test_trials_are_seeded_per_memory_start_from_the_suite_settings_and_stay_in_bounds():
    tune = tuning.parse_tune({"trials": 6, "seed": 3})
    space = tuning.search_space("gpm", memories.MEMORIES.get("gpm").search_space, tune)
    trials = tuning.trials_for("gpm", space, tune)
    assert [t.index for t in trials] == list(range(6)) and trials[0].values == {}
    assert trials == tuning.trials_for("gpm", space, tune)  # reproducible
    assert trials != tuning.trials_for("gpm", space, tuning.parse_tune({"trials": 6, "seed": 4}))
    for trial in trials[1:]:
        assert set(trial.values) == {"train.learning_rate", "read_weight_std", "write_noise_std"}
        for key, value in trial.values.items():
            low, high = space[key]["log_uniform"]
            assert low <= value <= high
    spread = [math.log(t.values["train.learning_rate"]) for t in trials[1:]]
    assert max(spread) - min(spread) > 0.3  # actually random, not one point


def test_the_best_trial_is_the_lowest_score_and_unscored_trials_never_win():
    trials = [tuning.Trial("m", i, {"x": i}) for i in range(3)]
    assert tuning.best(trials, {"m-t00": 5.0, "m-t01": None, "m-t02": 4.0}).index == 2
    assert tuning.best(trials, {"m-t00": 4.0, "m-t01": float("nan"), "m-t02": 4.0}).index == 0
    with pytest.raises(ConfigError, match="no trial of 'm'"):
        tuning.best(trials, {})


@pytest.mark.parametrize(
    ("tune", "message"),
    [
        ({"trails": 3}, "tune: unknown key 'trails'; valid keys: trials, seed, metric, episodes, space"),
        ({"trials": 0}, "tune.trials: expected an integer >= 1, got 0"),
        ({"metric": "loss"}, "tune.metric: 'loss' is not one of nelbo_cond, nelbo_full, nelbo_heldout"),
        (
            {"space": {"gpm": {"write_noise_std": {"normal": [0, 1]}}}},
            "tune.space.gpm.write_noise_std: expected one of",
        ),
        ({"space": {"gpm": {"write_noise_std": {"log_uniform": [0, 1]}}}}, "low > 0"),
    ],
)
def test_a_bad_tune_section_is_one_line_and_exit_2(tmp_path, capsys, tune, message):
    suite = write_suite(tmp_path, tune=tune)
    for command in ("tune", "run"):  # `run` checks the section too
        assert main([command, str(suite), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_tune_accepts_a_list_of_memories_and_only_searches_what_only_selects(tmp_path, capsys):
    suite, out = write_suite(tmp_path, memories=["vae", "gpm"], tune={"trials": 2, "episodes": 2}), tmp_path / "out"
    assert main(["tune", str(suite), "--out", str(out), "--no-progress", "--only", "memory=vae", "--search-only"]) == 0
    record = json.loads((out / "tt" / "tune.json").read_text())
    assert {t["memory"] for t in record["trials"]} == {"vae"} and len(record["trials"]) == 2
    assert not (out / "tt").joinpath("summary.csv").exists()  # --search-only: no final runs


def test_tune_space_names_settings_and_memories_of_the_suite(tmp_path, capsys):
    bad_key = write_suite(tmp_path, tune={"space": {"gpm": {"write_noise": {"uniform": [0.1, 0.5]}}}})
    assert main(["tune", str(bad_key), "--out", str(tmp_path / "out")]) == 2
    assert "write_noise" in capsys.readouterr().err
    bad_label = write_suite(tmp_path, tune={"space": {"km": {"write_noise_std": {"uniform": [0.1, 0.5]}}}})
    assert main(["tune", str(bad_label), "--out", str(tmp_path / "out")]) == 2
    assert "tune.space.km: not a memory of the suite; memories: gpm, vae" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_tune_searches_records_and_runs_the_suite_at_the_chosen_settings(tmp_path, capsys):
    suite, out = write_suite(tmp_path), tmp_path / "out"
    assert main(["tune", str(suite), "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "tt" / "tune.json").read_text())
    assert len(record["trials"]) == 2 * 3 and record["config"]["trials"] == 3 and record["split"] == "valid"
    search_dirs = [p for p in (out / "tt-tune").iterdir() if p.is_dir() and not p.name.startswith("_")]
    assert len(search_dirs) == 2 * 3  # one seed per trial
    for choice in record["chosen"]:
        mine = [t for t in record["trials"] if t["memory"] == choice["memory"]]
        assert choice["nelbo_cond"] == min(t["nelbo_cond"] for t in mine)
        final = [
            json.loads((p / "spec.json").read_text())
            for p in (out / "tt").iterdir()
            if p.name.startswith(f"{choice['memory']}-digits-elbo")
        ]
        assert sorted(spec["seed"] for spec in final) == [0, 1]  # the suite's seeds, under the memory's own label
        for spec in final:
            for key, value in choice["values"].items():
                section, name = (
                    ("train_config", key.removeprefix("train.")) if key.startswith("train.") else ("memory_config", key)
                )
                assert spec[section][name] == pytest.approx(value)
    first = capsys.readouterr().out
    assert "search recorded in" in first and "on digits: trial" in first
    assert main(["tune", str(suite), "--out", str(out), "--no-progress"]) == 0  # resumes: nothing to do
    again = capsys.readouterr().out
    assert "start 0, resume 0, retry 0, skip 6 done" in again and "start 0, resume 0, retry 0, skip 4 done" in again
    assert main(["report", str(out / "tt"), "--out", str(tmp_path / "report"), "--format", "csv,md"]) == 0
    tuning = (tmp_path / "report" / "tables" / "tuning.csv").read_text()
    assert all(f"tt,digits,{choice['memory']}" in tuning for choice in record["chosen"])
