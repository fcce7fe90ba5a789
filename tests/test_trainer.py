"""Trainer: resume from checkpoints, NaN guard, failure isolation; episode sampling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from memorybench import memories
from memorybench.benchmarks.common.datasets import ImageSplit, create
from memorybench.benchmarks.common.episodes import EpisodeLengthError, fixed_episodes, random_episodes
from memorybench.benchmarks.common.trainer import DivergenceError, TrainConfig, adam, train, training_step
from memorybench.memories.protocol import LossTerms
from memorybench.runners.execute import execute_run
from memorybench.runners.suite import build_suite

SETTINGS = {"code_size": 4, "episode_length": 4, "network": "mlp", "hidden_size": 16}


def tiny_model() -> memories.MemoryModel:
    torch.manual_seed(0)
    return memories.create("vae", **SETTINGS)


def test_resume_continues_from_the_last_checkpoint_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    split = create("digits").split("train")
    config = TrainConfig(steps=4, batch_episodes=2, checkpoint_every=2)
    first = train(tiny_model(), split, config, tmp_path / "a", progress=False)
    assert first.start_step == 0 and first.steps == 4
    resumed = train(
        tiny_model(), split, TrainConfig(steps=6, batch_episodes=2, checkpoint_every=2), tmp_path / "a", progress=False
    )
    assert resumed.start_step == 4 and resumed.steps == 6
    straight = train(
        tiny_model(), split, TrainConfig(steps=6, batch_episodes=2, checkpoint_every=2), tmp_path / "b", progress=False
    )
    assert [round(r["loss"], 4) for r in resumed.curve] == [round(r["loss"], 4) for r in straight.curve]


def test_nan_loss_stops_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model()
    monkeypatch.setattr(model, "loss", lambda episode: LossTerms(total=(episode.sum() * float("nan")).requires_grad_()))
    with pytest.raises(DivergenceError, match="diverged at step 0"):
        train(model, create("digits").split("train"), TrainConfig(steps=3, batch_episodes=2), tmp_path, progress=False)


def test_training_step_steps_only_on_a_finite_loss() -> None:
    """The one training step (trainer, runtime benchmark, speed scripts): a finite loss moves the
    parameters; a non-finite one leaves them and says so."""
    model = tiny_model()
    optimizer = adam(model, 1e-2, 0.0)
    episode = (torch.rand(2, 4, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    before = [p.detach().clone() for p in model.parameters()]
    taken = training_step(model, optimizer, episode, grad_clip=10.0)
    assert taken.finite and taken.loss == pytest.approx(float(taken.terms.total.detach())) and taken.grad_norm > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    after = [p.detach().clone() for p in model.parameters()]
    nan = training_step(model, optimizer, episode, 10.0, lambda e: LossTerms(total=model.loss(e).total * float("nan")))
    assert not nan.finite and all(torch.equal(a, b) for a, b in zip(after, model.parameters()))


def test_a_failing_run_is_recorded_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = build_suite(
        {
            "name": "t",
            "memories": {"vae": SETTINGS},
            "datasets": ["digits"],
            "benchmarks": ["elbo"],
            "train": {"steps": 2, "batch_episodes": 2},
        }
    )
    spec = suite.runs[0]

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated failure")

    monkeypatch.setattr("memorybench.runners.training.train", explode)
    result = execute_run(spec, tmp_path / spec.run_id, progress=False)
    assert result["status"] == "failed" and "simulated failure" in result["error"]
    assert (tmp_path / spec.run_id / "run.log").read_text().count("Traceback") == 1


def test_episodes_are_distinct_items_and_reproducible() -> None:
    split = create("digits").split("train")
    a = random_episodes(split, 8, 5, torch.Generator().manual_seed(3))
    b = random_episodes(split, 8, 5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert all(len(set(row.tolist())) == 8 for row in a)
    fixed = fixed_episodes(split, 8, seed=1)
    assert fixed.shape == (len(split) // 8, 8) and fixed.flatten().unique().numel() == fixed.numel()
    with pytest.raises(EpisodeLengthError):
        fixed_episodes(split, len(split) + 1, seed=1)


def test_class_structured_episodes_draw_from_few_classes() -> None:
    split = create("digits").split("train")
    episodes = random_episodes(split, 10, 6, torch.Generator().manual_seed(0), classes_per_episode=2)
    for row in episodes:
        assert split.labels is not None and split.labels[row].unique().numel() <= 2


def test_class_structured_evaluation_episodes_are_seeded_and_stay_within_their_classes():
    from memorybench.benchmarks.common.episodes import fixed_class_episodes

    labels = torch.arange(40) // 10  # 4 classes of 10 items
    split = ImageSplit(torch.zeros(40, 1, 2, 2, dtype=torch.uint8), labels)
    episodes = fixed_class_episodes(split, 8, 2, seed=3, max_episodes=5)
    assert episodes.shape == (5, 8)
    assert torch.equal(episodes, fixed_class_episodes(split, 8, 2, seed=3, max_episodes=5))
    assert all(len(labels[row].unique()) <= 2 and len(row.unique()) == 8 for row in episodes)
    with pytest.raises(ValueError, match="labels"):
        fixed_class_episodes(ImageSplit(split.pixels, None), 8, 2, seed=3)
