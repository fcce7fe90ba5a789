"""Dynamic Kanerva Machine (Wu, Wayne, Gregor, Lillicrap, NeurIPS 2018; docs/models/dkm.md).

Codes z_t = e(x_t) are deterministic. The memory q(M) = MN(R, U, I_C) starts at the learnable
prior p(M) = MN(R0, (exp(ℓ) + 10⁻⁶) I_K, I_C) and is written one item at a time (A.3): the
address μ_t solves ridge least squares of z_t against the *current* mean R_{t−1} (A.4,
λ = σ_ξ²/σ_0²), then an exact rank-1 Bayesian update with w = μ_t; diag(U) is clipped to
[10⁻⁶, 10¹⁰] and U symmetrised after every step. Because μ_t depends on what was written before,
the write is order-dependent. Reading: μ = ridge weights of e(x) against M̃ (the final mean R_T,
or a sample), w ~ q(w|x) = N(μ, σ_w² I_K), read-out M̃ᵀw (the mean read-out, no σ_ξ noise)
decoded by the shared decoder.

Objective per image: [Σ_t (−ln p(x_t|M̃ᵀw_t) + KL(q(w_t)‖N(0, σ_0² I))) + KL(q(M)‖p(M))
+ Σ_t −ln p(x_t|d(z_t))]/T, averaged over episodes. The last (auto-encoder) sum is only in the
training loss, never in ``neg_elbo``. KL(M) is exact (Cholesky log-dets, A.7).

Choices where the spec leaves room (docs/models/dkm.md), each behind a config knob:
- ``addressing="ridge"`` (the posterior-mean form of the paper/GPM's description); the official
  module's regularised Gram system ((MMᵀ)² + λI)⁻¹MMᵀMz is ``"dkm_tf_compat"`` (§4.2, §11.2).
- ``training_memory_kl="exact"``; ``"dkm_tf_compat"`` trains with the module's README value
  (no ½, diagonal log-det = 2 × the diagonal-log-det KL). ``neg_elbo`` always reports the exact KL.
- ``sample_weights=True``: loss and bound sample w ~ N(μ, σ_w² I) so the single-sample estimate
  is a valid bound and σ_w gets a reconstruction signal (the module's default is w = μ).
- ``sample_memory=False``: M̃ = R_T, the module's default (True: one M ~ q(M) per episode).
- σ_ξ fixed at 1 (the module's default; ``learn_write_noise`` learns it), σ_w init 0.3 learned,
  ``write_iterations`` = the module's ``num_opt_iters`` (1).
- ``weight_prior="moment_matched"``: the prior std σ_0 of w (the module fixes it at 1) follows a
  running average of E_q[w²] = σ_w² + ‖μ‖²/K over training batches — the σ_0 that minimises the
  batch's KL(q(w) ‖ p(w)); a constant of the bound at evaluation. Read-outs (μ + σ_w ε)ᵀM are
  unchanged by the rescaling (μ, σ_w, M) → (aμ, aσ_w, M/a) while the KL depends only on μ/σ_0 and
  σ_w/σ_0, so a fixed σ_0 = 1 charged ~9 nats of KL(w) at 1k steps for a scale Adam reaches only
  slowly (docs/models/dkm.md). ``"fixed"`` keeps σ_0 = ``weight_prior_std``. The ridge
  λ = σ_ξ²/σ_0² follows σ_0.
- The per-step write KLs (β, §1.1(3)) are returned by ``memory.write_with_diagnostics`` for
  logging only: they are not ELBO terms (§4.5).

Differences from the paper: shared conv-ResNet encoder/decoder with GroupNorm (docs/models/km.md);
the write loop runs T sequential steps vectorised over episodes; with gradients on and
T > ``checkpoint_steps`` it is checkpointed in chunks (recomputed in backward) so autograd does not
keep T copies of U. ``read`` (denoising, generation) uses the mean weights μ and the mean memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from memorybench.memories import register_memory
from memorybench.memories.configuration import require
from memorybench.memories.gaussian_memory import (
    DiagonalMatrixNormalPrior,
    MatrixNormalState,
    address,
    matrix_normal_log_density,
    per_image_terms,
    rank_one_write,
    sample_matrix_normal,
)
from memorybench.memories.kl import diagonal_gaussian_kl, diagonal_gaussian_log_prob
from memorybench.memories.protocol import CodeMemoryModel, LossTerms, ModelConfig, NegELBO


@dataclass(frozen=True, kw_only=True)
class DKMConfig(ModelConfig):
    """DKM knobs; defaults follow the official memory module (Omniglot K = 32, C = 100)."""

    memory_size: int = 32  # K: memory rows
    write_noise_std: float = 1.0  # σ_ξ: observation noise of the write and the addressing ridge
    learn_write_noise: bool = False  # learn σ_ξ (initialised at write_noise_std)
    weight_prior_std: float = 1.0  # σ_0 of p(w) = N(0, σ_0² I) (initial value if moment-matched); λ = σ_ξ²/σ_0²
    weight_prior: Literal["fixed", "moment_matched"] = (
        "moment_matched"  # σ_0 set to E_q[w²] of training batches, or fixed
    )
    weight_prior_momentum: float = 0.99  # moment_matched: running-average momentum of the σ_0² estimate
    read_weight_std: float = 0.3  # initial σ_w of q(w|x) = N(μ, σ_w² I) (learned scalar)
    prior_variance: float = 1.0  # initial diagonal of U0 (learned scalar)
    addressing: Literal["ridge", "dkm_tf_compat"] = "ridge"  # ridge μ or the module's Gram form
    write_iterations: int = 1  # fixed-point refinements of each write address (num_opt_iters)
    sample_weights: bool = True  # loss/neg_elbo sample w ~ q(w|x) (False: w = μ, the module's default)
    sample_memory: bool = False  # loss/neg_elbo read from M ~ q(M) (False: M = R_T)
    training_memory_kl: Literal["exact", "dkm_tf_compat"] = "exact"  # KL(M) in the training loss
    checkpoint_steps: int = 16  # write steps per autograd checkpoint when T exceeds it (0: never)

    def validate(self) -> None:
        super().validate()
        require(self.memory_size > 0, "memory_size", f"must be positive, got {self.memory_size}")
        require(self.write_noise_std > 0, "write_noise_std", f"must be positive, got {self.write_noise_std}")
        require(self.weight_prior_std > 0, "weight_prior_std", f"must be positive, got {self.weight_prior_std}")
        momentum = self.weight_prior_momentum
        require(0 <= momentum < 1, "weight_prior_momentum", f"must lie in [0, 1), got {momentum}")
        require(self.read_weight_std > 0, "read_weight_std", f"must be positive, got {self.read_weight_std}")
        require(self.prior_variance > 0, "prior_variance", f"must be positive, got {self.prior_variance}")
        require(self.write_iterations >= 1, "write_iterations", f"must be >= 1, got {self.write_iterations}")
        require(self.checkpoint_steps >= 0, "checkpoint_steps", f"must be >= 0, got {self.checkpoint_steps}")


class DynamicMemory(nn.Module):
    """The DKM latent memory alone: sequential dynamic writes and least-squares reads of codes."""

    log_weight_prior_var: Tensor  # ln σ_0² (a buffer: fixed, or moment-matched during training)

    def __init__(self, config: DKMConfig):
        super().__init__()
        self.config = config
        self.prior = DiagonalMatrixNormalPrior(config.memory_size, config.code_size, variance=config.prior_variance)
        log_noise_std = torch.tensor(math.log(config.write_noise_std))
        if config.learn_write_noise:
            self.log_noise_std = nn.Parameter(log_noise_std)
        else:
            self.register_buffer("log_noise_std", log_noise_std)
        self.log_weight_var = nn.Parameter(torch.tensor(2.0 * math.log(config.read_weight_std)))
        self.register_buffer("log_weight_prior_var", torch.tensor(2.0 * math.log(config.weight_prior_std)))

    @property
    def noise_var(self) -> Tensor:
        """σ_ξ² (0-dim)."""
        return torch.exp(2.0 * self.log_noise_std)

    @property
    def ridge(self) -> Tensor:
        """λ = σ_ξ²/σ_0² (0-dim)."""
        return self.noise_var * torch.exp(-self.log_weight_prior_var)

    @property
    def weight_prior_std(self) -> Tensor:
        """σ_0 (0-dim)."""
        return torch.exp(0.5 * self.log_weight_prior_var)

    @torch.no_grad()
    def match_weight_prior(self, mean_weights: Tensor) -> None:
        """``weight_prior="moment_matched"``: move σ_0² towards E_q[w²] = σ_w² + ‖μ‖²/K of a training
        batch (weights ``[B, T, K]``), the σ_0² minimising the batch's mean KL(q(w) ‖ N(0, σ_0² I)).

        A running average (an empirical-Bayes step, no gradient): σ_0 is a constant of the bound at
        evaluation. The KL depends on (μ, σ_w) only through μ/σ_0 and σ_w/σ_0, so this removes the
        cost of a read-out scale that Adam would otherwise reach only slowly.
        """
        second_moment = torch.exp(self.log_weight_var) + mean_weights.square().mean()
        momentum = self.config.weight_prior_momentum
        variance = momentum * torch.exp(self.log_weight_prior_var) + (1.0 - momentum) * second_moment
        self.log_weight_prior_var = torch.log(variance)  # rebind: the old value may be saved for backward

    def address(self, codes: Tensor, memory: Tensor) -> Tensor:
        """Mean weights μ ``[B, T, K]`` of codes ``[B, T, C]`` against a memory ``[B, K, C]``."""
        return address(codes, memory, self.ridge, self.config.addressing)

    def _write_steps(self, mean: Tensor, covariance: Tensor, codes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Write codes ``[B, n, C]`` in order from (R ``[B, K, C]``, U ``[B, K, K]``); returns the new
        (R, U) and β, per-step KL ``[B, n]``."""
        state = MatrixNormalState(mean, covariance)
        noise_var = self.noise_var
        betas, step_kls = [], []
        for t in range(codes.shape[1]):
            code = codes[:, t]
            weight = self.address(code.unsqueeze(1), state.mean).squeeze(1)  # μ_t against R_{t−1}
            for _ in range(self.config.write_iterations - 1):
                tentative, _, _ = rank_one_write(state, weight, code, noise_var)
                weight = self.address(code.unsqueeze(1), tentative.mean).squeeze(1)
            state, beta, step_kl = rank_one_write(state, weight, code, noise_var)
            betas.append(beta)
            step_kls.append(step_kl)
        return state.mean, state.covariance, torch.stack(betas, 1), torch.stack(step_kls, 1)

    def write_with_diagnostics(self, codes: Tensor) -> tuple[MatrixNormalState, Tensor, Tensor]:
        """Write codes ``[B, T, C]`` item by item from the prior (A.3).

        Returns the posterior (R_T ``[B, K, C]``, U_T ``[B, K, K]``), β_t and the per-step KLs
        KL(q_t ‖ q_{t−1}) ``[B, T]`` (logging only; their sum is not KL(q_T ‖ p), §1.1(4)).
        """
        batch, length = codes.shape[:2]
        state = self.prior.state(batch)
        mean, covariance = state.mean, state.covariance
        chunk = self.config.checkpoint_steps
        use_checkpoint = torch.is_grad_enabled() and 0 < chunk < length
        step = chunk if use_checkpoint else length
        betas, step_kls = [], []
        for start in range(0, length, step):
            piece = codes[:, start : start + step]
            if use_checkpoint:  # the write draws no random numbers: no RNG state to preserve
                mean, covariance, beta, step_kl = checkpoint(
                    self._write_steps, mean, covariance, piece, use_reentrant=False, preserve_rng_state=False
                )
            else:
                mean, covariance, beta, step_kl = self._write_steps(mean, covariance, piece)
            betas.append(beta)
            step_kls.append(step_kl)
        return MatrixNormalState(mean, covariance), torch.cat(betas, 1), torch.cat(step_kls, 1)

    def write(self, codes: Tensor) -> MatrixNormalState:
        """Codes ``[B, T, C]`` -> q(M) = MN(R_T, U_T, I) after T sequential dynamic writes."""
        return self.write_with_diagnostics(codes)[0]

    def readable_memory(self, state: MatrixNormalState, sample: bool) -> Tensor:
        """M̃ ``[B, K, C]``: a sample of q(M) if ``sample`` else the mean R_T."""
        return sample_matrix_normal(state) if sample else state.mean

    def sample_weights(self, mean_weights: Tensor) -> Tensor:
        """w = μ + σ_w ε, ε iid per entry: ``[B, T, K] -> [B, T, K]``."""
        return mean_weights + torch.exp(0.5 * self.log_weight_var) * torch.randn_like(mean_weights)

    def read(self, codes: Tensor, state: MatrixNormalState, sample: bool = True) -> Tensor:
        """Query codes ``[B, Tq, C]`` -> read-out M̃ᵀw ``[B, Tq, C]`` (``sample=False``: w = μ, M̃ = R_T;
        ``sample=True`` samples w, and M when the config's ``sample_memory`` is set)."""
        memory = self.readable_memory(state, sample and self.config.sample_memory)
        weights = self.address(codes, memory)
        if sample:
            weights = self.sample_weights(weights)
        return weights @ memory

    def weight_kl(self, mean_weights: Tensor) -> Tensor:
        """KL(N(μ, σ_w² I) ‖ N(0, σ_0² I)) per item: ``[B, T, K] -> [B, T]`` (§1.1(1))."""
        return diagonal_gaussian_kl(mean_weights, self.log_weight_var, 0.0, self.log_weight_prior_var)

    def kl(self, state: MatrixNormalState) -> Tensor:
        """Exact KL(q(M) ‖ p(M)) per episode ``[B]``."""
        return self.prior.kl(state)

    def training_kl(self, state: MatrixNormalState) -> Tensor:
        """The memory KL used in the training loss ``[B]`` (exact, or the module's 2 × diag-log-det value)."""
        if self.config.training_memory_kl == "dkm_tf_compat":
            return 2.0 * self.prior.diagonal_logdet_kl(state)
        return self.kl(state)


