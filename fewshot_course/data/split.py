"""Meta-train / validation / test splits over classes, never over images.

Few-shot evaluation asks: how well does the learner do on classes it never saw? So the classes,
not the images, are split. Splitting by alphabet is the stricter test: the test characters also
come from writing systems never seen in meta-training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fewshot_course.data.sampler import class_index, dataset_labels, images_at

__all__ = ["ClassSubset", "split_classes"]


class ClassSubset:
    """The images of some classes of a dataset, with the classes renumbered 0..len(classes)-1.

    Args:
        dataset: any course dataset.
        classes: the dataset's class ids to keep; new class i is ``classes[i]``.

    Has the dataset protocol: ``len``, ``__getitem__``, ``labels``, ``class_names``,
    ``class_alphabets``/``alphabets`` (when the dataset has them), ``class_groups`` and
    ``images_at``. ``indices`` are the kept images' indices in ``dataset``.
    """

    def __init__(self, dataset, classes: Sequence[int]) -> None:
        self.dataset = dataset
        self.classes = [int(c) for c in classes]
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be distinct")
        labels = dataset_labels(dataset)
        new_label = np.full(max(self.classes + [int(labels.max())]) + 1, -1, dtype=np.int64)
        new_label[self.classes] = np.arange(len(self.classes))
        relabelled = new_label[labels]
        self.indices = torch.from_numpy(np.flatnonzero(relabelled >= 0))
        self.labels = torch.from_numpy(relabelled[self.indices.numpy()])
        names = getattr(dataset, "class_names", None)
        self.class_names = ([names[c] for c in self.classes] if names is not None
                            else [str(c) for c in self.classes])
        groups = getattr(dataset, "class_groups", None)
        self.class_groups = [groups[c] for c in self.classes] if groups is not None else list(
            range(len(self.classes)))
        alphabets = getattr(dataset, "class_alphabets", None)
        if alphabets is not None:
            self.class_alphabets = [alphabets[c] for c in self.classes]
            self.alphabets = list(dict.fromkeys(self.class_alphabets))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, _ = self.dataset[int(self.indices[index])]
        return image, int(self.labels[index])

    def images_at(self, indices) -> torch.Tensor:
        """Images [n, C, H, W] float32 at ``indices`` of this subset."""
        return images_at(self.dataset, self.indices.numpy()[np.asarray(indices, dtype=np.int64)])

    def __repr__(self) -> str:
        return (f"ClassSubset({type(self.dataset).__name__}, {len(self)} images, "
                f"{self.num_classes} classes)")


def split_classes(dataset, fractions: Sequence[float] = (0.6, 0.2, 0.2), *,
                  by: str = "character", seed: int = 0) -> list[ClassSubset]:
    """Split a dataset's classes into disjoint parts (meta-train, validation, test, ...).

    Args:
        dataset: any course dataset.
        fractions: the share of each part (summing to 1), or whole numbers of units per part
            (for example ``(1200, 100, 323)`` characters, the usual Omniglot split).
        by: ``"character"`` splits classes (rotations of one character, its ``class_groups``,
            stay together) or ``"alphabet"`` splits whole alphabets (needs ``class_alphabets``).
        seed: the units are shuffled with this seed before they are cut.

    Returns:
        One ``ClassSubset`` per entry of ``fractions``, disjoint in classes (and in alphabets
        with by="alphabet").

    Raises:
        ValueError: unknown ``by``, no alphabets, fractions not summing to 1 (or counts to more
            than there are units), or a part that would be empty.
    """
    present = class_index(dataset).class_ids.tolist()
    if by == "character":
        groups = getattr(dataset, "class_groups", None)
        unit_of = {c: (groups[c] if groups is not None else c) for c in present}
    elif by == "alphabet":
        alphabets = getattr(dataset, "class_alphabets", None)
        if alphabets is None:
            raise ValueError(f"{type(dataset).__name__} has no alphabets; use by='character'")
        unit_of = {c: alphabets[c] for c in present}
    else:
        raise ValueError(f"by = {by!r}; use 'character' or 'alphabet'")
    units = list(dict.fromkeys(unit_of.values()))
    counts = _part_sizes(fractions, len(units), by)
    order = np.random.default_rng(seed).permutation(len(units))
    parts, start = [], 0
    for count in counts:
        chosen = {units[i] for i in order[start:start + count]}
        parts.append(ClassSubset(dataset, [c for c in present if unit_of[c] in chosen]))
        start += count
    return parts


def _part_sizes(fractions: Sequence[float], n_units: int, by: str) -> list[int]:
    if len(fractions) < 1 or any(f <= 0 for f in fractions):
        raise ValueError(f"fractions = {tuple(fractions)}: give one positive share per part")
    if all(float(f).is_integer() and f >= 1 for f in fractions) and sum(fractions) > 1:
        counts = [int(f) for f in fractions]
        if sum(counts) > n_units:
            raise ValueError(f"{sum(counts)} {by}s requested in {tuple(counts)}, but the dataset "
                             f"has {n_units}; lower the counts")
        return counts
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions = {tuple(fractions)} sum to {sum(fractions):g}; they must "
                         "sum to 1 (or be whole numbers of units)")
    edges = np.round(np.cumsum([0.0, *fractions]) * n_units).astype(int)
    counts = np.diff(edges).tolist()
    if min(counts) < 1:
        raise ValueError(f"splitting {n_units} {by}s by {tuple(fractions)} leaves a part empty "
                         f"({counts}); use larger fractions or by='character'")
    return counts
