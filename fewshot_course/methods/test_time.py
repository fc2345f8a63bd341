"""Test-time settings in one call: the same trained weights, scored with more care.

The benchmark table of benchmarks/RESULTS.md scores each trained method plain and with four
test-time additions, none of which changes a weight:

* ``copies``: distorted copies of every support and query image (``AugmentedEpisodes``);
* ``views``: the whole episode turned and mirrored, views averaged (``SymmetricViews``);
* ``shifts``: the whole episode moved by a pixel, shifted views averaged (``ShiftedViews``);
* ``transductive``: ProtoNet's prototypes refined with the episode's own unlabelled queries
  (``TransductiveProtoNet``), a different protocol, reported apart.

``with_test_time`` wraps a method in the same order the benchmark uses (shifts around views around
copies), so the command line and the notebooks reproduce the table's rows with one call.
"""

from __future__ import annotations

from fewshot_course.methods.augmented import AugmentedEpisodes
from fewshot_course.methods.base import FewShotClassifier
from fewshot_course.methods.protonet import ProtoNet
from fewshot_course.methods.shifted import ShiftedViews, check_shifts
from fewshot_course.methods.symmetric import SymmetricViews, check_views
from fewshot_course.methods.transductive import TransductiveProtoNet


def with_test_time(method: FewShotClassifier, *, views: int = 1, shifts: int = 1,
                   copies: int = 0, strength: float = 0.5, seed: int = 0,
                   transductive: bool = False, **refinement: float) -> FewShotClassifier:
    """``method`` wrapped for evaluation; with the defaults, ``method`` itself.

    Args:
        method: a fitted-per-task ``FewShotClassifier`` (a ProtoNet for ``transductive``).
        views: 1, 4 or 8 symmetric views of each episode, log-probabilities averaged.
        shifts: 1, 4 or 9 shifted views of each episode, each then turned into its ``views``;
            all averaged.
        copies: distorted copies of every support and query image (0: none), at ``strength``,
            seeded by ``seed``.
        transductive: refine ProtoNet's prototypes with each episode's queries; ``refinement``
            may set ``TransductiveProtoNet``'s ``iterations`` and ``temperature``.

    Raises:
        ValueError: an unknown number of views or shifts, ``transductive`` for a method other
            than ProtoNet or together with ``copies`` or ``shifts``, or ``refinement`` without
            ``transductive``.
    """
    check_views(views)
    check_shifts(shifts)
    if transductive:
        if not isinstance(method, ProtoNet):
            raise ValueError(f"transductive refinement needs a ProtoNet (it moves prototypes), "
                             f"not a {type(method).__name__}")
        if copies or shifts > 1:
            raise ValueError("transductive refinement does not combine with distorted copies "
                             "or shifts; use one or the other (each with views, if you like)")
        return TransductiveProtoNet(method, views=views, **refinement)
    if refinement:
        raise ValueError(f"{sorted(refinement)} only apply with transductive=True")
    if copies:
        method = AugmentedEpisodes(method, copies=copies, strength=strength, seed=seed)
    if views > 1:
        method = SymmetricViews(method, views=views)
    if shifts > 1:
        # Outside the views: each view of a shifted episode is shifted in its own direction, so
        # the deeper max-pools see more phases (on two validation runs this order scored better).
        method = ShiftedViews(method, shifts=shifts)
    return method
