"""Evaluation: per-episode accuracies, their mean and the 95% confidence interval."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from fewshot_course.data import EpisodeSampler, ImageDataset
from fewshot_course.episodes import Episode
from fewshot_course.evaluation import Result, evaluate
from fewshot_course.maml import MAML
from fewshot_course.methods import MAMLClassifier, NearestNeighbour
from fewshot_course.models import Conv4


def noisy_classes(n_classes: int = 8, per_class: int = 6, noise: float = 1.5, seed: int = 0):
    """Each class: one random pattern plus noise (nearest-neighbour gets some, not all, right)."""
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.rand(n_classes, 1, 12, 12, generator=generator)
    images = patterns.repeat_interleave(per_class, 0)
    images = (images + noise * torch.rand(images.shape, generator=generator)).clamp(0, 1)
    return ImageDataset(images, torch.arange(n_classes).repeat_interleave(per_class),
                        [f"class {c}" for c in range(n_classes)])


def test_ci95_is_1_96_sample_std_over_sqrt_n():
    accuracies = [0.2, 0.4, 0.4, 0.6, 1.0, 0.8]
    result = Result.from_accuracies(accuracies)
    assert result.mean == pytest.approx(np.mean(accuracies))
    assert result.ci95 == pytest.approx(1.96 * np.std(accuracies, ddof=1) / math.sqrt(6))
    assert result.episodes == 6 and result.accuracies == tuple(accuracies)
    assert str(result) == f"accuracy 0.567 ± {result.ci95:.3f} (95% CI, 6 episodes)"
    with pytest.raises(ValueError, match="at least 2 episodes"):
        Result.from_accuracies([0.5])


def test_evaluate_scores_each_episode_by_its_query_accuracy_and_is_seeded():
    dataset = noisy_classes()
    sampler = EpisodeSampler(dataset, 4, 1, 3, seed=7)
    result = evaluate(NearestNeighbour(), sampler, 30, device="cpu")

    replay = EpisodeSampler(dataset, 4, 1, 3, seed=7)
    expected = []
    for _ in range(30):
        episode = replay.sample()
        distances = torch.cdist(episode.query_x.flatten(1), episode.support_x.flatten(1))
        predicted = episode.support_y[distances.argmin(dim=1)]
        expected.append(float((predicted == episode.query_y).float().mean()))
    assert result.accuracies == pytest.approx(expected)
    assert 0 < result.mean < 1 and result.ci95 > 0  # a real spread across episodes
    assert re.fullmatch(r"accuracy \d\.\d{3} ± \d\.\d{3} \(95% CI, 30 episodes\)", str(result))

    again = evaluate(NearestNeighbour(), EpisodeSampler(dataset, 4, 1, 3, seed=7), 30,
                     device="cpu")
    assert again == result


def test_evaluate_accepts_a_fixed_list_of_episodes_and_checks_the_count():
    episodes = [EpisodeSampler(noisy_classes(), 3, 2, 2, seed=1).sample() for _ in range(3)]
    assert evaluate(NearestNeighbour(), episodes, 3, device="cpu").episodes == 3
    with pytest.raises(ValueError, match="only 3 were given"):
        evaluate(NearestNeighbour(), episodes, 4, device="cpu")
    with pytest.raises(ValueError, match="at least 2 episodes"):
        evaluate(NearestNeighbour(), episodes, 1, device="cpu")


def test_maml_adapts_under_evaluation_and_the_training_mode_is_restored():
    torch.manual_seed(0)
    method = MAMLClassifier(MAML(Conv4(n_way=3, hidden=4, image_size=16), inner_lr=0.5))
    method.train()
    episode = Episode(torch.rand(3, 1, 16, 16), torch.tensor([0, 1, 2]), torch.rand(3, 1, 16, 16),
                      torch.tensor([0, 1, 2]), (0, 1, 2))
    result = evaluate(method, [episode, episode], 2, device="cpu")
    with torch.no_grad():
        adapted = method.maml.adapt(episode.support_x, episode.support_y)
        logits = method.maml.predict(adapted, episode.query_x)
    expected = float((logits.argmax(1) == episode.query_y).float().mean())
    assert result.accuracies == (expected, expected)
    assert method.training
