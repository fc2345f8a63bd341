"""The unit of few-shot learning: an episode (one task) and a batch of episodes."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass(frozen=True)
class Episode:
    """One N-way K-shot task.

    Attributes:
        support_x: [N*K, C, H, W] support images (for imbalanced episodes: [sum_c K_c, C, H, W]).
        support_y: [N*K] support labels in 0..N-1, grouped by class in label order.
        query_x: [N*Q, C, H, W] query images.
        query_y: [N*Q] query labels in 0..N-1.
        classes: the dataset's class ids, in label order (label i is dataset class classes[i]).
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: tuple[int, ...]

    @property
    def n_way(self) -> int:
        return len(self.classes)

    def to(self, device: torch.device | str) -> Episode:
        """The same episode with every tensor on ``device``."""
        return _move(self, device)


@dataclass(frozen=True)
class EpisodeBatch:
    """B episodes of identical shape stacked along a leading task dimension.

    Attributes:
        support_x: [B, N*K, C, H, W]
        support_y: [B, N*K]
        query_x: [B, N*Q, C, H, W]
        query_y: [B, N*Q]
        classes: B tuples of dataset class ids, one per task.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: tuple[tuple[int, ...], ...]

    def __len__(self) -> int:
        return self.support_x.shape[0]

    def __getitem__(self, task: int) -> Episode:
        return Episode(self.support_x[task], self.support_y[task], self.query_x[task],
                       self.query_y[task], self.classes[task])

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @classmethod
    def stack(cls, episodes: list[Episode]) -> EpisodeBatch:
        """Stack episodes of equal shapes (a rectangular, balanced meta-batch)."""
        if not episodes:
            raise ValueError("cannot stack an empty list of episodes")
        shapes = {(e.support_x.shape, e.query_x.shape) for e in episodes}
        if len(shapes) != 1:
            raise ValueError(f"episodes of different shapes cannot be stacked: {sorted(shapes)}; "
                             "imbalanced episodes must be processed one at a time")
        return cls(torch.stack([e.support_x for e in episodes]),
                   torch.stack([e.support_y for e in episodes]),
                   torch.stack([e.query_x for e in episodes]),
                   torch.stack([e.query_y for e in episodes]),
                   tuple(e.classes for e in episodes))

    def to(self, device: torch.device | str) -> EpisodeBatch:
        """The same batch with every tensor on ``device``."""
        return _move(self, device)


def _move(obj, device):
    moved = {f.name: getattr(obj, f.name).to(device) for f in fields(obj)
             if isinstance(getattr(obj, f.name), torch.Tensor)}
    return replace(obj, **moved)
