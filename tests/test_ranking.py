"""Bootstrap rank intervals: separated models get single ranks, models within noise are tied."""

from __future__ import annotations

import numpy as np

from memorybench.reports.ranking import _ranks, _resampled_ranks


def test_competition_ranks_follow_the_direction():
    means = np.array([[3.0, 1.0, 2.0, 1.0]])
    assert _ranks(means, higher=False).tolist() == [[4, 1, 3, 1]]
    assert _ranks(means, higher=True).tolist() == [[1, 3, 2, 3]]


def test_separated_models_get_one_rank_and_models_within_shared_noise_are_tied():
    rng = np.random.default_rng(0)
    episode_difficulty = rng.normal(0, 10, size=(2, 200, 1))  # shared by every model: cancels in pairs
    own_noise = rng.normal(0, 1, size=(2, 200, 3))
    values = episode_difficulty + own_noise + np.array([0.0, 0.05, 5.0])  # A ≈ B, C far behind
    ranks = _resampled_ranks(values, higher=False, resamples=500, rng=np.random.default_rng(1))
    low, high = np.percentile(ranks, [2.5, 97.5], axis=0)
    assert low[2] == high[2] == 3  # C: always last
    assert low[0] == low[1] == 1 and high[0] == high[1] == 2  # A and B: tied for first
    # the pairing matters: unpaired resampling (each model its own draw) would blur C too
    assert (ranks[:, :2] <= 2).all()
