"""Checks for 01_task_definition: a tiny episode sampler; nearest-neighbour accuracy on pixels."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence

import torch

from checks import passed
from fewshot_course.data import EpisodeSampler, Glyphs
from fewshot_course.episodes import Episode
from fewshot_course.methods import NearestNeighbour

SHAPES = [(5, 1, 2), (5, 5, 3), (3, 2, 1), (10, 1, 4)]


def episode_from_indices(dataset, support: Sequence[int], query: Sequence[int],
                         n_way: int) -> Episode:
    """An Episode from dataset indices grouped by class (K support, Q query images per class)."""
    k_shot, q_query = len(support) // n_way, len(query) // n_way

    def images(indices: Sequence[int]) -> torch.Tensor:
        return torch.stack([dataset[i][0] for i in indices])

    classes = tuple(int(dataset.labels[support[c * k_shot]]) for c in range(n_way))
    return Episode(images(support), torch.arange(n_way).repeat_interleave(k_shot),
                   images(query), torch.arange(n_way).repeat_interleave(q_query), classes)


def _synthetic_labels() -> list[int]:
    """12 classes of 8 to 15 images each, in shuffled order (class ids are not image positions)."""
    rng = random.Random(1234)
    labels = [c for c in range(12) for _ in range(8 + c % 8)]
    rng.shuffle(labels)
    return labels


def _check_one_draw(result, labels: Sequence[int], n_way: int, k_shot: int, q_query: int,
                    where: str) -> tuple[list[int], list[int]]:
    assert isinstance(result, tuple) and len(result) == 2, (
        f"{where}: return a pair (support_indices, query_indices), got {type(result).__name__}")
    support, query = (list(map(int, part)) for part in result)
    assert len(support) == n_way * k_shot, (
        f"{where}: {len(support)} support indices, expected N*K = {n_way * k_shot}")
    assert len(query) == n_way * q_query, (
        f"{where}: {len(query)} query indices, expected N*Q = {n_way * q_query}")
    assert all(0 <= i < len(labels) for i in support + query), f"{where}: an index is out of range"
    assert len(set(support)) == len(support) and len(set(query)) == len(query), (
        f"{where}: an image is used twice within the support or within the query set")
    assert not set(support) & set(query), (
        f"{where}: images {sorted(set(support) & set(query))} are in both the support and the "
        "query set; the query set must be new images")
    support_classes = []
    for c in range(n_way):
        block = {labels[i] for i in support[c * k_shot:(c + 1) * k_shot]}
        assert len(block) == 1, (f"{where}: support indices {c * k_shot}..{(c + 1) * k_shot - 1} "
                                 f"(label {c}) mix dataset classes {sorted(block)}")
        support_classes.append(block.pop())
        query_block = {labels[i] for i in query[c * q_query:(c + 1) * q_query]}
        assert query_block == {support_classes[-1]}, (
            f"{where}: the queries of label {c} come from classes {sorted(query_block)}, the "
            f"support of label {c} from class {support_classes[-1]}")
    assert len(set(support_classes)) == n_way, (
        f"{where}: the {n_way} labels must be {n_way} different classes, got {support_classes}")
    return support, query


def check_1(tiny_sampler: Callable) -> None:
    """tiny_sampler(labels, n_way, k_shot, q_query, rng) -> (support_indices, query_indices).

    Checks every draw (sizes, disjoint sets, one class per label, N different classes),
    reproducibility, that classes and images really are random, and that the episode it builds
    has the layout of the library's ``EpisodeSampler``.
    """
    assert callable(tiny_sampler), "answer_1 must be a function"
    glyphs = Glyphs("background")
    datasets = {"Glyphs('background')": [int(label) for label in glyphs.labels],
                "12 shuffled classes": _synthetic_labels()}
    for name, labels in datasets.items():
        for n_way, k_shot, q_query in SHAPES:
            for seed in range(10):
                where = f"{name}, {n_way}-way {k_shot}-shot {q_query}-query, seed {seed}"
                draw = _check_one_draw(tiny_sampler(labels, n_way, k_shot, q_query,
                                                    random.Random(seed)),
                                       labels, n_way, k_shot, q_query, where)
                again = tiny_sampler(labels, n_way, k_shot, q_query, random.Random(seed))
                assert list(map(list, again)) == list(map(list, draw)), (
                    f"{where}: the same rng seed must give the same episode (use only `rng`)")

    labels = datasets["12 shuffled classes"]
    for n_way, k_shot, q_query, problem in [(13, 1, 1, "13 ways from 12 classes"),
                                            (5, 5, 4, "K + Q = 9 with a class of 8 images")]:
        try:
            tiny_sampler(labels, n_way, k_shot, q_query, random.Random(0))
        except ValueError:
            pass
        else:
            raise AssertionError(f"{problem}: your sampler must raise ValueError")

    rng = random.Random(0)
    chosen, images_of_class_0 = Counter(), set()
    draws = 600
    for _ in range(draws):
        support, _query = tiny_sampler(labels, 5, 1, 1, rng)
        chosen.update(labels[i] for i in support)
        images_of_class_0.update(i for i in support if labels[i] == 0)
    expected = draws * 5 / 12
    assert set(chosen) == set(range(12)), f"classes never drawn: {set(range(12)) - set(chosen)}"
    assert all(0.6 * expected < count < 1.4 * expected for count in chosen.values()), (
        f"classes should be drawn uniformly (about {expected:.0f} times each in {draws} draws), "
        f"got {dict(sorted(chosen.items()))}")
    assert len(images_of_class_0) > 1, "the support image of a class must be drawn at random"

    for n_way, k_shot, q_query in SHAPES:
        support, query = tiny_sampler(datasets["Glyphs('background')"], n_way, k_shot, q_query,
                                      random.Random(0))
        mine = episode_from_indices(glyphs, support, query, n_way)
        library = EpisodeSampler(glyphs, n_way, k_shot, q_query, seed=0).sample()
        assert mine.support_x.shape == library.support_x.shape, (
            mine.support_x.shape, library.support_x.shape)
        assert mine.query_x.shape == library.query_x.shape, (mine.query_x.shape,
                                                             library.query_x.shape)
        assert torch.equal(mine.support_y, library.support_y.cpu()), (
            f"support labels {mine.support_y.tolist()} vs the library's "
            f"{library.support_y.tolist()}")
        assert torch.equal(torch.bincount(mine.query_y, minlength=n_way),
                           torch.bincount(library.query_y.cpu(), minlength=n_way))
    passed(f"your sampler draws valid, reproducible, uniformly random episodes with the library's "
           f"layout ({len(SHAPES)} shapes x 10 seeds x 2 datasets, {draws} draws for uniformity)")


def check_2(nearest_neighbour_accuracy: Callable[[Episode], float]) -> None:
    """nearest_neighbour_accuracy(episode) -> the fraction of queries whose nearest support image
    (Euclidean distance on pixels) has the right label; compared with the library's
    ``NearestNeighbour()`` on episodes of several shapes."""
    assert callable(nearest_neighbour_accuracy), "answer_2 must be a function"
    glyphs = Glyphs("background")
    accuracies = []
    for n_way, k_shot, q_query in [(5, 1, 5), (5, 5, 5), (20, 1, 2), (3, 4, 7)]:
        sampler = EpisodeSampler(glyphs, n_way, k_shot, q_query, seed=1)
        for _ in range(5):
            episode = sampler.sample()
            logits = NearestNeighbour().fit(episode.support_x, episode.support_y).predict(
                episode.query_x)
            expected = (logits.argmax(dim=1) == episode.query_y).float().mean().item()
            got = nearest_neighbour_accuracy(episode)
            got = float(got.item() if isinstance(got, torch.Tensor) else got)
            assert abs(got - expected) < 1e-6, (
                f"{n_way}-way {k_shot}-shot: your accuracy {got:.4f}, the library's "
                f"NearestNeighbour {expected:.4f}")
            accuracies.append(expected)
    passed(f"your nearest-neighbour accuracy equals the library's on {len(accuracies)} episodes "
           f"(mean {sum(accuracies) / len(accuracies):.3f})")
