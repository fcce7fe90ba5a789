"""The memory-model protocol every registered model implements.

Episodes are batch-first ``[B, T, C, H, W]`` (B episodes of T images); codes ``[B, T, C]``;
memories ``[B, K, C]``; addressing weights ``[B, T, K]``. All losses are per image, in nats.

A benchmark or runner only ever talks to a model through this class and its declared
capabilities (``has_memory_prior``, ``has_latent_memory``, ``supports_generation``), never by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from memorybench.memories.configuration import require
from memorybench.memories.likelihoods import LIKELIHOODS, Bernoulli, PointMass, Reconstruction
from memorybench.memories.networks import NETWORKS, NetworkConfig, apply_to_items, build_decoder, build_encoder


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Settings every model shares; model configs subclass this and add their own knobs."""

    code_size: int = 100  # C: size of an item code (a row of the memory)
    episode_length: int = 32  # T: items written into one memory
    network: str = "conv"  # shared encoder/decoder, one of NETWORKS: "conv" (Appendix C), "mlp", "reference"
    # (the public GPM code's layout) or "reference_groupnorm" (that layout with GroupNorm)
    channels: int = 16  # conv filters per stage (16 binarized, e.g. 256 RGB)
    hidden_size: int = 400  # MLP hidden width

    def validate(self) -> None:
        require(self.code_size > 0, "code_size", f"must be positive, got {self.code_size}")
        require(self.episode_length > 0, "episode_length", f"must be positive, got {self.episode_length}")
        require(self.network in NETWORKS, "network", f"{self.network!r} is not one of {', '.join(map(repr, NETWORKS))}")
        require(self.channels > 0, "channels", f"must be positive, got {self.channels}")
        require(self.hidden_size > 0, "hidden_size", f"must be positive, got {self.hidden_size}")

    @property
    def network_config(self) -> NetworkConfig:
        return NetworkConfig(kind=self.network, channels=self.channels, hidden_size=self.hidden_size)


@dataclass
class LossTerms:
    """The training objective: named scalar terms (per image, nats) and their ``total``."""

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class NegELBO:
    """Per-image negative ELBO ``[B, Tq]`` in nats.

    ``cond``: reconstruction + per-item KLs, memory written from the episode (comparable across
    memory models). ``full``: ``cond`` + KL(q(M)‖p(M))/T for models with a memory prior, else None.
    ``terms``: the named pieces ``[B, Tq]`` that add up to ``cond`` (and ``full``).
    """

    cond: Tensor
    full: Tensor | None = None
    terms: dict[str, Tensor] = field(default_factory=dict)


class LatentMemory(Protocol):
    """The memory alone, without encoders (runtime and retrieval benchmarks)."""

    def write(self, codes: Tensor) -> Any:
        """Codes ``[B, T, C]`` -> a memory state (e.g. a ``[B, K, C]`` matrix)."""

    def read(self, codes: Tensor, state: Any, sample: bool = True) -> Tensor:
        """Query codes ``[B, Tq, C]`` -> read-out codes ``[B, Tq, C]``; ``sample=False`` reads the mean."""


ACCEPT_RULES = ("always", "energy")  # iterative_read: feed every output back, or only energy-lowering ones


