"""Corruptions are exact, batched and seeded; the denoising metrics on hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch

from memorybench.benchmarks.common.corruptions import (
    block,
    block_mask,
    corrupt,
    corruption_seed,
    format_level,
    gaussian,
    rotation,
    salt_and_pepper,
    salt_and_pepper_mask,
)
from memorybench.benchmarks.common.metrics import (
    cosine_similarity,
    hamming,
    nearest,
    pairwise_distances,
    success,
    success_threshold,
    wrong_pixels,
)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def binary_images(*lead: int, density: float = 0.3, seed: int = 1) -> torch.Tensor:
    return (torch.rand(*lead, 1, 28, 28, generator=generator(seed)) < density).float()


# ----------------------------------------------------------------------------- salt and pepper
@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.10, 0.15, 0.20, 1.0])
def test_salt_and_pepper_flips_exactly_the_requested_number_of_pixels(fraction):
    images = binary_images(3, 5)
    noisy = salt_and_pepper(images, fraction, generator())
    expected = math.floor(fraction * 784 + 1e-9)
    assert noisy.shape == images.shape
    assert torch.equal(hamming(noisy, images), torch.full((3, 5), expected))


def test_ten_percent_salt_and_pepper_is_78_of_784_pixels():
    mask = salt_and_pepper_mask((64, 1, 28, 28), 0.10, generator())
    assert torch.equal(mask.flatten(1).sum(1), torch.full((64,), 78))


def test_salt_and_pepper_random_value_changes_only_the_chosen_positions():
    images = binary_images(8)
    noisy = salt_and_pepper(images, 0.2, generator(3), mode="random_value")
    mask = salt_and_pepper_mask((8, 1, 28, 28), 0.2, generator(3)).unsqueeze(1)
    assert torch.equal(noisy[~mask], images[~mask])  # untouched outside the chosen positions
    assert set(noisy[mask].unique().tolist()) <= {0.0, 1.0}
    assert 0 < int(hamming(noisy, images).sum()) < 8 * 156  # about half of the 156 per image flip


def test_salt_and_pepper_positions_differ_between_images_and_follow_the_seed():
    images = torch.zeros(2, 1, 28, 28)
    first = salt_and_pepper(images, 0.1, generator(7))
    assert not torch.equal(first[0], first[1])
    assert torch.equal(first, salt_and_pepper(images, 0.1, generator(7)))
    assert not torch.equal(first, salt_and_pepper(images, 0.1, generator(8)))


def test_salt_and_pepper_treats_all_channels_of_a_pixel_alike():
    images = torch.zeros(4, 3, 8, 8)
    noisy = salt_and_pepper(images, 0.25, generator())
    assert torch.equal(noisy[:, 0], noisy[:, 1]) and torch.equal(noisy[:, 1], noisy[:, 2])
    assert torch.equal(noisy[:, 0].flatten(1).sum(1), torch.full((4,), 16.0))


# ----------------------------------------------------------------------------- block
@pytest.mark.parametrize("size", [1, 6, 12, 15, 28])
def test_block_covers_exactly_b_by_b_pixels_inside_the_frame(size):
    mask = block_mask((200, 1, 28, 28), size, generator())
    assert torch.equal(mask.flatten(1).sum(1), torch.full((200,), size * size))
    rows, cols = mask.any(2), mask.any(1)  # [N, H], [N, W]
    assert torch.equal(rows.sum(1), torch.full((200,), size))  # contiguous rows ...
    assert torch.equal(cols.sum(1), torch.full((200,), size))  # ... and columns: a square
    assert bool((mask == (rows.unsqueeze(2) & cols.unsqueeze(1))).all())


def test_block_positions_cover_the_whole_frame():
    mask = block_mask((2000, 1, 28, 28), 12, generator())
    assert bool(mask.any(0).all())  # every pixel is covered by some block: all positions reachable


def test_block_fills_the_square_and_keeps_the_rest():
    images = torch.ones(5, 1, 28, 28)
    occluded = block(images, 9, generator(2))
    mask = block_mask((5, 1, 28, 28), 9, generator(2)).unsqueeze(1)
    assert torch.equal(occluded[mask], torch.zeros(5 * 81))
    assert torch.equal(occluded[~mask], images[~mask])
    assert torch.equal(block(images, 9, generator(2), fill=0.5)[mask], torch.full((5 * 81,), 0.5))


def test_block_larger_than_the_image_is_an_error():
    with pytest.raises(ValueError, match="does not fit"):
        block(torch.zeros(1, 1, 8, 8), 9, generator())


# ----------------------------------------------------------------------------- rotation
def test_rotation_by_zero_degrees_is_the_identity():
    images = binary_images(2, 3)
    assert torch.equal(rotation(images, 0.0, generator()), images)
    grey = torch.rand(4, 3, 16, 16, generator=generator(5))
    assert torch.equal(rotation(grey, 0.0, generator(), binary=False), grey)


def test_rotation_by_90_degrees_moves_pixels_exactly():
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 2:6, 10:18] = 1.0  # a bar near the top
    turned = rotation(image, 90.0, generator(), sign="positive")
    assert int(turned.sum()) == 32
    back = rotation(turned, 90.0, generator(), sign="positive")
    back = rotation(back, 180.0, generator(), sign="positive")
    assert torch.equal(back, image)  # four quarter turns: the identity
    assert not torch.equal(turned, image)


def test_rotation_keeps_binary_images_binary_and_follows_the_seed():
    images = binary_images(6)
    turned = rotation(images, 30.0, generator(4))
    assert set(turned.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(turned, rotation(images, 30.0, generator(4)))
    positive = rotation(images, 30.0, generator(4), sign="positive")
    negative = rotation(images, -30.0, generator(4), sign="positive")
    assert not torch.equal(positive, negative)


def test_rotation_about_the_centre_keeps_a_centred_disc():
    y, x = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    disc = (((y - 13.5) ** 2 + (x - 13.5) ** 2) <= 64).float().view(1, 1, 28, 28)
    assert int(hamming(rotation(disc, 37.0, generator()), disc)) <= 8  # only rim pixels may change


# ----------------------------------------------------------------------------- gaussian
def test_gaussian_noise_is_clipped_rebinarized_and_zero_std_is_the_identity():
    images = binary_images(4)
    assert torch.equal(gaussian(images, 0.0, generator()), images)
    noisy = gaussian(images, 0.5, generator())
    assert set(noisy.unique().tolist()) <= {0.0, 1.0}
    flipped = hamming(noisy, images).float().mean() / 784
    assert 0.1 < float(flipped) < 0.25  # P(|N(0, 0.25)| > 0.5) = 0.159
    grey = gaussian(torch.full((2, 1, 8, 8), 0.5), 0.5, generator(), binary=False)
    assert float(grey.min()) >= 0.0 and float(grey.max()) <= 1.0


# ----------------------------------------------------------------------------- dispatch, seeds
def test_corrupt_dispatches_and_keeps_any_leading_shape():
    images = binary_images(2, 3)
    for kind, level in [("none", 0), ("salt_pepper", 0.15), ("block", 12), ("rotation", 30), ("gaussian", 0.5)]:
        assert corrupt(images, kind, level, generator()).shape == images.shape
    assert torch.equal(corrupt(images, "none", 0, generator()), images)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(images, "blur", 1, generator())


def test_levels_and_seeds_are_stable():
    assert [format_level(v) for v in (0.15, 12, 30.0, 0.5, 0.05)] == ["0.15", "12", "30", "0.5", "0.05"]
    assert corruption_seed(1234, "denoising", 16, "block", 12.0) == corruption_seed(
        1234, "denoising", 16, "block", 12.0
    )
    assert corruption_seed(1234, "denoising", 16, "block", 12.0) != corruption_seed(1234, "denoising", 8, "block", 12.0)


# ----------------------------------------------------------------------------- metrics
def test_hamming_and_success_threshold_on_hand_made_cases():
    clean = torch.zeros(3, 1, 28, 28)
    output = clean.clone()
    output[1].view(-1)[:7] = 1.0  # 7 wrong pixels: still a success (1 % of 784 = 7.84)
    output[2].view(-1)[:8] = 1.0  # 8 wrong pixels: a failure
    errors = hamming(output, clean)
    assert errors.tolist() == [0, 7, 8]
    assert success_threshold(784) == 7
    assert success(errors, 784).tolist() == [True, True, False]
    assert success_threshold(100, 0.05) == 5


def test_wrong_pixels_for_eight_bit_data_uses_the_tolerance():
    clean = torch.full((1, 3, 2, 2), 0.5)
    output = clean.clone()
    output[0, 0, 0, 0] = 0.65  # off by 0.15 > 0.1
    output[0, 1, 0, 0] = 0.55  # off by 0.05
    assert wrong_pixels(output, clean, binary=False, tolerance=0.1).tolist() == [1]


def test_distances_nearest_neighbours_and_cosine():
    written = torch.zeros(1, 3, 1, 2, 2)
    written[0, 1, 0, 0, 0] = 1.0
    written[0, 2] = 1.0
    samples = written[:, [2, 0]].clone()
    samples[0, 0, 0, 0, 0] = 0.0  # one pixel away from item 2
    distances = pairwise_distances(samples, written)
    assert distances.tolist() == [[[3.0, 4.0, 1.0], [0.0, 1.0, 4.0]]]
    value, index = nearest(samples, written)
    assert value.tolist() == [[1.0, 0.0]] and index.tolist() == [[2, 0]]
    within, _ = nearest(written, written, exclude_self=True)
    assert within.tolist() == [[1.0, 1.0, 3.0]]
    euclid = pairwise_distances(torch.zeros(1, 1, 1, 1, 2), torch.tensor([3.0, 4.0]).view(1, 1, 1, 1, 2), binary=False)
    assert float(euclid) == pytest.approx(5.0)
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert cosine_similarity(a, torch.tensor([[2.0, 0.0], [-1.0, -1.0]])).tolist() == pytest.approx([1.0, -1.0])
