"""Kanerva++-style block memory (after Ramapuram, Wu, Kalousis, ICLR 2021; docs/models/kanerva_pp.md).

An honest simplification, not the paper's model (its full text and code were not available;
docs/models/kanerva_pp.md lists what could not be checked). What it keeps: a deterministic feed-forward write, a
spatial memory grid read in local contiguous blocks by a differentiable bilinear spatial
transformer, a low-dimensional stochastic key per item with KL to N(0, I), a learned
memory-conditional prior p(z | block) with a KL from a memory-free posterior q(z|x), one memory
per episode and no KL(M).

Memory state: a grid M ``[B, C_m, H_m, W_m]`` per episode (:class:`GridState`), a deterministic
function of the episode. It is not a K×C latent memory, so ``latent_memory`` is None.
Write (``writer="scatter"``, the default): h = e(x) ``[B, T, C]``; each item's content, a small
``[C_m, 4, 4]`` map from an MLP of h_t, is placed on the grid at the block its own key mean
μ_y(x_t) reads (the inverse affine map, bilinear, zero outside the block), and the T placements
are summed (permutation-invariant). This is the paper's allocation idea — an item is written where
its key will read it — as a single feed-forward pass. ``writer="pooled"`` (the earlier default):
per-item MLP, **mean over t**, then a linear map and stride-2 transposed convolutions produce the
grid; it has no link between an item and the block its key reads, so reads return an episode
average rather than the item (docs/models/kanerva_pp.md has the measurements). Read key y ∈ R³ per item,
q(y|x) = N(μ_y(h), σ_y²(h)), p(y) = N(0, I); scale s = s_min + (s_max − s_min)·sigmoid(y₁), shifts
(u, v) = tanh(y₂,₃)·(1 − s), θ = [[s, 0, u], [0, s, v]]; the block ``[C_m, b, b]`` is read with
``F.affine_grid`` + bilinear ``F.grid_sample`` (same ``align_corners``), always inside the grid.
Prior head on the block (a stride-2 conv and a two-layer MLP) -> p(z | M, y) = N(μ_p, diag σ_p²);
linear posterior head on h -> q(z|x) = N(μ_q, diag σ_q²).
Objective per image (mean over B·T): −ln p(x|z) + KL(q(z|x) ‖ p(z|M, y)) + KL(q(y|x) ‖ N(0, I)),
one sample each, M written from the same episode: a memory-conditional bound (§8.1).
Read-out (``read``, denoising, generation): y = μ_y(x), z = mean of p(z | M, y)
(``read_from="posterior"``: mean of q(z|x), which ignores the memory), decoded.

Differences from the paper (all [O] choices of the spec, §5.7–5.8): a per-item MLP placed at its key's
block (or, ``writer="pooled"``, an MLP + mean pooling + transposed-conv generator) instead of a
TSM-ResNet18 writer; the write places items at their key *means* (the writer is deterministic); the shared conv-ResNet encoder and
decoder (GroupNorm) for every model; one encoder pass feeds the writer, the key and the posterior
heads; a fixed b×b block size and a 3-d key (scale, x-shift, y-shift) in the AIR convention;
defaults C_m = 64, H_m = W_m = 16, b = 8 are the spec's suggestions, not the paper's; the block scale
range s ∈ [0.1, 0.3] replaces the spec's [0.3, 1], under which a trained model's blocks (s ≈ 0.64) each
overlapped ~18 of the other 31 items' blocks (docs/models/kanerva_pp.md); q(y|x) starts with
σ_y = ``key_std_init`` = 0.1 (PyTorch's default head init gives σ_y ≈ 1: sampled reads then miss the
small blocks their items were written to, and the keys collapse onto the prior);
no iterative inference during training; log-variances clamped to [−12, 8].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memorybench.memories import register_memory
from memorybench.memories.configuration import require
from memorybench.memories.kl import (
    LOG_VAR_RANGE,
    diagonal_gaussian_head,
    diagonal_gaussian_kl,
    reparameterize,
    standard_normal_kl,
)
from memorybench.memories.likelihoods import Reconstruction
from memorybench.memories.protocol import LossTerms, MemoryModel, ModelConfig, NegELBO

KEY_SIZE = 3  # (scale, x-shift, y-shift)


@dataclass(frozen=True, kw_only=True)
class KanervaPPConfig(ModelConfig):
    """K++-style knobs; grid/block/scale defaults are the suite's choices, not the paper's (docs/models/kanerva_pp.md)."""

    grid_channels: int = 64  # C_m: feature channels of the memory grid
    grid_size: int = 16  # H_m = W_m: spatial size of the memory grid
    block_size: int = 8  # b: a read block is b×b grid samples
    scale_min: float = 0.1  # s_min: smallest block extent, as a fraction of the grid (0.3 before; see docs)
    scale_max: float = 0.3  # s_max: largest block extent, ≤ 1 keeps blocks inside the grid (1.0 before)
    writer_hidden_size: int = 256  # width of the per-item writer MLP (both writers)
    head_hidden_size: int = 256  # hidden width of the block -> p(z | M, y) prior head
    writer: Literal["scatter", "pooled"] = "scatter"  # place items at their key's block, or pool the episode
    content_size: int = 4  # scatter writer: an item's content is a [C_m, content_size, content_size] map
    key_std_init: float = 0.1  # initial σ of q(y|x) (key head log-variance bias); 0: PyTorch's default init (σ ≈ 1)
    read_from: Literal["prior", "posterior"] = "prior"  # read-out z: mean of p(z|M,y) or of q(z|x)
    align_corners: bool = False  # align_corners of both affine_grid and grid_sample

    def validate(self) -> None:
        super().validate()
        for key in (
            "grid_channels",
            "grid_size",
            "block_size",
            "writer_hidden_size",
            "head_hidden_size",
            "content_size",
        ):
            value = getattr(self, key)
            require(value > 0, key, f"must be positive, got {value}")
        require(
            self.block_size <= self.grid_size,
            "block_size",
            f"a {self.block_size}×{self.block_size} block does not fit a {self.grid_size}×{self.grid_size} grid",
        )
        require(self.key_std_init >= 0, "key_std_init", f"must be >= 0, got {self.key_std_init}")
        require(self.scale_min > 0, "scale_min", f"must be positive, got {self.scale_min}")
        require(
            self.scale_min <= self.scale_max <= 1.0,
            "scale_max",
            f"must lie in [scale_min, 1] = [{self.scale_min}, 1] (blocks stay inside the grid), got {self.scale_max}",
        )


@dataclass
class GridState:
    """A written K++-style memory: ``grid`` ``[B, C_m, H_m, W_m]`` (deterministic given the episode)."""

    grid: Tensor


def key_to_affine(keys: Tensor, scale_min: float, scale_max: float) -> Tensor:
    """Keys ``[..., 3]`` -> affine maps θ ``[..., 2, 3]`` = [[s, 0, u], [0, s, v]] with
    s = s_min + (s_max − s_min)·sigmoid(y₁) and (u, v) = tanh(y₂,₃)·(1 − s), so |u|, |v| ≤ 1 − s."""
    scale = scale_min + (scale_max - scale_min) * torch.sigmoid(keys[..., 0])
    shift = torch.tanh(keys[..., 1:]) * (1.0 - scale).unsqueeze(-1)
    zero = torch.zeros_like(scale)
    rows = (torch.stack([scale, zero, shift[..., 0]], -1), torch.stack([zero, scale, shift[..., 1]], -1))
    return torch.stack(rows, dim=-2)


def read_blocks(grid: Tensor, theta: Tensor, block_size: int, align_corners: bool = False) -> Tensor:
    """Bilinear spatial-transformer reads: grid ``[B, C_m, H, W]``, θ ``[B, T, 2, 3]`` -> blocks
    ``[B, T, C_m, b, b]``. All T sampling grids of an episode are stacked along the height of one
    grid_sample call, so the memory is never copied T times."""
    batch, length = theta.shape[:2]
    channels = grid.shape[1]
    sampling = F.affine_grid(
        theta.flatten(0, 1), [batch * length, channels, block_size, block_size], align_corners=align_corners
    )
    sampling = sampling.reshape(batch, length * block_size, block_size, 2)
    blocks = F.grid_sample(grid, sampling, mode="bilinear", padding_mode="border", align_corners=align_corners)
    return blocks.reshape(batch, channels, length, block_size, block_size).transpose(1, 2)


def invert_affine(theta: Tensor) -> Tensor:
    """Inverse of θ = [[s, 0, u], [0, s, v]] ``[..., 2, 3]``: [[1/s, 0, −u/s], [0, 1/s, −v/s]]."""
    scale = theta[..., 0, 0]
    inverse = torch.zeros_like(theta)
    inverse[..., 0, 0] = inverse[..., 1, 1] = 1.0 / scale
    inverse[..., :, 2] = -theta[..., :, 2] / scale.unsqueeze(-1)
    return inverse


def place_blocks(content: Tensor, theta: Tensor, grid_size: int, align_corners: bool = False) -> Tensor:
    """Put item contents ``[B, T, C_m, c, c]`` on a ``grid_size``² grid where θ ``[B, T, 2, 3]`` reads
    them, and sum over t: ``-> [B, C_m, grid_size, grid_size]``.

    Item t lands (bilinearly resampled, zero elsewhere) on exactly the grid region that
    :func:`read_blocks` samples at θ_t, so reading at θ_t returns item t's content plus whatever
    other items overlap that region.
    """
    batch, length, channels = content.shape[:3]
    sampling = F.affine_grid(
        invert_affine(theta).flatten(0, 1),
        [batch * length, channels, grid_size, grid_size],
        align_corners=align_corners,
    )
    placed = F.grid_sample(
        content.flatten(0, 1), sampling, mode="bilinear", padding_mode="zeros", align_corners=align_corners
    )
    return placed.unflatten(0, (batch, length)).sum(1)


def generator_stages(size: int) -> int:
    """Stride-2 upsampling stages from the generator's start size to ``size`` (start ≥ 4, exact)."""
    stages = 0
    while size % 2 == 0 and size // 2 >= 4:
        size //= 2
        stages += 1
    return stages


