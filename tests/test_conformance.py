"""Every registered memory passes the conformance kit (memories.conformance).

Plugin authors run the same checks with ``memorybench validate NAME``; a failing check names the
method that broke the protocol.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from torch import Tensor

from memorybench import memories
from memorybench.memories.conformance import CHECKS, ConformanceError, raised_at, run_checks
from memorybench.memories.protocol import LossTerms, MemoryModel
from memorybench.memories.vae import VAE, VAEConfig
from memorybench.runners.cli import main


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", memories.available())
def test_conformance(name: str, check: str) -> None:
    CHECKS[check](name)


# ---------------------------------------------------------------------------- failures name what broke
class _TupleNegELBO(VAE):
    """neg_elbo returns a tuple instead of a NegELBO."""

    def neg_elbo(self, episode: Tensor, queries: Tensor | None = None) -> Any:
        result = super().neg_elbo(episode, queries)
        return result.cond, result.full


class _NoSample(VAE):
    """Declares supports_generation but does not implement sample."""

    def sample(self, state: Any, n: int, steps: int = 0) -> Tensor:
        raise NotImplementedError


class _NoRead(MemoryModel):
    """Implements nothing but its networks (read is the base class's NotImplementedError)."""

    config_class = VAEConfig

    def __init__(
        self, config: VAEConfig, image_shape: tuple[int, int, int] = (1, 28, 28), likelihood: str = "bernoulli"
    ):
        super().__init__(config, image_shape, likelihood)
        self.decoder = self.make_decoder(config.code_size)

    def loss(self, episode: Tensor) -> LossTerms:
        return LossTerms(total=episode.sum() * 0)

    def write(self, episode: Tensor) -> Any:
        return None


class _TensorRead(VAE):
    """read returns the mean image tensor instead of a Reconstruction."""

    def read(self, queries: Tensor, state: Any) -> Any:
        return super().read(queries, state).mean


@pytest.fixture
def broken_models() -> Iterator[None]:
    """The broken models above, registered for one test only."""
    models = {"tuple_nelbo": _TupleNegELBO, "no_sample": _NoSample, "no_read": _NoRead, "tensor_read": _TensorRead}
    for name, model in models.items():
        memories.register_memory(name)(model)
    yield
    for name in models:
        memories.MEMORIES._entries.pop(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("tuple_nelbo", "tuple_nelbo.neg_elbo returned tuple, expected NegELBO"),
        ("no_sample", "no_sample.sample is not implemented (NotImplementedError) but supports_generation is True"),
        (
            "no_read",
            "no_read.read is not implemented (NotImplementedError): every model implements it (MemoryModel protocol)",
        ),
        ("tensor_read", "tensor_read.read returned Tensor, expected Reconstruction"),
    ],
)
def test_a_failing_check_names_the_method_and_what_is_wrong(broken_models: None, name: str, message: str) -> None:
    with pytest.raises(ConformanceError) as error:
        CHECKS["shapes"](name)
    assert str(error.value) == message


def test_validate_reports_the_broken_method(broken_models: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "tuple_nelbo"]) == 1
    out = capsys.readouterr().out
    assert "FAIL tuple_nelbo  shapes                 tuple_nelbo.neg_elbo returned tuple, expected NegELBO" in out
    assert "ok   tuple_nelbo  backward" in out


def test_an_exception_is_reported_with_the_models_line() -> None:
    results = run_checks("vae", {"code_size": 6})
    assert all(result.passed for result in results)
    error = ZeroDivisionError("division by zero")
    try:
        _ = 1 / 0
    except ZeroDivisionError as raised:
        error = raised
    assert f"(at {__file__} line" in raised_at(error)


def test_validate_set_is_validated_like_a_suite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "gpm", "--set", "memory_sise=8"]) == 2
    assert "did you mean 'memory_size'" in capsys.readouterr().err
    assert main(["validate", "gpm", "--set", "memory_size=0"]) == 2
    assert "memories.gpm.memory_size" in capsys.readouterr().err
    assert main(["validate", "vae", "--set", "episode_length=3"]) == 2
    assert "the checks choose the episode length" in capsys.readouterr().err


def test_validate_names_a_broken_plugin_as_broken(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = "fake:broken from distribution broken-dist: ImportError: no module named x"
    monkeypatch.setitem(memories.MEMORIES.plugin_errors, "broken_model", problem)
    assert main(["validate", "broken_model"]) == 2
    error = capsys.readouterr().err
    assert "memory 'broken_model' is a broken plugin" in error and "ImportError" in error
    assert main(["validate", "no_such_model"]) == 2
    assert "unknown memory or benchmark 'no_such_model'" in capsys.readouterr().err


def test_validate_runs_the_benchmark_checks_on_a_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "elbo"]) == 0
    out = capsys.readouterr().out
    assert "ok   elbo         run" in out and "all conformance checks passed" in out
