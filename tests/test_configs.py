"""Every suite file shipped under configs/ (quick, fidelity, benchmarks, reproduce) validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from memorybench.runners.suite import build_suite, load_yaml


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_suite_validates(path):
    suite = build_suite(load_yaml(path), check_data=False)
    assert suite.runs