class EpisodeWriter(nn.Module):
    """Deterministic, permutation-invariant writer: features ``[B, T, F]`` -> grid ``[B, C_m, H_m, W_m]``."""

    def __init__(self, features: int, config: KanervaPPConfig):
        super().__init__()
        channels = config.grid_channels
        stages = generator_stages(config.grid_size)
        start = config.grid_size // 2**stages
        self.start = (channels, start, start)
        self.item = nn.Sequential(nn.Linear(features, config.writer_hidden_size), nn.SiLU())
        self.project = nn.Linear(config.writer_hidden_size, channels * start * start)
        layers: list[nn.Module] = []
        for _ in range(stages):
            layers += [
                nn.GroupNorm(1, channels),
                nn.SiLU(),
                nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1),
            ]
        layers += [nn.GroupNorm(1, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1)]
        self.generator = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        pooled = self.item(features).mean(dim=1)  # mean over the episode: order-free [B, hidden]
        return self.generator(self.project(pooled).view(-1, *self.start))


class ScatterWriter(nn.Module):
    """Deterministic, permutation-invariant writer: item t's content goes to the block its key reads.

    features ``[B, T, F]`` and θ ``[B, T, 2, 3]`` (from the key means) -> grid ``[B, C_m, H_m, W_m]``.
    """

    def __init__(self, features: int, config: KanervaPPConfig):
        super().__init__()
        self.config = config
        c = config.content_size
        self.item = nn.Sequential(
            nn.Linear(features, config.writer_hidden_size),
            nn.SiLU(),
            nn.Linear(config.writer_hidden_size, config.grid_channels * c * c),
        )

    def forward(self, features: Tensor, theta: Tensor) -> Tensor:
        c = self.config
        content = self.item(features).unflatten(-1, (c.grid_channels, c.content_size, c.content_size))
        return place_blocks(content, theta, c.grid_size, c.align_corners)


