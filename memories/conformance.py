"""Conformance checks every registered memory model must pass (also for plugin authors).

Run them on any model with ``memorybench validate NAME`` or, from pytest, parametrize
:func:`run_checks` over ``memories.available()`` (see ``tests/test_conformance.py``). Each check
raises :class:`ConformanceError` with a message saying what broke: explicit raises, not ``assert``
statements, so the checks hold under ``python -O`` too.

The checks call the model through :class:`Checked`, which names the method that broke the
protocol: a method left unimplemented (``gpm.sample is not implemented (NotImplementedError) but
supports_generation is True``) or a wrong return type (``my_model.neg_elbo returned tuple,
expected NegELBO``). Any other exception is reported with the line of the model's code that raised it.
"""

from __future__ import annotations

import dataclasses
import io
import math
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from memorybench import memories
from memorybench.memories.likelihoods import Reconstruction
from memorybench.memories.protocol import LossTerms, MemoryModel, NegELBO

B, T, N_SAMPLES = 3, 4, 2


class ConformanceError(AssertionError):
    """A model broke a conformance check (an AssertionError, so pytest reports it as a failure)."""


def require(condition: Any, message: str) -> None:
    """Raise :class:`ConformanceError` with ``message`` unless ``condition`` holds (unlike ``assert``,
    never skipped under ``python -O``)."""
    if not condition:
        raise ConformanceError(message)