@register_memory("dkm")
class DKM(CodeMemoryModel):
    """Dynamic Kanerva Machine: sequential Bayesian writes with least-squares addressing."""

    config: DKMConfig
    config_class = DKMConfig
    has_memory_prior = True
    has_likelihood_estimate = True
    search_space: ClassVar[dict[str, dict[str, list[Any]]]] = {
        "write_noise_std": {"log_uniform": [0.3, 1.0]},
        "read_weight_std": {"log_uniform": [0.1, 1.0]},
    }
    energy_definition = (
        "-ln p(x | R_Tᵀμ) + KL(N(μ, σ_w² I) ‖ p(w)) with μ the ridge weights of e(x): the single-item NELBO"
    )

    def __init__(
        self, config: DKMConfig, image_shape: tuple[int, int, int] = (1, 28, 28), likelihood: str = "bernoulli"
    ):
        super().__init__(config, image_shape, likelihood)
        self.build_networks()
        self.memory = DynamicMemory(config)

    def _elbo_terms(
        self, queries: Tensor, query_codes: Tensor, state: MatrixNormalState
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Per-item reconstruction NLL and KL(w) ``[B, Tq]`` (one sample of w, and of M if configured),
        and the mean weights μ ``[B, Tq, K]``."""
        memory = self.memory.readable_memory(state, self.config.sample_memory)
        mean_weights = self.memory.address(query_codes, memory)
        weights = self.memory.sample_weights(mean_weights) if self.config.sample_weights else mean_weights
        nll = -self.decode_items(self.decoder, weights @ memory).log_prob(queries)
        return {"reconstruction": nll, "kl_w": self.memory.weight_kl(mean_weights)}, mean_weights

    def loss(self, episode: Tensor) -> LossTerms:
        codes = self.encode(episode)
        state = self.memory.write(codes)
        per_item, mean_weights = self._elbo_terms(episode, codes, state)
        per_item["autoencoder"] = -self.decode_items(self.decoder, codes).log_prob(episode)
        if self.training and self.config.weight_prior == "moment_matched":
            self.memory.match_weight_prior(mean_weights)
        terms = per_image_terms(per_item, self.memory.training_kl(state))
        return LossTerms(total=sum(terms.values(), torch.zeros((), device=episode.device)), terms=terms)

    def neg_elbo(self, episode: Tensor, queries: Tensor | None = None) -> NegELBO:
        state, queries, query_codes = self.write_for_scoring(episode, queries)
        terms = self._elbo_terms(queries, query_codes, state)[0]
        cond = terms["reconstruction"] + terms["kl_w"]
        terms["kl_memory"] = (self.memory.kl(state) / episode.shape[1]).unsqueeze(-1).expand_as(cond)
        return NegELBO(cond=cond, full=cond + terms["kl_memory"], terms=terms)

    def log_importance_weights(self, episode: Tensor, samples: int) -> Tensor:
        """``[B, 1, samples]``: ln p(M) + Σ_t [ln p(x_t | Mᵀw_t) + ln N(w_t; 0, σ_0² I)] − ln q(M|X)
        − Σ_t ln q(w_t | x_t, M). Proposal: M ~ q(M|X) (the deterministic write of X's codes), then
        w_t ~ N(μ_t, σ_w² I) with μ_t the least-squares weights of e(x_t) against that M.
        """
        codes = self.encode(episode)
        state = self.memory.write(codes)
        prior = self.memory.prior.state(episode.shape[0])
        weights = []
        for _ in range(samples):
            memory = sample_matrix_normal(state)
            mean_weights = self.memory.address(codes, memory)
            read_weights = self.memory.sample_weights(mean_weights)
            per_item = (
                self.decode_items(self.decoder, read_weights @ memory).log_prob(episode)
                + diagonal_gaussian_log_prob(read_weights, 0.0, self.memory.log_weight_prior_var)
                - diagonal_gaussian_log_prob(read_weights, mean_weights, self.memory.log_weight_var)
            )
            log_memory = matrix_normal_log_density(memory, prior) - matrix_normal_log_density(memory, state)
            weights.append(per_item.sum(-1) + log_memory)
        return torch.stack(weights, -1).unsqueeze(1)

    @property
    def bound_caveat(self) -> str | None:
        if self.config.sample_memory:
            return None
        return (
            "sample_memory: false decodes every item from the mean memory R_T instead of averaging over q(M), so "
            "the reconstruction term is not a Monte-Carlo estimate of the bound's expectation and nelbo_full is not "
            "guaranteed to bound -ln p(X)/T (nll_is samples M; docs/models/dkm.md)"
        )

    def sample(self, state: MatrixNormalState, n: int, steps: int = 0) -> Tensor:
        """w ~ N(0, σ_0² I) ``[B, n, K]``, z = R_Tᵀw, decode, then ``steps`` iterative reads."""
        mean = state.mean
        weights = self.memory.weight_prior_std * torch.randn(
            mean.shape[0], n, mean.shape[1], dtype=mean.dtype, device=mean.device
        )
        return self.refine_samples(self.decode_items(self.decoder, weights @ mean).mean, state, steps)

    def energy(self, queries: Tensor, state: MatrixNormalState) -> Tensor:
        mean_weights = self.memory.address(self.encode(queries), state.mean)
        nll = -self.decode_items(self.decoder, mean_weights @ state.mean).log_prob(queries)
        return nll + self.memory.weight_kl(mean_weights)
