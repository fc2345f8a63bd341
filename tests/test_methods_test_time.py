"""fewshot_course.methods.with_test_time: the benchmark's test-time wrappers in one call."""

from __future__ import annotations

import pytest
import torch

from conftest import random_strokes
from fewshot_course.methods import (
    AugmentedEpisodes,
    NearestNeighbour,
    ProtoNet,
    ShiftedViews,
    SymmetricViews,
    TransductiveProtoNet,
    with_test_time,
)
from fewshot_course.models import Conv4


@pytest.fixture
def episode() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return random_strokes(6, 0), torch.tensor([0, 0, 1, 1, 2, 2]), random_strokes(9, 1)


def scores(method, episode) -> torch.Tensor:
    support_x, support_y, query_x = episode
    with torch.no_grad():
        return method.fit(support_x, support_y).predict(query_x)


def protonet() -> ProtoNet:
    torch.manual_seed(0)
    return ProtoNet(Conv4(hidden=8).features)


def test_the_defaults_leave_the_method_as_it_is():
    net = protonet()
    assert with_test_time(net) is net


def test_views_around_copies_score_as_the_wrappers_built_by_hand(episode):
    net = protonet()
    wrapped = with_test_time(net, views=4, copies=2, strength=0.3, seed=5)
    assert isinstance(wrapped, SymmetricViews) and isinstance(wrapped.method, AugmentedEpisodes)
    by_hand = SymmetricViews(AugmentedEpisodes(net, copies=2, strength=0.3, seed=5), views=4)
    assert torch.equal(scores(wrapped, episode), scores(by_hand, episode))
    # each addition changes the scores, so none of them was dropped on the way
    plain = scores(net, episode).log_softmax(-1)
    assert not torch.allclose(scores(with_test_time(net, copies=2, seed=5), episode), plain)
    assert not torch.allclose(scores(with_test_time(net, views=4), episode), plain)


def test_shifts_around_views_around_copies_score_as_the_wrappers_built_by_hand(episode):
    net = protonet()
    wrapped = with_test_time(net, views=4, shifts=4, copies=1, strength=0.3, seed=5)
    assert isinstance(wrapped, ShiftedViews) and isinstance(wrapped.method, SymmetricViews)
    assert isinstance(wrapped.method.method, AugmentedEpisodes)
    by_hand = ShiftedViews(SymmetricViews(AugmentedEpisodes(net, copies=1, strength=0.3, seed=5),
                                          views=4), shifts=4)
    assert torch.equal(scores(wrapped, episode), scores(by_hand, episode))
    plain = scores(net, episode).log_softmax(-1)
    assert not torch.allclose(scores(with_test_time(net, shifts=4), episode), plain)


def test_transductive_passes_its_settings_on(episode):
    net = protonet()
    wrapped = with_test_time(net, views=8, transductive=True, iterations=3, temperature=1.5)
    assert isinstance(wrapped, TransductiveProtoNet)
    by_hand = TransductiveProtoNet(net, iterations=3, temperature=1.5, views=8)
    assert torch.equal(scores(wrapped, episode), scores(by_hand, episode))
    defaults = with_test_time(net, transductive=True)
    reference = TransductiveProtoNet(net)
    assert (defaults.iterations, defaults.temperature) == (reference.iterations,
                                                           reference.temperature)


def test_combinations_that_mean_nothing_are_refused():
    net = protonet()
    with pytest.raises(ValueError, match="needs a ProtoNet"):
        with_test_time(NearestNeighbour(), transductive=True)
    with pytest.raises(ValueError, match="does not combine"):
        with_test_time(net, copies=4, transductive=True)
    with pytest.raises(ValueError, match="does not combine"):
        with_test_time(net, shifts=4, transductive=True)
    with pytest.raises(ValueError, match="shifts = 2"):
        with_test_time(net, shifts=2)
    with pytest.raises(ValueError, match="only apply with transductive"):
        with_test_time(net, iterations=3)
    with pytest.raises(ValueError, match="views = 3"):
        with_test_time(net, views=3)
