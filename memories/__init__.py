"""The memory-model zoo: registry, protocol, shared networks and math, one file per model.

>>> import memories
>>> memories.available()                       # doctest: +SKIP
['dkm', 'gpm', 'kanerva_pp', 'km', 'vae']
>>> model = memories.create("gpm", memory_size=32, code_size=100)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from memorybench.memories.configuration import ConfigError, from_mapping
from memorybench.memories.protocol import LatentMemory, LossTerms, MemoryModel, ModelConfig, NegELBO
from memorybench.memories.registry import Registry, RegistryError

BUILTIN_MODELS = (
    "memorybench.memories.vae",
    "memorybench.memories.gpm",
    "memorybench.memories.km",
    "memorybench.memories.dkm",
    "memorybench.memories.kanerva_pp",
)

MEMORIES: Registry[type[MemoryModel]] = Registry("memory", "memorybench.memories", builtin_modules=BUILTIN_MODELS)
register_memory = MEMORIES.register


def available() -> list[str]:
    """Names of every registered memory model (built-ins and entry-point plugins)."""
    return MEMORIES.available()


def config_for(name: str, settings: dict[str, Any] | None = None, where: str | None = None) -> ModelConfig:
    """Validate ``settings`` against model ``name``'s config dataclass (one-line errors)."""
    cls = MEMORIES.get(name)
    return from_mapping(cls.config_class, settings, where or f"memories.{name}")


def create(
    name: str,
    *,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    likelihood: str = "bernoulli",
    **settings: Any,
) -> MemoryModel:
    """Instantiate registered model ``name`` with config keys ``settings`` for images of
    ``image_shape`` under ``likelihood`` ("bernoulli" or "dmol")."""
    config = config_for(name, settings)
    return MEMORIES.get(name)(config, image_shape=image_shape, likelihood=likelihood)


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
