"""Test-only models for the runner tests, loaded with ``--include tests/plugins/runner_models.py``.

- ``diverging_vae``: a VAE whose loss is NaN from the first step, so its run fails
  deterministically (DivergenceError) while the rest of the suite completes.
- ``slow_vae``: a VAE that sleeps ``step_sleep_s`` per training step, so a run lasts long enough to
  be requeued mid-training on any machine.
Both travel to worker processes and SLURM jobs through ``--include``, like any unpublished plugin.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from torch import Tensor

from memorybench.memories import MEMORIES, register_memory
from memorybench.memories.configuration import require
from memorybench.memories.protocol import LossTerms
from memorybench.memories.vae import VAE, VAEConfig


class DivergingVAE(VAE):
    """VAE whose training loss is NaN (exercises the failure path of every runner)."""

    def loss(self, episode: Tensor) -> LossTerms:
        terms = super().loss(episode)
        return LossTerms(total=terms.total * float("nan"), terms=terms.terms)


@dataclass(frozen=True, kw_only=True)
class SlowVAEConfig(VAEConfig):
    step_sleep_s: float = 0.02  # seconds slept per training step

    def validate(self) -> None:
        super().validate()
        require(self.step_sleep_s >= 0, "step_sleep_s", f"must be >= 0, got {self.step_sleep_s}")


class SlowVAE(VAE):
    """VAE that sleeps in every training step (a long run for the preemption tests)."""

    config_class = SlowVAEConfig

    def loss(self, episode: Tensor) -> LossTerms:
        time.sleep(self.config.step_sleep_s)  # type: ignore[attr-defined]
        return super().loss(episode)


# A test process may include this file more than once (each include re-executes it).
for _name, _model in (("diverging_vae", DivergingVAE), ("slow_vae", SlowVAE)):
    if _name not in MEMORIES:
        register_memory(_name)(_model)
