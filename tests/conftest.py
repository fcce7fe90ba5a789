"""Shared fixtures: the real data beside the repository, and a float64 default for math tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    """Tests use tiny tensors: one thread avoids oversubscribing small CI machines."""
    import torch

    torch.set_num_threads(1)