def small_settings(name: str, settings: Mapping[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """Small, fast settings for ``name`` (only keys its config actually has), then the user's
    ``settings`` (``validate --set``), then the check's ``overrides`` (e.g. its episode length)."""
    wanted = {"code_size": 8, "episode_length": T, "memory_size": 4, "network": "mlp", "hidden_size": 32, "channels": 4}
    fields = {f.name for f in dataclasses.fields(memories.MEMORIES.get(name).config_class)}
    small = {k: v for k, v in {**wanted, **overrides}.items() if k in fields}
    return {**small, **(settings or {}), **{k: v for k, v in overrides.items() if k in fields}}


def build(name: str, seed: int = 0, settings: Mapping[str, Any] | None = None, **overrides: Any) -> Checked:
    """Model ``name`` with small settings, in float64, seeded, wrapped in :class:`Checked`."""
    torch.manual_seed(seed)
    model = memories.create(name, image_shape=(1, 28, 28), **small_settings(name, settings, **overrides)).double()
    return Checked(model, name)


# method -> (the type it must return, its name in messages); None: anything (a memory state)
RETURNS: dict[str, tuple[type | None, str]] = {
    "loss": (LossTerms, "LossTerms"),
    "write": (None, "a memory state"),
    "read": (Reconstruction, "Reconstruction"),
    "neg_elbo": (NegELBO, "NegELBO"),
    "sample": (torch.Tensor, "Tensor"),
    "energy": (torch.Tensor, "Tensor"),
    "iterative_read": (list, "list[Reconstruction]"),
}
REQUIRED = ("loss", "write", "read", "neg_elbo")  # sample too when supports_generation


class Checked:
    """A model seen through the protocol: calls of the methods of :data:`RETURNS` fail with a
    :class:`ConformanceError` naming the method when it is not implemented or returns the wrong
    type; everything else (parameters, ``train()``, ``config``, …) is the model's own."""

    def __init__(self, model: MemoryModel, name: str):
        self.model, self.name = model, name

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self.model, attribute)
        return self._protocol_method(attribute, value) if attribute in RETURNS else value

    def train(self, mode: bool = True) -> Checked:
        self.model.train(mode)
        return self

    def eval(self) -> Checked:
        self.model.eval()
        return self

    def _protocol_method(self, method: str, bound: Callable[..., Any]) -> Callable[..., Any]:
        expected, expected_name = RETURNS[method]
        where = f"{self.name}.{method}"

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                value = bound(*args, **kwargs)
            except NotImplementedError as error:
                raise ConformanceError(
                    f"{where} is not implemented (NotImplementedError{_why(error)}){self._needed(method)}"
                ) from None
            if expected is not None and not isinstance(value, expected):
                raise ConformanceError(f"{where} returned {type(value).__name__}, expected {expected_name}")
            _check_fields(where, value)
            return value

        return call

    def _needed(self, method: str) -> str:
        if method == "sample":
            return " but supports_generation is True"
        if method in REQUIRED:
            return ": every model implements it (MemoryModel protocol)"
        return ""


def _why(error: BaseException) -> str:
    return f": {error}" if str(error) else ""


def _check_fields(where: str, value: Any) -> None:
    """The parts of a returned record have the types the benchmarks rely on."""
    if isinstance(value, LossTerms):
        require(
            isinstance(value.total, torch.Tensor), f"{where}().total is {type(value.total).__name__}, expected Tensor"
        )
        odd = [k for k, v in value.terms.items() if not isinstance(v, torch.Tensor)]
        require(not odd, f"{where}().terms[{odd[0]!r}] is not a Tensor" if odd else "")
    elif isinstance(value, NegELBO):
        require(isinstance(value.cond, torch.Tensor), f"{where}().cond is {type(value.cond).__name__}, expected Tensor")
        require(value.full is None or isinstance(value.full, torch.Tensor), f"{where}().full must be a Tensor or None")
        odd = [k for k, v in value.terms.items() if not isinstance(v, torch.Tensor)]
        require(not odd, f"{where}().terms[{odd[0]!r}] is not a Tensor" if odd else "")
    elif isinstance(value, Reconstruction):
        mean = value.mean
        require(isinstance(mean, torch.Tensor), f"{where}().mean is {type(mean).__name__}, expected a Tensor property")
    elif isinstance(value, list):
        odd = [type(item).__name__ for item in value if not isinstance(item, Reconstruction)]
        require(not odd, f"{where} returned a list holding {odd[0]}, expected Reconstruction" if odd else "")


def episode(
    batch: int = B,
    length: int = T,
    seed: int = 0,
    *,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    density: float = 0.3,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A seeded random binary episode ``[batch, length, *image_shape]`` with ``density`` ones."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, length, *image_shape, generator=generator) < density).to(dtype)


def codes(
    batch: int = B, length: int = T, size: int = 8, seed: int = 0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Seeded standard-normal item codes ``[batch, length, size]``."""
    return torch.randn(batch, length, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _seeded(fn: Callable[[], Any], seed: int = 7) -> Any:
    torch.manual_seed(seed)
    return fn()


def check_shapes(name: str, settings: Mapping[str, Any] | None = None) -> None:
    model = build(name, settings=settings).eval()
    x = episode()
    with torch.no_grad():
        terms = model.loss(x)
        require(terms.total.dim() == 0 and torch.isfinite(terms.total), "loss().total must be a finite scalar")
        for key, value in terms.terms.items():
            require(value.dim() == 0, f"loss term {key!r} must be a scalar")
        state = model.write(x)
        recon = model.read(x, state)
        require(recon.mean.shape == x.shape, f"read().mean is {list(recon.mean.shape)}, expected {list(x.shape)}")
        require(recon.log_prob(x).shape == (B, T), "read().log_prob(x) must be [B, T]")
        nelbo = model.neg_elbo(x)
        require(nelbo.cond.shape == (B, T), f"neg_elbo().cond is {list(nelbo.cond.shape)}, expected [B, T]")
        require((nelbo.full is not None) == model.has_memory_prior, "neg_elbo().full must exist iff has_memory_prior")
        queries = x[:, :2]
        require(model.neg_elbo(x, queries).cond.shape == (B, 2), "neg_elbo(episode, queries) must be [B, Tq]")
        trajectory = model.iterative_read(queries, state, steps=3)
        require(len(trajectory) == 3 and trajectory[-1].mean.shape == queries.shape, "iterative_read shapes")
        if model.supports_generation:
            samples = model.sample(state, N_SAMPLES, steps=1)
            require(samples.shape == (B, N_SAMPLES, 1, 28, 28), f"sample() is {list(samples.shape)}")
        require(model.energy(queries, state).shape == (B, 2), "energy() must be [B, Tq]")
        latent = model.latent_memory
        if latent is not None:
            item_codes = codes(size=model.config.code_size)
            latent_state = latent.write(item_codes)
            for sample in (True, False):
                out = latent.read(item_codes[:, :2], latent_state, sample=sample)
                require(out.shape == (B, 2, model.config.code_size), "memory.read must return [B, Tq, C]")
            mean_1 = latent.read(item_codes, latent_state, sample=False)
            mean_2 = latent.read(item_codes, latent_state, sample=False)
            require(torch.allclose(mean_1, mean_2), "memory.read(sample=False) must be deterministic")


def check_edge_sizes(name: str, settings: Mapping[str, Any] | None = None) -> None:
    for batch, length in ((1, T), (B, 1)):
        model = build(name, settings=settings, episode_length=length).eval()
        with torch.no_grad():
            values = model.neg_elbo(episode(batch, length)).cond
        require(values.shape == (batch, length) and torch.isfinite(values).all(), f"B={batch}, T={length} failed")


def check_backward(name: str, settings: Mapping[str, Any] | None = None) -> None:
    """Every parameter gets a finite gradient, non-zero at the first step or, for a branch behind a
    zero-initialised layer (a residual correction that starts at zero), after one SGD step."""
    model = build(name, settings=settings).train()
    model.loss(episode()).total.backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())
    ]
    require(not missing, f"no finite gradient reaches: {', '.join(missing)}")
    zero = {n for n, p in model.named_parameters() if p.requires_grad and p.grad is not None and not p.grad.any()}
    if zero:
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        model.zero_grad()
        model.loss(episode()).total.backward()
        zero = {n for n, p in model.named_parameters() if n in zero and (p.grad is None or not p.grad.any())}
    require(not zero, f"the gradient is exactly zero for: {', '.join(sorted(zero))}")


def check_determinism(name: str, settings: Mapping[str, Any] | None = None) -> None:
    a, b = build(name, 3, settings), build(name, 3, settings)
    x = episode()
    loss_a = _seeded(lambda: a.loss(x).total)
    loss_b = _seeded(lambda: b.loss(x).total)
    require(torch.equal(loss_a, loss_b), "same seed must give the same model and loss")


def check_save_load(name: str, settings: Mapping[str, Any] | None = None) -> None:
    source, target = build(name, 1, settings).eval(), build(name, 2, settings).eval()
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    target.load_state_dict(torch.load(buffer, weights_only=True))
    x = episode()
    with torch.no_grad():
        before = _seeded(lambda: source.neg_elbo(x).cond)
        after = _seeded(lambda: target.neg_elbo(x).cond)
    require(torch.allclose(before, after), "a state_dict round trip must reproduce neg_elbo")


def check_episode_independence(name: str, settings: Mapping[str, Any] | None = None) -> None:
    model = build(name, settings=settings).eval()
    x = episode()
    changed = x.clone()
    changed[0] = 1.0 - changed[0]
    with torch.no_grad():
        original = _seeded(lambda: model.neg_elbo(x).cond)
        perturbed = _seeded(lambda: model.neg_elbo(changed).cond)
    require(not torch.allclose(original[0], perturbed[0]), "changing episode 0 must change its own values")
    require(torch.allclose(original[1:], perturbed[1:], atol=1e-8), "changing episode 0 changed other episodes")


def check_kl_sanity(name: str, settings: Mapping[str, Any] | None = None) -> None:
    model = build(name, settings=settings).eval()
    with torch.no_grad():
        nelbo = _seeded(lambda: model.neg_elbo(episode()))
    for key, value in nelbo.terms.items():
        if key.startswith("kl"):
            require((value >= -1e-6).all(), f"KL term {key!r} is negative")
    if "reconstruction" in nelbo.terms:
        require((nelbo.cond >= nelbo.terms["reconstruction"] - 1e-6).all(), "NELBO-cond below its reconstruction term")
    if nelbo.full is not None:
        require((nelbo.full >= nelbo.cond - 1e-6).all(), "NELBO-full below NELBO-cond")


def check_learns(name: str, settings: Mapping[str, Any] | None = None, steps: int = 30) -> None:
    model = build(name, settings=settings).train()
    x = episode()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss = model.loss(x).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    require(all(map(math.isfinite, losses)), "training produced a non-finite loss")
    require(sum(losses[-5:]) < sum(losses[:5]), f"{steps} Adam steps on one episode batch did not lower the loss")


CHECKS: dict[str, Callable[..., None]] = {  # each called as check(name, settings=None)
    "shapes": check_shapes,
    "edge_sizes": check_edge_sizes,
    "backward": check_backward,
    "determinism": check_determinism,
    "save_load": check_save_load,
    "episode_independence": check_episode_independence,
    "kl_sanity": check_kl_sanity,
    "learns": check_learns,
}


@dataclass
class CheckResult:
    check: str
    passed: bool
    message: str = ""


def run_checks(
    name: str, settings: Mapping[str, Any] | None = None, checks: Mapping[str, Callable[..., None]] | None = None
) -> list[CheckResult]:
    """Every check on registered model ``name`` (with config ``settings`` over the small test
    settings); failures are collected, not raised. ``checks`` replaces the model checks (the
    benchmark kit runs its own through here)."""
    results = []
    for check, function in (CHECKS if checks is None else checks).items():
        try:
            function(name, settings)
            results.append(CheckResult(check, True))
        except ConformanceError as error:
            results.append(CheckResult(check, False, str(error)))
        except Exception as error:
            results.append(CheckResult(check, False, f"{type(error).__name__}: {error}{raised_at(error)}"))
    return results


KIT_FILES = {Path(__file__).resolve(), Path(__file__).resolve().parents[1] / "benchmarks" / "conformance.py"}


def raised_at(error: BaseException) -> str:
    """`` (at FILE line N)``: the innermost frame outside this kit and torch, i.e. the model's own
    line that raised ("" when there is none)."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if Path(frame.filename).resolve() not in KIT_FILES and "/torch/" not in frame.filename
    ]
    return f" (at {frames[-1].filename} line {frames[-1].lineno}, in {frames[-1].name})" if frames else ""
