"""The memory-model zoo: registry, protocol, shared networks and math, one file per model.

>>> from memorybench import memories
>>> memories.available()                       # doctest: +SKIP
['dkm', 'gpm', 'kanerva_pp', 'km', 'vae']
>>> model = memories.create("gpm", memory_size=32, code_size=100)   # doctest: +SKIP

Importing this package imports no torch: the registry and the config machinery are plain Python,
and the protocol (``MemoryModel``, ...) is imported on first use, so ``memorybench list`` and
``--help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from memorybench.memories.configuration import ConfigError
from memorybench.memories.registry import Registry, RegistryError

if TYPE_CHECKING:
    from memorybench.memories.protocol import LatentMemory, LossTerms, MemoryModel, ModelConfig, NegELBO

MEMORIES: Registry[type[MemoryModel]] = Registry(
    "memory",
    "memorybench.memories",
    builtin_package="memorybench.memories",
    base="memorybench.memories.protocol:MemoryModel",
)
register_memory = MEMORIES.register

_PROTOCOL = ("LatentMemory", "LossTerms", "MemoryModel", "ModelConfig", "NegELBO")


def __getattr__(name: str) -> Any:
    if name in _PROTOCOL:
        return getattr(importlib.import_module("memorybench.memories.protocol"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def available() -> list[str]:
    """Names of every registered memory model (built-ins and entry-point plugins)."""
    return MEMORIES.available()


def config_for(name: str, settings: dict[str, Any] | None = None, where: str | None = None) -> ModelConfig:
    """Validate ``settings`` against model ``name``'s config dataclass (one-line errors)."""
    config: ModelConfig = MEMORIES.config_for(name, settings, where)
    return config


def create(
    name: str,
    *,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    likelihood: str = "bernoulli",
    **settings: Any,
) -> MemoryModel:
    """Instantiate registered model ``name`` with config keys ``settings`` for images of
    ``image_shape`` under ``likelihood`` ("bernoulli" or "dmol")."""
    model: MemoryModel = MEMORIES.create(name, settings, image_shape=image_shape, likelihood=likelihood)
    return model


__all__ = [
    "MEMORIES",
    "ConfigError",
    "LatentMemory",
    "LossTerms",
    "MemoryModel",
    "ModelConfig",
    "NegELBO",
    "RegistryError",
    "available",
    "config_for",
    "create",
    "register_memory",
]
