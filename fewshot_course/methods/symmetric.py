"""Symmetric views: any method, scored on the whole episode turned and mirrored, averaged.

A character stays the same task when every image of the episode, support and query alike, is
rotated by the same quarter turn or mirrored: the eight symmetries of the square (the dihedral
group D4) give eight views of one episode. A network meta-trained with rotated and mirrored
characters as extra classes (Omniglot's ``rotations=True, mirrors=True``) has learned features for
all eight orientations, and its errors differ from view to view, so averaging the views' query
log-probabilities (test-time augmentation, 测试时增强) removes part of them.

Unlike ``AugmentedEpisodes``, nothing here is random: with all eight views the average is over a
group, so the prediction is exactly the same for an episode and for any turned or mirrored copy
of it (checked in tests/test_methods_symmetric.py). It costs ``views`` times the method's fit and
predict.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from fewshot_course.methods.base import EpisodeViews, FewShotClassifier

#: The eight symmetries of the square as (mirror left-right first, then quarter turns
#: counter-clockwise); the first four are the rotations alone.
SYMMETRIES: tuple[tuple[bool, int], ...] = tuple(
    (mirrored, turns) for mirrored in (False, True) for turns in range(4))


def check_views(views: int) -> None:
    """Refuse a number of views other than 1, 4 or 8 (those that take whole groups in order)."""
    if views not in (1, 4, 8):
        raise ValueError(f"views = {views}; use 1 (no symmetry), 4 (rotations) or 8 "
                         "(rotations and mirror images)")


def symmetric_view(images: torch.Tensor, mirrored: bool, turns: int) -> torch.Tensor:
    """``images`` [B, C, H, W] mirrored left to right (if ``mirrored``), then rotated by
    ``turns`` quarter turns counter-clockwise -> [B, C, H, W]; odd turns need H = W."""
    if turns % 2 and images.shape[-1] != images.shape[-2]:
        raise ValueError(f"symmetric views need square images, got {tuple(images.shape[-2:])}")
    if mirrored:
        images = images.flip(-1)
    return torch.rot90(images, turns, dims=(-2, -1))


class SymmetricViews(EpisodeViews):
    """``method`` fitted and scored on ``views`` symmetric views of each episode, averaged.

    Args:
        method: a fitted-per-task ``FewShotClassifier`` (ProtoNet, MAMLClassifier, or an
            ``AugmentedEpisodes`` around one).
        views: how many of ``SYMMETRIES`` to use, in order: 1 (the method alone), 4 (the
            rotations) or 8 (rotations and mirror images, the whole group).

    ``fit`` keeps the support set; ``predict`` fits the method on each view of the support set,
    scores the same view of the queries and returns the mean log-probabilities [Q, N].
    """

    def __init__(self, method: FewShotClassifier, *, views: int = 8) -> None:
        super().__init__()
        check_views(views)
        self.method, self.views = method, views

    def views_of(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return [partial(symmetric_view, mirrored=mirrored, turns=turns)
                for mirrored, turns in SYMMETRIES[:self.views]]
