"""VAE baseline: the memoryless "empty memory" ablation (Kingma & Welling, 2014).

Same shared encoder/decoder and latent size C as the memory models (docs/models/vae.md), so
differences in the comparison come from the memory, not the networks. Items are modelled
independently; episodes are accepted only so every model sees identical batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from memorybench.memories import register_memory
from memorybench.memories.kl import (
    diagonal_gaussian_head,
    diagonal_gaussian_log_prob,
    reparameterize,
    standard_normal_kl,
)
from memorybench.memories.likelihoods import Reconstruction
from memorybench.memories.protocol import LossTerms, MemoryModel, ModelConfig, NegELBO


@dataclass(frozen=True)
class NoMemory:
    """State of a memoryless model: just the number of episodes B."""

    batch_size: int


@dataclass(frozen=True, kw_only=True)
class VAEConfig(ModelConfig):
    """The VAE has only the shared knobs (code_size is the latent size)."""


@register_memory("vae")
class VAE(MemoryModel):
    """Memoryless VAE baseline with the shared encoder/decoder (the empty-memory ablation)."""

    config_class = VAEConfig
    has_likelihood_estimate = True
    energy_definition = "-ln p(x | z = mean of q(z|x)): the decoder's NLL at the posterior mean"

    def __init__(
        self, config: VAEConfig, image_shape: tuple[int, int, int] = (1, 28, 28), likelihood: str = "bernoulli"
    ):
        super().__init__(config, image_shape, likelihood)
        self.encoder = self.make_encoder(2 * config.code_size)
        self.decoder = self.make_decoder(config.code_size)

    def posterior(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """q(z|x) for images ``[B, T, C, H, W]``: mean and log-variance ``[B, T, code_size]``."""
        return diagonal_gaussian_head(images, lambda x: self.encode_items(self.encoder, x))

    def _terms(self, images: Tensor) -> dict[str, Tensor]:
        mean, log_var = self.posterior(images)
        z = reparameterize(mean, log_var)
        nll = -self.decode_items(self.decoder, z).log_prob(images)
        return {"reconstruction": nll, "kl_z": standard_normal_kl(mean, log_var)}

    def loss(self, episode: Tensor) -> LossTerms:
        terms = {name: value.mean() for name, value in self._terms(episode).items()}
        return LossTerms(total=sum(terms.values(), torch.zeros(())), terms=terms)

    def write(self, episode: Tensor) -> NoMemory:
        """No memory: the state only remembers how many episodes there were."""
        return NoMemory(batch_size=episode.shape[0])

    def read(self, queries: Tensor, state: Any) -> Reconstruction:
        """Reconstruct queries through the posterior mean code."""
        mean, _ = self.posterior(queries)
        return self.decode_items(self.decoder, mean)

    def log_importance_weights(self, episode: Tensor, samples: int) -> Tensor:
        """Per item (G = T): ln p(x|z) + ln N(z; 0, I) − ln q(z|x), z ~ q(z|x): ``[B, T, samples]``."""
        mean, log_var = self.posterior(episode)
        weights = []
        for _ in range(samples):
            z = reparameterize(mean, log_var)
            log_joint = self.decode_items(self.decoder, z).log_prob(episode) + diagonal_gaussian_log_prob(z)
            weights.append(log_joint - diagonal_gaussian_log_prob(z, mean, log_var))
        return torch.stack(weights, -1)

    def neg_elbo(self, episode: Tensor, queries: Tensor | None = None) -> NegELBO:
        terms = self._terms(episode if queries is None else queries)
        return NegELBO(cond=terms["reconstruction"] + terms["kl_z"], full=None, terms=terms)

    def sample(self, state: NoMemory, n: int, steps: int = 0) -> Tensor:
        """``[B, n, C, H, W]`` samples from the prior N(0, I) (no memory to condition on)."""
        like = next(self.parameters())
        z = torch.randn(state.batch_size, n, self.config.code_size, device=like.device, dtype=like.dtype)
        return self.refine_samples(self.decode_items(self.decoder, z).mean, state, steps)