class BlockPrior(nn.Module):
    """p(z | M, y) from a block ``[N, C_m, b, b]``: mean and log-variance ``[N, C]``."""

    def __init__(self, config: KanervaPPConfig):
        super().__init__()
        reduced = (config.block_size + 1) // 2
        inner = 32  # channels of the stride-2 conv that summarises the block
        self.body = nn.Sequential(
            nn.Conv2d(config.grid_channels, inner, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(inner * reduced * reduced, config.head_hidden_size),
            nn.SiLU(),
            nn.Linear(config.head_hidden_size, 2 * config.code_size),
        )

    def forward(self, blocks: Tensor) -> Tensor:
        return self.body(blocks)


@register_memory("kanerva_pp")
class KanervaPP(MemoryModel):
    """Kanerva++-style: deterministic grid writer, stochastic spatial-transformer block reads, no KL(M)."""

    config: KanervaPPConfig
    config_class = KanervaPPConfig
    search_space: ClassVar[dict[str, dict[str, list[Any]]]] = {
        "key_std_init": {"log_uniform": [0.03, 1.0]},
        "scale_max": {"uniform": [0.2, 0.5]},
    }
    energy_definition = "-ln p(x | z) at z = mean of p(z | M, y = mean of q(y|x)) (read_from='prior')"

    def __init__(
        self, config: KanervaPPConfig, image_shape: tuple[int, int, int] = (1, 28, 28), likelihood: str = "bernoulli"
    ):
        super().__init__(config, image_shape, likelihood)
        size = config.code_size
        self.encoder = self.make_encoder(size)  # h = e(x), shared by writer, key and posterior heads
        self.decoder = self.make_decoder(size)
        self.writer: nn.Module = (
            ScatterWriter(size, config) if config.writer == "scatter" else EpisodeWriter(size, config)
        )
        self.key_head = nn.Linear(size, 2 * KEY_SIZE)  # q(y|x)
        if config.key_std_init > 0:  # precise keys from the start: a read lands where its item was written
            with torch.no_grad():
                self.key_head.bias[KEY_SIZE:] = 2.0 * math.log(config.key_std_init)
        self.posterior_head = nn.Linear(size, 2 * size)  # q(z|x), memory-free
        self.prior_head = BlockPrior(config)  # p(z | M, y)

    def encode(self, images: Tensor) -> Tensor:
        """Features h = e(x) ``[B, T, C]`` of images ``[B, T, C, H, W]``."""
        return self.encode_items(self.encoder, images)

    def affine(self, keys: Tensor) -> Tensor:
        """θ ``[B, T, 2, 3]`` of keys ``[B, T, 3]``."""
        return key_to_affine(keys, self.config.scale_min, self.config.scale_max)

    def write_features(self, features: Tensor) -> GridState:
        """The grid written from features h ``[B, T, C]`` (deterministic: the scatter writer places
        each item at the block of its key mean μ_y)."""
        if self.config.writer == "scatter":
            return GridState(self.writer(features, self.affine(diagonal_gaussian_head(features, self.key_head)[0])))
        return GridState(self.writer(features))

    def read_prior(self, keys: Tensor, state: GridState) -> tuple[Tensor, Tensor]:
        """p(z | M, y) at keys ``[B, T, 3]``: mean and log-variance ``[B, T, C]``."""
        c = self.config
        theta = self.affine(keys)
        blocks = read_blocks(state.grid, theta, c.block_size, c.align_corners)  # [B, T, C_m, b, b]
        mean, log_var = self.prior_head(blocks.flatten(0, 1)).unflatten(0, keys.shape[:2]).chunk(2, dim=-1)
        return mean, log_var.clamp(*LOG_VAR_RANGE)

    def _terms(self, queries: Tensor, features: Tensor, state: GridState) -> dict[str, Tensor]:
        key_mean, key_log_var = diagonal_gaussian_head(features, self.key_head)
        prior_mean, prior_log_var = self.read_prior(reparameterize(key_mean, key_log_var), state)
        code_mean, code_log_var = diagonal_gaussian_head(features, self.posterior_head)
        nll = -self.decode_items(self.decoder, reparameterize(code_mean, code_log_var)).log_prob(queries)
        return {
            "reconstruction": nll,
            "kl_z": diagonal_gaussian_kl(code_mean, code_log_var, prior_mean, prior_log_var),
            "kl_y": standard_normal_kl(key_mean, key_log_var),
        }

    def loss(self, episode: Tensor) -> LossTerms:
        features = self.encode(episode)
        terms = {
            name: value.mean() for name, value in self._terms(episode, features, self.write_features(features)).items()
        }
        return LossTerms(total=sum(terms.values(), torch.zeros((), device=episode.device)), terms=terms)

    def write(self, episode: Tensor) -> GridState:
        return self.write_features(self.encode(episode))

    def read(self, queries: Tensor, state: GridState) -> Reconstruction:
        features = self.encode(queries)
        if self.config.read_from == "posterior":
            code = diagonal_gaussian_head(features, self.posterior_head)[0]
        else:
            code = self.read_prior(diagonal_gaussian_head(features, self.key_head)[0], state)[0]
        return self.decode_items(self.decoder, code)

    def neg_elbo(self, episode: Tensor, queries: Tensor | None = None) -> NegELBO:
        features = self.encode(episode)
        state = self.write_features(features)
        if queries is None:
            queries = episode
        else:
            features = self.encode(queries)
        terms = self._terms(queries, features, state)
        return NegELBO(cond=terms["reconstruction"] + terms["kl_z"] + terms["kl_y"], full=None, terms=terms)

    def sample(self, state: GridState, n: int, steps: int = 0) -> Tensor:
        """y ~ N(0, I) ``[B, n, 3]``, z ~ p(z | M, y), decode, then ``steps`` iterative reads."""
        grid = state.grid
        keys = torch.randn(grid.shape[0], n, KEY_SIZE, dtype=grid.dtype, device=grid.device)
        codes = reparameterize(*self.read_prior(keys, state))
        return self.refine_samples(self.decode_items(self.decoder, codes).mean, state, steps)
