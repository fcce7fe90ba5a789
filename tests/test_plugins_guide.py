"""docs/plugins.md cannot rot: its code is what ``memorybench new`` writes, its minimal model passes
the conformance kit, and every method and capability it documents exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memorybench.memories.protocol import MemoryModel
from memorybench.runners.cli import main
from memorybench.runners.commands.new import render

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "plugins.md"


def code_blocks(language: str) -> list[str]:
    """The fenced ``language`` blocks of the guide, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", GUIDE.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_the_guides_model_benchmark_and_pyproject_are_what_new_writes() -> None:
    memory, benchmark = render("memory", "my_memory"), render("benchmark", "readback")
    python = code_blocks("python")
    assert memory["src/memorybench_my_memory/my_memory.py"] in python
    assert benchmark["src/memorybench_readback/readback.py"] in python
    assert code_blocks("toml") == [memory["pyproject.toml"]]
    assert '"memorybench>=' in memory["pyproject.toml"]  # the dependency a plugin declares
    assert '[project.entry-points."memorybench.memories"]' in memory["pyproject.toml"]


def test_the_guides_minimal_model_passes_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = next(block for block in code_blocks("python") if '@register_memory("my_memory")' in block)
    path = tmp_path / "my_memory.py"
    path.write_text(model, encoding="utf-8")
    assert main(["--include", str(path), "validate", "my_memory"]) == 0
    assert "all conformance checks passed" in capsys.readouterr().out


def test_every_documented_method_and_capability_exists() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    methods = re.findall(r"^\| `(\w+)` \| `\w+\(", text, flags=re.M)
    assert set(methods) == {"loss", "write", "read", "neg_elbo", "sample", "energy", "iterative_read"}
    capabilities = re.findall(r"^\| `(\w+)` \| `?(?:False|True|None|decoder NLL)", text, flags=re.M)
    assert len(capabilities) == 6
    for name in [*methods, *capabilities]:
        assert hasattr(MemoryModel, name), name


def test_the_readme_and_the_docs_index_link_the_guide() -> None:
    assert "(docs/plugins.md)" in (REPO / "README.md").read_text(encoding="utf-8")
    assert "(plugins.md)" in (REPO / "docs" / "README.md").read_text(encoding="utf-8")
