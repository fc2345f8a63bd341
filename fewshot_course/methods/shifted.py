"""Shifted views: any method, scored on the whole episode moved by a pixel or so, averaged.

Conv4's 2x2 max-pools keep one value of every 2x2 patch, so the network is not invariant to
moving an image by one pixel: the patches then pair other pixels, and the embedding, with it
the prediction, changes a little (aliasing; Zhang, "Making convolutional networks shift-invariant
again", ICML 2019). A character moved by a pixel is the same character, so every image of an
episode, support and query alike, can be moved by the same offset and the episode scored again;
averaging the query log-probabilities over a few offsets removes part of that noise
(test-time augmentation, 测试时增强), as ``SymmetricViews`` does over turns and mirror images.

Nothing is random. The offsets are whole pixels, the pixels moved in from outside the image are
background (0, as strokes are high), and those moved out are lost. Four shifts are the four
phases of the first max-pool, offsets (0 or 1, 0 or 1); nine take every offset from -1 to 1 in
each direction. It costs ``shifts`` times the method's fit and predict.

With symmetric views, ``with_test_time`` puts the shifts around them: each shifted episode is
turned and mirrored, so in its turned views the shift points in other directions, and the deeper
max-pools (strides 4 to 16) meet more phases than four shifts of every view would give them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from fewshot_course.methods.base import EpisodeViews, FewShotClassifier

#: (down, right) offsets in pixels, in order: the first four are the first max-pool's phases,
#: all nine every offset from -1 to 1.
SHIFTS: tuple[tuple[int, int], ...] = (
    (0, 0), (0, 1), (1, 0), (1, 1), (-1, -1), (-1, 0), (-1, 1), (0, -1), (1, -1))


def check_shifts(shifts: int) -> None:
    """Refuse a number of shifts other than 1, 4 or 9 (those that take whole grids in order)."""
    if shifts not in (1, 4, 9):
        raise ValueError(f"shifts = {shifts}; use 1 (no shift), 4 (offsets 0 and 1, the phases "
                         "of a 2x2 max-pool) or 9 (offsets -1, 0 and 1)")


def shifted_view(images: torch.Tensor, down: int, right: int) -> torch.Tensor:
    """``images`` [B, C, H, W] moved ``down`` rows and ``right`` columns (negative: up, left),
    filled with 0 where nothing moved in -> [B, C, H, W]."""
    height, width = images.shape[-2:]
    if abs(down) >= height or abs(right) >= width:
        raise ValueError(f"a shift of ({down}, {right}) pixels moves a {height}x{width} image "
                         "out of itself")
    padded = F.pad(images, (max(right, 0), max(-right, 0), max(down, 0), max(-down, 0)))
    top, left = max(-down, 0), max(-right, 0)
    return padded[..., top:top + height, left:left + width]


class ShiftedViews(EpisodeViews):
    """``method`` fitted and scored on ``shifts`` shifted views of each episode, averaged.

    Args:
        method: a fitted-per-task ``FewShotClassifier`` (ProtoNet, MAMLClassifier, or an
            ``AugmentedEpisodes`` around one).
        shifts: how many of ``SHIFTS`` to use, in order: 1 (the method alone), 4 or 9.

    ``fit`` keeps the support set; ``predict`` fits the method on each shifted view of the support
    set, scores the same view of the queries and returns the mean log-probabilities [Q, N].
    """

    def __init__(self, method: FewShotClassifier, *, shifts: int = 4) -> None:
        super().__init__()
        check_shifts(shifts)
        self.method, self.shifts = method, shifts

    def views_of(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return [partial(shifted_view, down=down, right=right)
                for down, right in SHIFTS[:self.shifts]]
