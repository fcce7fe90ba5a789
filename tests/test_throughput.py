"""The throughput script runs end to end and ends with one JSON line (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from memorybench.benchmarks.speed import throughput

TINY = [
    "--set",
    "code_size=8",
    "--set",
    "channels=4",
    "--episodes",
    "2",
    "--episode-length",
    "3",
    "--steps",
    "2",
    "--warmup",
    "1",
    "--threads",
    "1",
]


def last_json_line(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_gpm_against_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    returned = throughput.main(["--memory", "gpm", "--set", "memory_size=4", *TINY, "--compare-reference"])
    result = last_json_line(capsys.readouterr().out)
    assert result == json.loads(json.dumps(returned))
    assert result["images_per_s"] > 0 and result["reference_images_per_s"] > 0 and result["speedup"] > 0
    assert (result["memory"], result["episodes"], result["episode_length"], result["steps"]) == ("gpm", 2, 3, 2)


def test_any_registered_model_with_profile(capsys: pytest.CaptureFixture[str]) -> None:
    throughput.main(["--memory", "vae", *TINY, "--profile", "--profile-steps", "1", "--profile-rows", "5"])
    output = capsys.readouterr().out
    assert "profile: vae" in output
    result = last_json_line(output)
    assert result["memory"] == "vae" and result["images_per_s"] > 0 and "speedup" not in result


def test_bad_override_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="key=value"):
        throughput.main(["--memory", "gpm", "--set", "code_size"])
