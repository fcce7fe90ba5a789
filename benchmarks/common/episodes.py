"""Episodes: index tensors ``[E, T]`` into a split, reproducible from a seed.

Training draws fresh random episodes of a split (:func:`random_episodes`); evaluation uses :func:`fixed_episodes`, a seeded
permutation of the split cut into consecutive chunks of T, so every model in a suite sees the
same test episodes (paired comparisons) and each test item is scored once. Timing needs no
data: :func:`random_pixel_episodes` makes images of random pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor

from memorybench.benchmarks.common.datasets import ImageSplit


class EpisodeLengthError(ValueError):
    """An episode needs more distinct items than the split holds."""


def check_episode_length(split_size: int, episode_length: int, where: str) -> None:
    if episode_length > split_size:
        raise EpisodeLengthError(
            f"{where}: episode_length {episode_length} is larger than the split ({split_size} images)"
        )


def random_episodes(
    split: ImageSplit, episode_length: int, count: int, generator: torch.Generator, classes_per_episode: int = 0
) -> Tensor:
    """``count`` episodes of ``episode_length`` distinct items: indices ``[count, T]``.

    With ``classes_per_episode > 0`` (needs labels) each episode draws its items from that many
    randomly chosen classes only (class-structured episodes).
    """
    n = len(split)
    check_episode_length(n, episode_length, "episodes")
    if classes_per_episode <= 0 or split.labels is None:
        # Random keys + top-k: T distinct items per episode without a loop over episodes.
        keys = torch.rand(count, n, generator=generator)
        return keys.topk(episode_length, dim=1).indices
    labels = split.labels
    classes = labels.unique()
    chosen = torch.rand(count, len(classes), generator=generator).topk(classes_per_episode, dim=1).indices
    allowed = (labels.unsqueeze(0) == classes[chosen].unsqueeze(-1)).any(1)  # [count, n]
    if int(allowed.sum(1).min()) < episode_length:
        raise EpisodeLengthError(
            f"episodes: {classes_per_episode} classes hold fewer than episode_length={episode_length} items"
        )
    keys = torch.rand(count, n, generator=generator).masked_fill(~allowed, -1.0)
    return keys.topk(episode_length, dim=1).indices


def fixed_episodes(split: ImageSplit, episode_length: int, seed: int, max_episodes: int = 0) -> Tensor:
    """Evaluation episodes ``[E, T]``: a seeded permutation cut into chunks (partial chunk dropped)."""
    check_episode_length(len(split), episode_length, "evaluation episodes")
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    count = len(split) // episode_length
    if max_episodes > 0:
        count = min(count, max_episodes)
    return order[: count * episode_length].view(count, episode_length)


def fixed_class_episodes(
    split: ImageSplit, episode_length: int, classes_per_episode: int, seed: int, max_episodes: int = 0
) -> Tensor:
    """Class-structured evaluation episodes ``[E, T]``: each of T distinct items from
    ``classes_per_episode`` classes, reproducible from ``seed``; E = ``max_episodes`` or, when 0,
    as many as would cover the split once."""
    if split.labels is None:
        raise EpisodeLengthError("classes_per_episode needs a dataset with labels; this split has none")
    check_episode_length(len(split), episode_length, "evaluation episodes")
    count = max_episodes if max_episodes > 0 else len(split) // episode_length
    return random_episodes(split, episode_length, count, torch.Generator().manual_seed(seed), classes_per_episode)


def held_out_queries(split: ImageSplit, episodes: Tensor, count: int, seed: int, same_classes: bool = False) -> Tensor:
    """``count`` items per episode that the episode does not hold: indices ``[E, count]``.

    ``same_classes`` (needs labels) draws them from the classes the episode was drawn from (the
    Kanerva Machine's held-out-character setting), else from the whole split; reproducible from
    ``seed``. Raises :class:`EpisodeLengthError` when an episode has fewer candidates than ``count``.
    """
    n = len(split)
    written = torch.zeros(len(episodes), n, dtype=torch.bool).scatter_(1, episodes, True)
    allowed = ~written
    where = "held-out queries"
    if same_classes:
        if split.labels is None:
            raise EpisodeLengthError(f"{where} from the same classes need a dataset with labels; this split has none")
        episode_labels = split.labels[episodes]  # [E, T]
        allowed &= (split.labels.view(1, n, 1) == episode_labels.unsqueeze(1)).any(-1)
        where = "held-out queries from the episode's classes"
    fewest = int(allowed.sum(1).min())
    if fewest < count:
        raise EpisodeLengthError(f"{where}: an episode has {fewest} candidates, fewer than heldout_queries={count}")
    keys = torch.rand(len(episodes), n, generator=torch.Generator().manual_seed(seed)).masked_fill(~allowed, -1.0)
    return keys.topk(count, dim=1).indices


def random_pixel_episodes(
    batch: int, length: int, image_shape: tuple[int, ...], binary: bool, generator: torch.Generator
) -> Tensor:
    """Episodes of random images ``[B, T, C, H, W]`` (no dataset; for timing): binary pixels, or
    k/255 values for 8-bit data."""
    shape = (batch, length, *image_shape)
    if binary:
        return (torch.rand(shape, generator=generator) < 0.5).float()
    return torch.randint(0, 256, shape, generator=generator).float() / 255.0