class MemoryModel(nn.Module):
    """Base class: shared encoder/decoder plumbing and the generic iterative read.

    Subclasses set ``config_class`` and implement ``loss``, ``write``, ``read``, ``neg_elbo`` and
    ``sample``; ``iterative_read`` and ``energy`` have generic versions here.
    """

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    registry_name: ClassVar[str] = ""
    has_memory_prior: ClassVar[bool] = False  # defines p(M), so NELBO-full exists
    has_likelihood_estimate: ClassVar[bool] = False  # implements log_importance_weights (a model of p(X))
    # What `memorybench tune` searches besides train.learning_rate: setting -> one dimension,
    # {"log_uniform": [low, high]}, {"uniform": [low, high]} or {"choice": [...]}.
    search_space: ClassVar[dict[str, dict[str, list[Any]]]] = {}
    has_latent_memory: ClassVar[bool] = False  # self.memory writes/reads codes without the encoders
    supports_generation: ClassVar[bool] = True
    energy_definition: ClassVar[str] = "-ln p(x | read-out) of the decoder at the current query"
    item_chunk: int = 0  # most items per encoder/decoder call (0: all at once); see items_in_chunks

    def __init__(
        self, config: ModelConfig, image_shape: tuple[int, int, int] = (1, 28, 28), likelihood: str = "bernoulli"
    ):
        super().__init__()
        self.config = config
        self.image_shape = tuple(image_shape)
        self.likelihood = LIKELIHOODS[likelihood](image_shape[0])

    # ----- shared pieces -------------------------------------------------------------
    def make_encoder(self, out_features: int) -> nn.Module:
        return build_encoder(self.config.network_config, self.image_shape, out_features)  # type: ignore[arg-type]

    def make_decoder(self, in_features: int) -> nn.Module:
        return build_decoder(self.config.network_config, in_features, self.image_shape, self.likelihood.param_channels)  # type: ignore[arg-type]

    def encode_items(self, encoder: nn.Module, images: Tensor) -> Tensor:
        """Apply ``encoder`` per item: ``[B, T, C, H, W] -> [B, T, F]``."""
        return apply_to_items(encoder, images, 3, self.item_chunk)

    def decode_items(self, decoder: nn.Module, codes: Tensor) -> Reconstruction:
        """Apply ``decoder`` per item: codes ``[B, T, C] ->`` a distribution over ``[B, T, C, H, W]``."""
        return self.likelihood(apply_to_items(decoder, codes, 1, self.item_chunk))

    @contextmanager
    def items_in_chunks(self, chunk: int) -> Iterator[None]:
        """Within the block, :meth:`encode_items`/:meth:`decode_items` run the networks on at most
        ``chunk`` items per call (same results, lower peak memory; the capacity benchmark's very
        long episodes). Nothing but :attr:`item_chunk` changes, and it is restored afterwards."""
        previous = vars(self).get("item_chunk")
        self.item_chunk = chunk
        try:
            yield
        finally:
            if previous is None:
                del self.item_chunk  # back to the class default
            else:
                self.item_chunk = previous

    @property
    def binary_data(self) -> bool:
        return isinstance(self.likelihood, Bernoulli)

    @property
    def latent_memory(self) -> LatentMemory | None:
        """``self.memory`` when the model declares ``has_latent_memory`` (a memory usable without encoders)."""
        return getattr(self, "memory", None) if self.has_latent_memory else None

    # ----- the protocol --------------------------------------------------------------
    def loss(self, episode: Tensor) -> LossTerms:
        """Training objective for an episode ``[B, T, C, H, W]`` (per image, nats)."""
        raise NotImplementedError

    def write(self, episode: Tensor) -> Any:
        """Write an episode ``[B, T, C, H, W]`` into a fresh memory; returns the memory state."""
        raise NotImplementedError

    def read(self, queries: Tensor, state: Any) -> Reconstruction:
        """Read queries ``[B, Tq, C, H, W]`` from ``state``: the decoder distribution ``[B, Tq, ...]``."""
        raise NotImplementedError

    def neg_elbo(self, episode: Tensor, queries: Tensor | None = None) -> NegELBO:
        """Per-image negative ELBO ``[B, Tq]`` of ``queries`` (default: the episode) given the
        memory written from ``episode``; see :class:`NegELBO`."""
        raise NotImplementedError

    def log_importance_weights(self, episode: Tensor, samples: int) -> Tensor:
        """ln of ``samples`` importance weights p(X, latents)/q(latents | X) ``[B, G, samples]`` for
        an unbiased estimate of p(X) of each episode ``[B, T, ...]``: ln p̂(X) = Σ_g logmeanexp_k.

        G = T for a model whose items are independent (each item is estimated on its own), else 1.
        Only for models with ``has_likelihood_estimate``: a generative model p(X) to estimate.
        """
        raise NotImplementedError(f"{self.registry_name or type(self).__name__} defines no likelihood p(X)")

    def sample(self, state: Any, n: int, steps: int = 0) -> Tensor:
        """``n`` images per episode ``[B, n, C, H, W]`` generated from the memory's prior over
        read weights/keys, refined by ``steps`` iterative reads."""
        raise NotImplementedError

    def iterative_read(
        self,
        queries: Tensor,
        state: Any,
        steps: int,
        threshold: float | None = 0.5,
        accept: str = "always",
    ) -> list[Reconstruction]:
        """Attractor dynamics: read, feed the output back as the next query, ``steps`` times.

        Queries ``[B, Tq, C, H, W]``; returns one reconstruction per step. For binary data the
        fed-back image is the decoder mean binarized at ``threshold`` (``None``: the mean itself).
        The memory state is never updated while reading.

        ``accept`` (one of :data:`ACCEPT_RULES`): ``"always"`` feeds every output back (the
        papers' loop); ``"energy"`` moves a query to its new output only when that lowers the
        model's :meth:`energy`, otherwise the query stays where it is (its step "reconstruction"
        is then the previous one, or a :class:`PointMass` on the query itself at the first step).
        Reading is then a descent on the energy, as GPM §2.4 argues ideal reading is: a stored
        item the model already holds stays put instead of drifting away (docs/models/gpm.md).
        """
        require(accept in ACCEPT_RULES, "accept", f"{accept!r} is not one of {', '.join(ACCEPT_RULES)}")
        trajectory: list[Reconstruction] = []
        current = queries
        kept: Reconstruction = PointMass(queries)
        current_energy = self.energy(queries, state) if accept == "energy" else None
        for _ in range(steps):
            reconstruction = self.read(current, state)
            proposal = self.fed_back(reconstruction, threshold)
            if current_energy is not None:
                energy = self.energy(proposal, state)
                lower = energy < current_energy
                reconstruction = reconstruction.where(lower, kept)
                proposal = torch.where(lower[..., None, None, None], proposal, current)
                current_energy = torch.where(lower, energy, current_energy)
            trajectory.append(reconstruction)
            current, kept = proposal, reconstruction
        return trajectory

    def fed_back(self, reconstruction: Reconstruction, threshold: float | None = 0.5) -> Tensor:
        """The image ``[..., C, H, W]`` iterative reading feeds back: the decoder mean, binarized
        at ``threshold`` for binary data."""
        mean = reconstruction.mean
        return binarize(mean, threshold) if threshold is not None and self.binary_data else mean

    def refine_samples(
        self, images: Tensor, state: Any, steps: int, threshold: float = 0.5, accept: str = "always"
    ) -> Tensor:
        """Binarize (binary data) and run ``steps`` iterative reads on generated images
        ``[B, n, C, H, W]``; returns the final images, same shape."""
        if self.binary_data:
            images = binarize(images, threshold)
        trajectory = self.iterative_read(images, state, steps, threshold, accept)
        return self.fed_back(trajectory[-1], threshold) if trajectory else images

    def energy(self, queries: Tensor, state: Any) -> Tensor:
        """The model's attractor energy ``[B, Tq]`` at ``queries`` (see ``energy_definition``)."""
        return -self.read(queries, state).log_prob(queries)

    # ----- what the numbers mean (read by the ELBO benchmark, written into results) ----
    @property
    def noise_shared_across_episodes(self) -> bool:
        """True when one call of ``neg_elbo`` draws a noise value that every episode of the batch
        shares, so the episodes' numbers are not independent: standard errors must then be
        computed over evaluation batches, not episodes."""
        return False

    @property
    def bound_caveat(self) -> str | None:
        """Why ``neg_elbo`` is not a valid Monte-Carlo estimate of the bound it names (None: it is)."""
        return None


