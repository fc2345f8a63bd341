"""Turn a labelled dataset into N-way K-shot episodes (tasks), the unit of few-shot learning.

One episode: draw N classes without replacement, then from each class K support images and Q
query images, all distinct. Labels are re-numbered 0..N-1 in the order the classes were drawn,
so a model never sees the dataset's own class ids.

The class -> image-indices lookup is built once per dataset (and shared by every sampler on it);
an episode then costs one random matrix, one argsort and one gather.
"""

from __future__ import annotations

import numbers
import weakref
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from fewshot_course.episodes import Episode, EpisodeBatch

__all__ = ["EpisodeSampler", "ClassIndex", "class_index"]


class ClassIndex:
    """Which images belong to which class, as a padded matrix (built once per dataset).

    Attributes:
        class_ids: [C] the dataset's class ids that have at least one image, ascending.
        counts: [C] number of images of each of those classes.
        members: [C, max(counts)] image indices of each class, padded with -1.
    """

    def __init__(self, labels: np.ndarray) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        order = np.argsort(labels, kind="stable")
        self.class_ids, starts, self.counts = np.unique(labels[order], return_index=True,
                                                         return_counts=True)
        width = int(self.counts.max()) if len(self.counts) else 0
        self.members = np.full((len(self.class_ids), width), -1, dtype=np.int64)
        column = np.arange(len(labels)) - np.repeat(starts, self.counts)
        row = np.repeat(np.arange(len(self.class_ids)), self.counts)
        self.members[row, column] = order
        self.valid = self.members >= 0


