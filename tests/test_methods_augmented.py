"""fewshot_course.methods.augmented: what the wrapped method is fitted on and how queries score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import random_strokes
from fewshot_course.data.augment import distort
from fewshot_course.methods import AugmentedEpisodes, FewShotClassifier, ProtoNet
from fewshot_course.models import Conv4


class Recorder(FewShotClassifier):
    """Remembers what it was fitted on; scores a query by its mean pixel, once per class."""

    def fit(self, support_x, support_y):
        self.seen = (support_x.clone(), support_y.clone())
        self.n_way = int(support_y.max()) + 1
        return self

    def predict(self, query_x):
        return query_x.flatten(1).mean(1, keepdim=True) * torch.arange(1.0, self.n_way + 1)


def test_support_set_gets_the_originals_then_each_distorted_copy_with_its_label():
    support_x, support_y = random_strokes(4, 0), torch.tensor([0, 1, 2, 1])
    wrapped = AugmentedEpisodes(Recorder(), copies=3, strength=0.5, seed=7)
    wrapped.fit(support_x, support_y)
    seen_x, seen_y = wrapped.method.seen
    assert seen_x.shape == (16, 1, 28, 28)
    assert torch.equal(seen_y, support_y.repeat(4))
    assert torch.equal(seen_x[:4], support_x)
    rng = np.random.default_rng(7)
    for copy in range(3):
        expected = distort(support_x, rng, 0.5)
        assert torch.equal(seen_x[4 * (copy + 1): 4 * (copy + 2)], expected)


def test_queries_score_the_mean_log_probability_over_their_copies():
    support_x, support_y = random_strokes(3, 0), torch.tensor([0, 1, 2])
    query_x = random_strokes(5, 1)
    wrapped = AugmentedEpisodes(Recorder(), copies=2, strength=0.5, seed=3)
    logits = wrapped.fit(support_x, support_y).predict(query_x)

    rng = np.random.default_rng(3)
    for _ in range(2):  # the support set's copies come first from the same generator
        distort(support_x, rng, 0.5)
    versions = [query_x, distort(query_x, rng, 0.5), distort(query_x, rng, 0.5)]
    plain = Recorder().fit(support_x, support_y)
    expected = torch.stack([plain.predict(v).log_softmax(-1) for v in versions]).mean(0)
    assert logits.shape == (5, 3)
    torch.testing.assert_close(logits, expected)


def test_no_copies_is_the_method_itself_and_same_seed_repeats():
    torch.manual_seed(0)
    net = ProtoNet(Conv4(hidden=8).features)
    support_x, support_y = random_strokes(6, 0), torch.tensor([0, 0, 1, 1, 2, 2])
    query_x = random_strokes(4, 1)
    plain = net.fit(support_x, support_y).predict(query_x)
    unchanged = AugmentedEpisodes(net, copies=0).fit(support_x, support_y).predict(query_x)
    torch.testing.assert_close(unchanged, plain, rtol=0, atol=0)

    def scored(seed: int) -> torch.Tensor:
        return AugmentedEpisodes(net, copies=4, seed=seed).fit(support_x, support_y).predict(
            query_x)

    assert torch.equal(scored(1), scored(1))
    assert not torch.allclose(scored(1), scored(2))
    support_only = AugmentedEpisodes(net, copies=4, augment_queries=False)
    assert not torch.allclose(support_only.fit(support_x, support_y).predict(query_x), plain)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="copies"):
        AugmentedEpisodes(Recorder(), copies=-1)
    with pytest.raises(ValueError, match="classes"):
        AugmentedEpisodes(Recorder()).fit(random_strokes(2, 0), torch.tensor([0, 2]))
