"""EpisodeSampler: shapes, labels, disjointness, determinism, imbalance and every bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from fewshot_course.data import EpisodeSampler, ImageDataset
from fewshot_course.data.sampler import class_index
from fewshot_course.episodes import Episode, EpisodeBatch


def indexed_dataset(counts: list[int]) -> ImageDataset:
    """Class c has counts[c] images; every image carries its own index in two pixels."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    images = torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8)
    index = torch.arange(len(labels))
    images[:, 0, 0, 0] = (index % 256).to(torch.uint8)
    images[:, 0, 0, 1] = (index // 256).to(torch.uint8)
    return ImageDataset(images, labels, [f"char{c}" for c in range(len(counts))])


def image_indices(images: torch.Tensor) -> list[int]:
    pixels = (images[:, 0, 0, :2] * 255).round().long()
    return (pixels[:, 0] + 256 * pixels[:, 1]).tolist()


@pytest.fixture(scope="module")
def dataset() -> ImageDataset:
    return indexed_dataset([20] * 50)


def check_episode(dataset: ImageDataset, episode: Episode, n: int, shots: list[int], q: int):
    assert episode.support_x.shape == (sum(shots), 1, 4, 4)
    assert episode.query_x.shape == (n * q, 1, 4, 4)
    assert episode.support_x.dtype == torch.float32
    assert episode.support_y.tolist() == [c for c in range(n) for _ in range(shots[c])]
    assert episode.query_y.tolist() == [c for c in range(n) for _ in range(q)]
    assert len(episode.classes) == n and len(set(episode.classes)) == n
    support, query = image_indices(episode.support_x), image_indices(episode.query_x)
    assert len(set(support)) == len(support) and len(set(query)) == len(query)
    assert not set(support) & set(query)
    labels = dataset.labels
    for images, ys in ((support, episode.support_y), (query, episode.query_y)):
        true_classes = [int(labels[i]) for i in images]
        assert true_classes == [episode.classes[y] for y in ys.tolist()]


def test_episode_shapes_labels_and_disjoint_sets(dataset):
    sampler = EpisodeSampler(dataset, 5, 3, 4, seed=1)
    for episode in itertools.islice(sampler, 20):
        check_episode(dataset, episode, 5, [3] * 5, 4)


def test_twenty_way_five_shot_fifteen_query_uses_every_image_of_a_class(dataset):
    episode = EpisodeSampler(dataset, 20, 5, 15, seed=0).sample()
    check_episode(dataset, episode, 20, [5] * 20, 15)


def test_same_seed_same_episode_bytes_and_other_seed_differs(dataset):
    a = [EpisodeSampler(dataset, 5, 2, 3, seed=7).sample() for _ in range(2)]
    b = EpisodeSampler(dataset, 5, 2, 3, seed=7)
    first, second = b.sample(), b.sample()
    for x, y in ((a[0], first), (a[1], first)):
        assert x.classes == y.classes
        assert x.support_x.numpy().tobytes() == y.support_x.numpy().tobytes()
        assert x.query_x.numpy().tobytes() == y.query_x.numpy().tobytes()
    assert first.classes != second.classes  # the stream moves on
    other = EpisodeSampler(dataset, 5, 2, 3, seed=8).sample()
    assert other.classes != first.classes


def test_seed_none_follows_torch_global_seed(dataset):
    torch.manual_seed(3)
    first = EpisodeSampler(dataset, 5, 1, 1).sample()
    torch.manual_seed(3)
    again = EpisodeSampler(dataset, 5, 1, 1).sample()
    assert first.classes == again.classes
    assert torch.equal(first.support_x, again.support_x)


def test_classes_are_drawn_uniformly_enough(dataset):
    sampler = EpisodeSampler(dataset, 5, 1, 1, seed=0)
    seen = np.zeros(50)
    for episode in itertools.islice(sampler, 400):
        seen[list(episode.classes)] += 1
    # 2000 draws over 50 classes: 40 each on average; every class turns up
    assert seen.min() > 15 and seen.max() < 70


def test_sample_batch_stacks_tasks_and_moves_to_device(dataset):
    batch = EpisodeSampler(dataset, 4, 2, 3, seed=0).sample_batch(6)
    assert isinstance(batch, EpisodeBatch) and len(batch) == 6
    assert batch.support_x.shape == (6, 8, 1, 4, 4)
    assert batch.query_y.shape == (6, 12)
    for task in batch:
        check_episode(dataset, task, 4, [2] * 4, 3)
    moved = batch.to("cpu")
    assert moved.support_x.device.type == "cpu"
    reference = EpisodeSampler(dataset, 4, 2, 3, seed=0)
    stacked = EpisodeBatch.stack([reference.sample() for _ in range(6)])
    assert batch.classes == stacked.classes
    for field in ("support_x", "support_y", "query_x", "query_y"):
        assert torch.equal(getattr(batch, field), getattr(stacked, field))


def test_per_class_shots_give_a_flat_labelled_support_set(dataset):
    shots = [1, 4, 2, 5, 3]
    sampler = EpisodeSampler(dataset, 5, shots, 2, seed=0)
    assert not sampler.balanced
    for episode in itertools.islice(sampler, 5):
        check_episode(dataset, episode, 5, shots, 2)
        assert torch.bincount(episode.support_y).tolist() == shots
    batch = sampler.sample_batch(3)  # same layout in every task, so it stacks
    assert batch.support_x.shape == (3, sum(shots), 1, 4, 4)


def test_shot_range_varies_per_class_and_refuses_to_stack(dataset):
    sampler = EpisodeSampler(dataset, 5, (1, 6), 3, seed=0)
    layouts = set()
    for episode in itertools.islice(sampler, 30):
        counts = torch.bincount(episode.support_y, minlength=5).tolist()
        assert all(1 <= k <= 6 for k in counts)
        check_episode(dataset, episode, 5, counts, 3)
        layouts.add(tuple(counts))
    assert len(layouts) > 10
    with pytest.raises(ValueError, match=r"\(1, 6\).*sample\(\) once per task"):
        sampler.sample_batch(2)


def test_class_index_is_built_once_per_dataset(dataset):
    a = EpisodeSampler(dataset, 5, 1, 1, seed=0)
    b = EpisodeSampler(dataset, 3, 2, 2, seed=1)
    assert a.index is b.index is class_index(dataset)


def test_plain_torch_dataset_without_the_fast_path():
    labels = torch.arange(6).repeat_interleave(4)
    images = torch.arange(24, dtype=torch.float32).view(24, 1, 1, 1).expand(24, 1, 2, 2)
    sampler = EpisodeSampler(TensorDataset(images, labels), 3, 2, 2, seed=0)
    episode = sampler.sample()
    support_ids = episode.support_x[:, 0, 0, 0].long()
    assert [int(labels[i]) for i in support_ids] == [episode.classes[y] for y in
                                                     episode.support_y.tolist()]


def test_imbalanced_dataset_sizes_are_respected():
    data = indexed_dataset([3, 9, 4, 30])
    for episode in itertools.islice(EpisodeSampler(data, 4, 1, 2, seed=0), 20):
        check_episode(data, episode, 4, [1] * 4, 2)


@pytest.mark.parametrize(("args", "message"), [
    ((51, 1, 1), r"n_way = 51 .* only 50 classes"),
    ((1, 1, 1), r"n_way = 1.*at least 2"),
    ((5, 0, 1), r"k_shot = 0.*k_shot >= 1"),
    ((5, 1, 0), r"q_query = 0.*q_query >= 1"),
    ((5, [1, 2], 1), r"needs 5 ints"),
    ((5, [1, 0, 1, 1, 1], 1), r"at least 1"),
    ((5, (3, 2), 1), r"1 <= low <= high"),
    ((5, (1, 2, 3), 1), r"\(low, high\)"),
])
def test_bad_arguments_name_the_numbers(dataset, args, message):
    with pytest.raises(ValueError, match=message):
        EpisodeSampler(dataset, *args, seed=0)


def test_too_few_images_names_the_class_and_the_fix():
    data = indexed_dataset([20, 20, 6, 20])
    message = r"5 \+ 2 = 7 .*class 2 \('char2'\) has 6.*sum to at most 6"
    with pytest.raises(ValueError, match=message):
        EpisodeSampler(data, 3, 5, 2, seed=0)
    with pytest.raises(ValueError, match=r"class 2"):
        EpisodeSampler(data, 3, (1, 5), 2, seed=0)  # the largest shot counts
    EpisodeSampler(data, 3, 4, 2, seed=0)


def test_bad_batch_size(dataset):
    with pytest.raises(ValueError, match="batch_size"):
        EpisodeSampler(dataset, 2, 1, 1, seed=0).sample_batch(0)
