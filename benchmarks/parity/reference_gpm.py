"""A trainable re-creation of the public GPM code (docs/models/gpm_parity.md).

Our own re-creation from the description of the public code (no code of it is reproduced). It is
the anchor of ``python -m memorybench.benchmarks.parity.gpm_parity``, which trains it beside the suite's ``gpm`` in
``code_compat`` mode on the same episodes, and ``python -m memorybench.benchmarks.speed.throughput
--compare-reference`` times its training step beside ours. It is not a registered model: the
suite never evaluates it. What it re-creates:

- networks (official ``cnn_resnet.py`` layout, shared as ``network: reference`` in
  :mod:`memorybench.memories.networks`): encoder 3 × [conv 4×4 stride 2 pad 2 (16 ch) + basic residual block
  (3×3 conv + BatchNorm, ReLU, 3×3 conv + BatchNorm, identity shortcut)] → flatten (16·5·5 = 400)
  → linear → C; decoder 4 × [transposed conv (kernels 4, 4, 3, 4; 1×1 → 4 → 8 → 15 → 28) + basic
  residual block], the last block at 1 channel, sigmoid output; PyTorch's default initialisation;
- the code's ``[T, B, ·]`` layout: images ``[B·T, 784]`` where episode b is rows b, B+b, 2B+b, …;
- the prior memory M0 ~ N(0, 1) and a diagonal prior covariance materialised per episode (``cat``
  of B copies), ln σ_W² = 0 at the start;
- four independent N(0, 0.5²) noises, α = 5·10⁻⁴ (the Python ``min`` clamp) for both
  Ben-Israel–Cohen calls, 7 steps, one scalar W noise shared by every entry of the batch;
- loss = Bernoulli NLL via ``log(p + 1e-12)`` of sigmoid outputs + KL_w + auto-encoder term;
  KL(M) (no ½, diagonal log-det) computed every step and logged, not in the loss;
- the unused BiLSTM "ordering" module and the unused α parameters are registered and handed to
  the optimiser; Adam lr 3·10⁻⁴, weight decay 10⁻⁴ (L2), grad-norm clip 10; the four loss
  terms are read back with ``.item()`` every step as the training loop does;
- :func:`public_test_loss`: the public test loop (BatchNorm in training mode, every noise on,
  reconstruction + KL_w averaged over full batches), or the same in eval mode.

Left out, none of which changes what is learned: ``torch.autograd.set_detect_anomaly(True)``
(the real loop enables it every step, a large slowdown, so speed-ups measured against this are
conservative), the per-image ``transforms.Normalize`` data pipeline (data arrive binarized), and
the hard-coded ``.cuda()`` calls (this runs on whatever device its inputs are on).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from memorybench.memories.networks import NetworkConfig, ReferenceDecoder, ReferenceEncoder

NOISE_STD = 0.5  # σ_ξ of all four noises
ALPHA_CLAMP = 5e-4  # min(exp(p), 5e-4): the effective α of every Ben-Israel–Cohen call
IMAGE_SHAPE = (1, 28, 28)
PRIOR_VAR_EPSILON = 1e-6  # added to the prior memory variance
LOG_EPSILON = 1e-12  # log(p + 1e-12) in the Bernoulli NLL


def bic_pseudo_inverse(matrix: Tensor, alpha: float, steps: int) -> Tensor:
    """Ben-Israel–Cohen on a batch ``[B, m, n] -> [B, n, m]`` with bmm, as the reference does."""
    estimate = (alpha * matrix).transpose(1, 2)
    for _ in range(steps):
        estimate = 2 * estimate - torch.bmm(torch.bmm(estimate, matrix), estimate)
    return estimate


class ReferenceMemory(nn.Module):
    """The reference memory module in direct-writing mode, ``[T, B, C]`` layout throughout."""

    def __init__(self, memory_size: int, code_size: int, steps: int):
        super().__init__()
        self.memory_size, self.code_size, self.steps = memory_size, code_size, steps
        self.w_logvar = nn.Parameter(torch.zeros(1))
        self.memory_logvar = nn.Parameter(torch.zeros(1))  # dead: only feeds the logged KL(M)
        self.memory_mean = nn.Parameter(torch.randn(memory_size, code_size))  # M0
        self.alpha_log = nn.Parameter(torch.full((1,), -5.0))  # the α parameter both calls use
        self.unused_alpha_log = nn.Parameter(torch.full((1,), -5.0))  # never read
        # "ordering" BiLSTM: off in the published setting, still registered and optimised.
        self.ordering_lstm = nn.LSTM(code_size, code_size // 2, num_layers=2, bidirectional=True)

    def _alpha(self) -> float:
        # Python min(): the float clamp wins whenever exp(p) > 5e-4 (always, from p = -5).
        return min(float(torch.exp(self.alpha_log.detach())), ALPHA_CLAMP)

    def _prior(self, batch: int) -> tuple[Tensor, Tensor]:
        variance = (
            torch.ones(self.memory_size, device=self.memory_mean.device) * torch.exp(self.memory_logvar)
            + PRIOR_VAR_EPSILON
        )
        covariance = torch.diag(variance)
        return (
            torch.cat([self.memory_mean.unsqueeze(0)] * batch, dim=0),
            torch.cat([covariance.unsqueeze(0)] * batch, dim=0),
        )

    def _address(self, codes: Tensor, memory: Tensor) -> Tensor:
        """Noisy query ``[T, B, C]`` times BIC(M) ``[B, C, K]`` -> weights ``[T, B, K]``."""
        pinv = bic_pseudo_inverse(memory, self._alpha(), self.steps)
        queries = codes.transpose(0, 1)
        queries = queries + torch.randn_like(queries) * NOISE_STD
        return torch.bmm(queries, pinv).transpose(0, 1)

    def write(self, codes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Codes ``[T, B, C]`` -> posterior memory ``[B, K, C]``, its covariance, KL(M) (logged)."""
        prior_mean, prior_cov = self._prior(codes.shape[1])
        noisy = codes + torch.randn_like(codes) * NOISE_STD
        weights = self._address(noisy, prior_mean)  # [T, B, K]
        weights_pinv = bic_pseudo_inverse(weights.transpose(0, 1), self._alpha(), self.steps)  # [B, K, T]
        memory = torch.bmm(weights_pinv, noisy.transpose(0, 1))
        return memory, prior_cov, self._memory_kl(prior_mean, prior_cov, memory, prior_cov)

    def _memory_kl(self, prior_mean: Tensor, prior_cov: Tensor, mean: Tensor, cov: Tensor) -> Tensor:
        prior_diag = torch.diagonal(prior_cov, dim1=-2, dim2=-1)
        diag = torch.diagonal(cov, dim1=-2, dim2=-1)
        trace = self.code_size * torch.sum(diag / prior_diag, dim=-1)
        quadratic = torch.sum((mean - prior_mean) ** 2 / prior_diag.unsqueeze(-1), dim=(-2, -1))
        log_det = self.code_size * torch.sum(torch.log(prior_diag) - torch.log(diag), dim=-1)
        return torch.mean(trace + quadratic - self.code_size * self.memory_size + log_det)

    def read(self, codes: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Codes ``[T, B, C]`` -> read-out codes ``[T, B, C]`` and KL_w (scalar)."""
        mean_weights = self._address(codes, memory)
        std = torch.exp(0.5 * self.w_logvar)
        weights = mean_weights + std * torch.randn_like(std)  # one scalar for every entry
        kl_w = torch.mean(
            0.5 * torch.sum(torch.exp(self.w_logvar) + mean_weights**2 - 1 - self.w_logvar, -1), dim=(0, 1)
        )
        readout = torch.bmm(weights.transpose(0, 1), memory).transpose(0, 1)
        return readout + NOISE_STD * torch.randn_like(readout), kl_w


def bernoulli_nll(images: Tensor, probabilities: Tensor) -> Tensor:
    """Mean over images of −Σ_pixels [x log(p + ε) + (1 − x) log(1 − p + ε)] (``[N, 784]``)."""
    return -torch.mean(
        torch.sum(images * torch.log(probabilities + LOG_EPSILON), dim=1)
        + torch.sum((1 - images) * torch.log(1 - probabilities + LOG_EPSILON), dim=1)
    )


class ReferenceGPM(nn.Module):
    """The reference model: encoder, memory, decoder; :meth:`losses` is its forward pass."""

    def __init__(self, memory_size: int = 32, code_size: int = 100, channels: int = 16, steps: int = 7):
        super().__init__()
        self.code_size = code_size
        networks = NetworkConfig(kind="reference", channels=channels)
        self.encoder = ReferenceEncoder(IMAGE_SHAPE, code_size, networks)
        self.decoder = ReferenceDecoder(code_size, IMAGE_SHAPE, 1, networks)
        self.memory = ReferenceMemory(memory_size, code_size, steps)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[N, C]`` -> pixel probabilities ``[N, 784]`` (sigmoid of the decoder output)."""
        return torch.sigmoid(self.decoder(codes)).reshape(codes.shape[0], -1)

    def losses(self, images: Tensor, episode_length: int) -> dict[str, Tensor]:
        """Images ``[T·B, 784]`` in the code's layout -> reconstruction, kl_w, kl_m, autoencoder."""
        count = images.shape[0]
        codes = self.encoder(images.view(count, 1, 28, 28))
        codes_tb = codes.view(episode_length, count // episode_length, self.code_size)
        memory, _, kl_m = self.memory.write(codes_tb)
        readout, kl_w = self.memory.read(codes_tb, memory)
        reconstruction = self.decode(readout.reshape(count, self.code_size))
        autoencoder = self.decode(codes_tb.reshape(count, self.code_size))
        return {
            "reconstruction": bernoulli_nll(images, reconstruction),
            "kl_w": kl_w,
            "kl_m": kl_m,
            "autoencoder": bernoulli_nll(images, autoencoder),
        }


def code_layout(episode: Tensor) -> Tensor:
    """Suite episode ``[B, T, 1, 28, 28]`` -> the code's ``[T·B, 784]`` (episode b = rows b, B+b, …)."""
    return episode.transpose(0, 1).reshape(-1, episode[0, 0].numel()).contiguous()


class ReferenceTrainer:
    """One reference training step: forward, backward, clip 10, Adam(3e-4, weight decay 1e-4)."""

    def __init__(self, model: ReferenceGPM, lr: float = 3e-4, weight_decay: float = 1e-4, clip: float = 10.0):
        self.model = model
        self.clip = clip
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)

    def step(self, images: Tensor, episode_length: int) -> float:
        """Train on ``[T·B, 784]`` images; returns the total loss."""
        terms = self.model.losses(images, episode_length)
        total = terms["reconstruction"] + terms["kl_w"] + terms["autoencoder"]
        logged = {name: value.item() for name, value in terms.items()}  # the loop's .item() calls
        self.optimizer.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        return logged["reconstruction"] + logged["kl_w"] + logged["autoencoder"]


@torch.no_grad()
def public_test_loss(model: ReferenceGPM, batches: list[Tensor], episode_length: int, train_mode: bool = True) -> float:
    """The public test number: mean over full batches ``[T·B, 784]`` of reconstruction + KL_w.

    ``train_mode=True`` is what the public code does (it never calls ``eval()``: BatchNorm
    normalises with each test batch's own statistics); ``False`` uses the running statistics.
    Noises stay on either way. BatchNorm's running statistics are restored afterwards, so
    evaluating never changes the model.
    """
    was_training = model.training
    saved = {name: buffer.clone() for name, buffer in model.named_buffers()}
    model.train(train_mode)
    total = 0.0
    for images in batches:
        terms = model.losses(images, episode_length)
        total += float(terms["reconstruction"]) + float(terms["kl_w"])
    for name, buffer in model.named_buffers():
        buffer.copy_(saved[name])
    model.train(was_training)
    return total / max(len(batches), 1)


__all__ = ["ReferenceGPM", "ReferenceTrainer", "code_layout", "public_test_loss"]
