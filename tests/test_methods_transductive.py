"""fewshot_course.methods.transductive: soft k-means refinement of prototypes over the queries."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import assert_invariant_to_turning, random_strokes
from fewshot_course.methods import ProtoNet, SymmetricViews, TransductiveProtoNet
from fewshot_course.models import Conv4


def strokes(n: int, seed: int) -> torch.Tensor:
    """[n, 1, 28, 28] sparse stroke-like images in {0, 1}, float64."""
    return random_strokes(n, seed, torch.float64)


def conv_protonet(seed: int = 0) -> ProtoNet:
    torch.manual_seed(seed)
    return ProtoNet(Conv4(hidden=8).features).double()


def points(*xy: tuple[float, float]) -> torch.Tensor:
    """2-D points as [P, 1, 1, 2] "images", which ``ProtoNet(nn.Flatten())`` embeds as they are."""
    return torch.tensor(xy, dtype=torch.float64).view(len(xy), 1, 1, 2)


def refined_by_hand(support: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor,
                    iterations: int, temperature: float) -> torch.Tensor:
    """The module docstring's update, class by class: support [S, D], queries [Q, D]."""
    n_way = int(labels.max()) + 1
    centres = torch.stack([support[labels == n].mean(0) for n in range(n_way)])
    for _ in range(iterations):
        log_p = (-torch.cdist(queries, centres).pow(2)).log_softmax(-1)
        weights = (log_p / temperature).softmax(-1)
        centres = torch.stack([
            (support[labels == n].sum(0) + (weights[:, n, None] * queries).sum(0))
            / ((labels == n).sum() + weights[:, n].sum())
            for n in range(n_way)])
    return (-torch.cdist(queries, centres).pow(2)).log_softmax(-1)


@pytest.mark.parametrize(("iterations", "temperature"), [(1, 1.0), (3, 0.5), (4, 2.0)])
def test_refinement_matches_the_update_computed_by_hand(iterations, temperature):
    support = torch.randn(7, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 2, 2, 1])  # imbalanced: 3, 2 and 2 examples
    queries = torch.randn(9, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    method = TransductiveProtoNet(ProtoNet(nn.Flatten()), iterations=iterations,
                                  temperature=temperature)
    scores = method.fit(support.view(7, 1, 1, 3), labels).predict(queries.view(9, 1, 1, 3))
    expected = refined_by_hand(support, labels, queries, iterations, temperature)
    torch.testing.assert_close(scores, expected, rtol=1e-12, atol=1e-12)


def test_without_refinement_it_is_protonet_or_the_symmetric_views():
    net = conv_protonet()
    support_x, support_y = strokes(6, 0), torch.tensor([0, 1, 2, 0, 1, 2])
    query_x = strokes(5, 1)
    with torch.no_grad():
        plain = TransductiveProtoNet(net, iterations=0).fit(support_x, support_y).predict(query_x)
        protonet = net.fit(support_x, support_y).predict(query_x).log_softmax(-1)
        eight = TransductiveProtoNet(net, iterations=0, views=8).fit(support_x, support_y)
        views = SymmetricViews(net, views=8).fit(support_x, support_y).predict(query_x)
        torch.testing.assert_close(plain, protonet, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(eight.predict(query_x), views, rtol=1e-12, atol=1e-12)


def test_the_queries_pull_a_prototype_over_to_their_side():
    # One support point per class; class 0's queries lie to the right of it, and the last of
    # them is nearer class 1's support point than its own, so plain ProtoNet gets it wrong.
    support_x, support_y = points((0, 0), (3, 0)), torch.tensor([0, 1])
    query_x = points((1.3, 0.4), (1.3, -0.4), (1.6, 0), (3.8, 0), (4.3, 0))
    truth = torch.tensor([0, 0, 0, 1, 1])
    net = ProtoNet(nn.Flatten())
    plain = TransductiveProtoNet(net, iterations=0).fit(support_x, support_y).predict(query_x)
    refined = TransductiveProtoNet(net, iterations=3).fit(support_x, support_y).predict(query_x)
    assert plain.argmax(-1).tolist() == [0, 0, 1, 1, 1]
    assert torch.equal(refined.argmax(-1), truth)


def test_a_query_depends_on_the_other_queries_only_when_refined():
    # pixels as embeddings: Conv4's BatchNorm would make every query depend on the others already
    net = ProtoNet(nn.Flatten())
    support_x, support_y = strokes(3, 2), torch.tensor([0, 1, 2])
    queries, other_queries = strokes(6, 3), strokes(6, 4)
    swapped = torch.cat([queries[:1], other_queries[1:]])
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    with torch.no_grad():
        for iterations, depends in ((0, False), (2, True)):
            method = TransductiveProtoNet(net, iterations=iterations).fit(support_x, support_y)
            scores = method.predict(queries)
            first = method.predict(swapped)[0]
            assert torch.allclose(first, scores[0], rtol=0, atol=1e-12) != depends
            # the query set is a set: reordering it reorders the scores, nothing else
            torch.testing.assert_close(method.predict(queries[order]), scores[order],
                                       rtol=1e-12, atol=1e-12)


def test_all_eight_views_make_it_invariant_to_turning_the_episode():
    net = conv_protonet(1)
    support_x, support_y = strokes(3, 5), torch.tensor([0, 1, 2])
    query_x = strokes(6, 6)
    method = TransductiveProtoNet(net, iterations=2, views=8)
    original = assert_invariant_to_turning(method, support_x, support_y, query_x)
    with torch.no_grad():
        # the views share their assignment: not the same as refining each view on its own
        separately = SymmetricViews(TransductiveProtoNet(net, iterations=2), views=8)
        alone = separately.fit(support_x, support_y).predict(query_x)
    assert not torch.allclose(alone, original)


def test_bad_arguments_and_order_are_refused():
    net = ProtoNet(nn.Flatten())
    with pytest.raises(ValueError, match="iterations"):
        TransductiveProtoNet(net, iterations=-1)
    with pytest.raises(ValueError, match="temperature"):
        TransductiveProtoNet(net, temperature=0.0)
    with pytest.raises(ValueError, match="views"):
        TransductiveProtoNet(net, views=2)
    with pytest.raises(RuntimeError, match="fit"):
        TransductiveProtoNet(net).predict(points((0, 0)))
    with pytest.raises(ValueError, match="cover"):
        TransductiveProtoNet(net).fit(points((0, 0), (1, 1)), torch.tensor([0, 2]))
