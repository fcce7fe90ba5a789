"""Backends: the ways planned runs are executed (inline, a local worker pool, SLURM), one module each.

Every backend subclasses :class:`memorybench.runners.backends.base.Backend` and registers itself
with ``@register_backend("name")``; ``memorybench run --runner NAME`` looks it up here, so the CLI
never dispatches on backend names. Other packages add backends through the entry-point group
``memorybench.backends``. Importing this package imports no backend (and no torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memorybench.memories.registry import Registry

if TYPE_CHECKING:
    from memorybench.runners.backends.base import Backend

BACKENDS: Registry[type[Backend]] = Registry(
    "backend",
    "memorybench.backends",
    builtin_package="memorybench.runners.backends",
    base="memorybench.runners.backends.base:Backend",
    section="resources",
)
register_backend = BACKENDS.register

__all__ = ["BACKENDS", "register_backend"]
