"""fewshot_course.data.augment: shapes, range, determinism, identity at strength 0, real change."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fewshot_course.data import Distorted, EpisodeSampler, ImageDataset
from fewshot_course.data.augment import distort


def strokes(n: int = 6, size: int = 28) -> torch.Tensor:
    """[n, 1, size, size] images in [0, 1] with a bar and a cross of varying position."""
    images = torch.zeros(n, 1, size, size)
    for i in range(n):
        images[i, 0, 6 + i: 9 + i, 4:24] = 1.0
        images[i, 0, 4:24, 12 + i % 3: 14 + i % 3] = 0.7
    return images


def test_shape_dtype_and_range():
    images = strokes()
    out = distort(images, np.random.default_rng(0), strength=1.5)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_same_seed_same_images_other_seed_other_images():
    images = strokes()
    a = distort(images, np.random.default_rng(3))
    b = distort(images, np.random.default_rng(3))
    c = distort(images, np.random.default_rng(4))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_changes_every_image_and_keeps_the_ink():
    images = strokes()
    out = distort(images, np.random.default_rng(0))
    changed = (out - images).abs().flatten(1).amax(dim=1)
    assert (changed > 0.2).all()
    ink_ratio = out.flatten(1).sum(1) / images.flatten(1).sum(1)
    assert ((ink_ratio > 0.4) & (ink_ratio < 2.5)).all()  # distorted, not erased or smeared


def test_zero_strength_is_the_identity_and_leaves_the_input_alone():
    images = strokes()
    before = images.clone()
    assert torch.equal(distort(images, np.random.default_rng(0), strength=0.0), images)
    tiny = distort(images, np.random.default_rng(0), strength=1e-6)
    assert torch.allclose(tiny, images, atol=1e-4)  # the warp's grid is exact at pixel centres
    distort(images, np.random.default_rng(0))
    assert torch.equal(images, before)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="n, C, S, S"):
        distort(torch.zeros(2, 28, 28), np.random.default_rng(0))
    with pytest.raises(ValueError, match="strength"):
        distort(strokes(), np.random.default_rng(0), strength=-1.0)


def test_distorted_dataset_feeds_the_sampler_repeatably():
    images = strokes(12)
    labels = torch.arange(12) // 3
    dataset = ImageDataset(images, labels, ["a", "b", "c", "d"], ["x", "x", "y", "y"])

    def first_episode(seed: int):
        wrapped = Distorted(dataset, strength=1.0, seed=seed)
        return EpisodeSampler(wrapped, 3, 1, 2, seed=0).sample()

    one, again, other = first_episode(1), first_episode(1), first_episode(2)
    assert one.support_x.shape == (3, 1, 28, 28) and one.query_x.shape == (6, 1, 28, 28)
    assert torch.equal(one.support_x, again.support_x)
    assert one.classes == other.classes and not torch.equal(one.support_x, other.support_x)
    wrapped = Distorted(dataset, seed=0)
    assert wrapped.alphabets == dataset.alphabets and len(wrapped) == 12
    image, label = wrapped[4]
    assert image.shape == (1, 28, 28) and label == 1
