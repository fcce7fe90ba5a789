"""Every registered memory passes the conformance kit (memories.conformance).

Plugin authors run the same checks with ``memorybench validate NAME``.
"""

from __future__ import annotations

import pytest

from memorybench import memories
from memorybench.memories.conformance import CHECKS


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", memories.available())
def test_conformance(name: str, check: str) -> None:
    CHECKS[check](name)