class CodeMemoryModel(MemoryModel):
    """A model that writes deterministic item codes z = e(x) ``[B, T, C]`` into ``self.memory``
    (a :class:`LatentMemory`) and decodes read-out codes: the shared path of GPM and DKM.

    Subclasses call :meth:`build_networks` and set ``self.memory`` in ``__init__``.
    """

    memory: Any
    has_latent_memory = True

    def build_networks(self) -> None:
        self.encoder = self.make_encoder(self.config.code_size)
        self.decoder = self.make_decoder(self.config.code_size)

    def encode(self, images: Tensor) -> Tensor:
        """Deterministic codes ``[B, T, C]`` of images ``[B, T, C, H, W]``."""
        return self.encode_items(self.encoder, images)

    def write(self, episode: Tensor) -> Any:
        return self.memory.write(self.encode(episode))

    def write_for_scoring(self, episode: Tensor, queries: Tensor | None) -> tuple[Any, Tensor, Tensor]:
        """Write ``episode`` and encode what ``neg_elbo`` scores: (state, queries ``[B, Tq, ...]``
        (default: the episode, whose codes are then reused), their codes ``[B, Tq, C]``)."""
        codes = self.encode(episode)
        state = self.memory.write(codes)
        if queries is None:
            return state, episode, codes
        return state, queries, self.encode(queries)

    def read(self, queries: Tensor, state: Any) -> Reconstruction:
        """Decoder distribution at the mean read-out (no sampling) of the queries' codes."""
        return self.decode_items(self.decoder, self.memory.read(self.encode(queries), state, sample=False))


def binarize(images: Tensor, threshold: float = 0.5) -> Tensor:
    """``images >= threshold`` as floats, elementwise."""
    return (images >= threshold).to(images.dtype)


def check_episode(episode: Tensor, model: MemoryModel) -> None:
    """Raise ValueError unless ``episode`` is ``[B, T, *image_shape]``."""
    if episode.dim() != 5 or tuple(episode.shape[2:]) != model.image_shape:
        raise ValueError(
            f"expected an episode [B, T, {', '.join(map(str, model.image_shape))}], got {list(episode.shape)}"
        )


__all__ = [
    "ACCEPT_RULES",
    "CodeMemoryModel",
    "LatentMemory",
    "LossTerms",
    "MemoryModel",
    "ModelConfig",
    "NegELBO",
    "binarize",
    "check_episode",
]