_INDEX_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def dataset_labels(dataset) -> np.ndarray:
    """Per-image class ids: ``dataset.labels`` (or ``.targets``), else read image by image."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = getattr(dataset, "targets", None)
    if labels is None:
        labels = [int(dataset[i][1]) for i in range(len(dataset))]
    if isinstance(labels, torch.Tensor):
        return labels.detach().cpu().numpy().astype(np.int64)
    return np.asarray(labels, dtype=np.int64)


def class_index(dataset) -> ClassIndex:
    """The ``ClassIndex`` of ``dataset``, computed on first use and then reused."""
    try:
        return _INDEX_CACHE[dataset]
    except KeyError:
        pass
    except TypeError:  # not weak-referenceable or not hashable: build without caching
        return ClassIndex(dataset_labels(dataset))
    index = ClassIndex(dataset_labels(dataset))
    _INDEX_CACHE[dataset] = index
    return index


def images_at(dataset, indices: np.ndarray) -> torch.Tensor:
    """Images of ``dataset`` at ``indices`` stacked into [n, C, H, W] (fast path: ``images_at``)."""
    if hasattr(dataset, "images_at"):
        return dataset.images_at(indices)
    return torch.stack([torch.as_tensor(dataset[int(i)][0]) for i in indices])


def _class_name(dataset, class_id: int) -> str:
    names = getattr(dataset, "class_names", None)
    if names is not None and 0 <= class_id < len(names):
        return f"{class_id} ({names[class_id]!r})"
    return str(class_id)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class EpisodeSampler:
    """Draws N-way K-shot Q-query episodes from a labelled dataset, reproducibly.

    Args:
        dataset: anything with ``len``, ``__getitem__ -> (image, label)`` and preferably
            ``.labels`` (per-image class ids) and ``images_at(indices)`` (fast batched reads);
            every dataset of ``fewshot_course.data`` has both.
        n_way: N, classes per episode (at least 2, at most the number of classes).
        k_shot: K, support images per class. Either an int (balanced episodes), or for
            class-imbalanced episodes a per-class list ``[K_0, ..., K_{N-1}]`` (label i gets K_i
            shots) or a tuple ``(low, high)``: every class draws its K uniformly in low..high
            (inclusive) in every episode. A tuple always means a range, a list always per-class.
        q_query: Q, query images per class (at least 1; the query set stays balanced).
        seed: the same seed gives the same episodes on any machine (NumPy's PCG64 stream). None
            draws the seed from torch's global generator, so ``seed_everything`` fixes it too.

    Episodes from ``sample()``: ``support_x`` [N*K, C, H, W], ``support_y`` [N*K] in 0..N-1,
    ``query_x`` [N*Q, C, H, W], ``query_y`` [N*Q], both sets grouped by class in label order,
    and ``classes`` (the dataset's class ids, label i is class ``classes[i]``). With imbalanced
    ``k_shot`` the support set is the same flat set with labels: ``support_x`` [sum_i K_i, C, H, W]
    and ``support_y`` [sum_i K_i], label i repeated K_i times, which every method of the course
    accepts (prototypes and losses are computed per label).

    Iterating over the sampler yields ``sample()`` forever; take what you need, for example
    ``itertools.islice(sampler, 100)``.

    Raises:
        ValueError: n_way < 2 or above the number of classes, k_shot or q_query < 1, or a class
            with fewer than (largest) K + Q images; the message names the numbers and the fix.
    """

    def __init__(self, dataset, n_way: int, k_shot: int | Sequence[int] | tuple[int, int],
                 q_query: int, *, seed: int | None = None) -> None:
        self.dataset = dataset
        self.n_way, self.k_shot, self.q_query = n_way, k_shot, q_query
        self._shots_fixed, self._shot_range = self._parse_shots(n_way, k_shot)
        if not _is_int(q_query) or q_query < 1:
            raise ValueError(f"q_query = {q_query!r}: each class needs at least 1 query image; "
                             "use q_query >= 1")
        self.index = class_index(dataset)
        n_classes = len(self.index.class_ids)
        if n_way > n_classes:
            raise ValueError(f"n_way = {n_way} but the dataset has only {n_classes} classes; use "
                             f"n_way <= {n_classes} or a dataset with more classes")
        most_shots = max(self._shots_fixed) if self._shot_range is None else self._shot_range[1]
        needed = most_shots + q_query
        too_small = np.flatnonzero(self.index.counts < needed)
        if len(too_small):
            smallest = too_small[np.argsort(self.index.counts[too_small], kind="stable")][:3]
            names = ", ".join(f"class {_class_name(dataset, int(self.index.class_ids[c]))} has "
                              f"{int(self.index.counts[c])}" for c in smallest)
            raise ValueError(
                f"k_shot + q_query = {most_shots} + {q_query} = {needed} images per class, but "
                f"{len(too_small)} of {n_classes} classes have fewer ({names}); lower k_shot and "
                f"q_query so that they sum to at most {int(self.index.counts.min())}, or leave "
                "those classes out (add images, or sample from a subset of classes)")
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    @staticmethod
    def _parse_shots(n_way, k_shot) -> tuple[list[int], tuple[int, int] | None]:
        if not _is_int(n_way) or n_way < 2:
            raise ValueError(f"n_way = {n_way!r}: an episode needs at least 2 classes; "
                             "use n_way >= 2")
        if _is_int(k_shot):
            if k_shot < 1:
                raise ValueError(f"k_shot = {k_shot}: each class needs at least 1 support image; "
                                 "use k_shot >= 1")
            return [int(k_shot)] * n_way, None
        if isinstance(k_shot, tuple):
            if len(k_shot) != 2 or not all(_is_int(k) for k in k_shot):
                raise ValueError(f"k_shot = {k_shot!r}: a tuple means a (low, high) range of "
                                 "shots; pass two ints, or a list for per-class shots")
            low, high = int(k_shot[0]), int(k_shot[1])
            if not 1 <= low <= high:
                raise ValueError(f"k_shot range ({low}, {high}) needs 1 <= low <= high")
            return [high] * n_way, (low, high)
        shots = list(k_shot)
        if len(shots) != n_way or not all(_is_int(k) for k in shots):
            raise ValueError(f"per-class k_shot needs {n_way} ints (one per way); got {k_shot!r}")
        if min(shots) < 1:
            raise ValueError(f"per-class k_shot {shots}: every class needs at least 1 support "
                             "image; use values >= 1")
        return [int(k) for k in shots], None

    @property
    def balanced(self) -> bool:
        """True when every episode has K support images for every class."""
        return self._shot_range is None and len(set(self._shots_fixed)) == 1

    def _episode_indices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        index, rng, n, q = self.index, self._rng, self.n_way, self.q_query
        rows = rng.choice(len(index.class_ids), size=n, replace=False)
        if self._shot_range is None:
            shots = self._shots_fixed
        else:
            shots = rng.integers(self._shot_range[0], self._shot_range[1] + 1, size=n).tolist()
        keys = rng.random((n, index.members.shape[1]))
        keys[~index.valid[rows]] = 2.0  # padding sorts last
        order = np.argsort(keys, axis=1, kind="stable")[:, :max(shots) + q]
        chosen = np.take_along_axis(index.members[rows], order, axis=1)
        if self.balanced:
            k = shots[0]
            support = chosen[:, :k].reshape(-1)
            query = chosen[:, k:k + q].reshape(-1)
        else:
            support = np.concatenate([chosen[c, :shots[c]] for c in range(n)])
            query = np.concatenate([chosen[c, shots[c]:shots[c] + q] for c in range(n)])
        return rows, np.asarray(shots), support, query

    def sample(self) -> Episode:
        """One episode (see the class docstring for shapes)."""
        rows, shots, support, query = self._episode_indices()
        labels = np.arange(self.n_way)
        # NumPy, not torch.repeat_interleave: that one costs milliseconds on a busy machine
        return Episode(
            support_x=images_at(self.dataset, support),
            support_y=torch.from_numpy(np.repeat(labels, shots)),
            query_x=images_at(self.dataset, query),
            query_y=torch.from_numpy(np.repeat(labels, self.q_query)),
            classes=tuple(int(c) for c in self.index.class_ids[rows]),
        )

    def sample_batch(self, batch_size: int) -> EpisodeBatch:
        """``batch_size`` episodes stacked along a leading task dimension (for vmapped inner loops).

        Works for balanced and per-class-list ``k_shot`` (every episode then has the same label
        layout); a ``(low, high)`` range gives episodes of different sizes, which cannot be
        stacked, so it raises ``ValueError``: call ``sample()`` once per task instead.
        """
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size = {batch_size!r}: use batch_size >= 1")
        if self._shot_range is not None:
            raise ValueError(f"sample_batch stacks episodes of equal shape, but k_shot = "
                             f"{self.k_shot} draws a different number of shots in every episode; "
                             "call sample() once per task, or pass k_shot as an int or a "
                             "per-class list")
        # The same draws as batch_size calls of sample(), gathered in one read and reshaped,
        # so the batch equals EpisodeBatch.stack of those episodes without a copy per task.
        draws = [self._episode_indices() for _ in range(batch_size)]
        support = images_at(self.dataset, np.concatenate([d[2] for d in draws]))
        query = images_at(self.dataset, np.concatenate([d[3] for d in draws]))
        labels = np.arange(self.n_way)
        support_y = np.repeat(labels, draws[0][1])
        query_y = np.repeat(labels, self.q_query)
        return EpisodeBatch(
            support_x=support.view(batch_size, len(support_y), *support.shape[1:]),
            support_y=torch.from_numpy(np.tile(support_y, (batch_size, 1))),
            query_x=query.view(batch_size, len(query_y), *query.shape[1:]),
            query_y=torch.from_numpy(np.tile(query_y, (batch_size, 1))),
            classes=tuple(tuple(int(c) for c in self.index.class_ids[d[0]]) for d in draws),
        )

    def __iter__(self) -> Iterator[Episode]:
        while True:
            yield self.sample()

    def __repr__(self) -> str:
        return (f"EpisodeSampler({type(self.dataset).__name__}, n_way={self.n_way}, "
                f"k_shot={self.k_shot}, q_query={self.q_query}, seed={self.seed})")
