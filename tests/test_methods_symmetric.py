"""fewshot_course.methods.symmetric: the views, their average, and invariance over the group."""

from __future__ import annotations

import pytest
import torch

from conftest import assert_invariant_to_turning, random_strokes
from fewshot_course.maml import MAML
from fewshot_course.methods import MAMLClassifier, ProtoNet, SymmetricViews
from fewshot_course.methods.symmetric import SYMMETRIES, symmetric_view
from fewshot_course.models import Conv4


def protonet(seed: int = 0) -> ProtoNet:
    torch.manual_seed(seed)
    return ProtoNet(Conv4(hidden=8).features).double()


def test_the_eight_views_are_the_distinct_symmetries_of_the_square():
    image = torch.arange(16.0).view(1, 1, 4, 4)
    views = [symmetric_view(image, mirrored, turns) for mirrored, turns in SYMMETRIES]
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    assert torch.equal(views[0], image)
    assert torch.equal(symmetric_view(image, True, 0), image.flip(-1))
    # one quarter turn counter-clockwise: the top row becomes the left column, read upwards
    assert torch.equal(symmetric_view(image, False, 1)[0, 0, :, 0], torch.tensor([3., 2, 1, 0]))


def test_prediction_is_the_mean_log_probability_over_the_views():
    net = protonet()
    support_x, support_y = random_strokes(6, 0).double(), torch.tensor([0, 0, 1, 1, 2, 2])
    query_x = random_strokes(5, 1).double()
    with torch.no_grad():
        scores = SymmetricViews(net, views=4).fit(support_x, support_y).predict(query_x)
        expected = torch.stack([
            net.fit(symmetric_view(support_x, m, t), support_y).predict(
                symmetric_view(query_x, m, t)).log_softmax(-1)
            for m, t in SYMMETRIES[:4]]).mean(0)
        plain = net.fit(support_x, support_y).predict(query_x)
        one_view = SymmetricViews(net, views=1).fit(support_x, support_y).predict(query_x)
    assert scores.shape == (5, 3)
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(one_view, plain.log_softmax(-1))
    assert not torch.allclose(scores, one_view)


@pytest.mark.parametrize("make", ["protonet", "maml"])
def test_all_eight_views_make_the_prediction_invariant_to_turning_the_episode(make):
    if make == "protonet":
        method = protonet()
    else:
        torch.manual_seed(0)
        method = MAMLClassifier(MAML(Conv4(n_way=3, hidden=8), inner_lr=0.4), test_steps=2)
        method = method.double()
    support_x, support_y = random_strokes(3, 2).double(), torch.tensor([0, 1, 2])
    query_x = random_strokes(6, 3).double()
    assert_invariant_to_turning(SymmetricViews(method, views=8), support_x, support_y, query_x)
    with torch.no_grad():
        # four views are not a group with the mirror images: mirroring the episode changes them
        rotations = SymmetricViews(method, views=4)
        four = rotations.fit(support_x, support_y).predict(query_x)
        mirrored = rotations.fit(support_x.flip(-1), support_y).predict(query_x.flip(-1))
    assert not torch.allclose(four, mirrored)


def test_bad_arguments_and_order_are_refused():
    with pytest.raises(ValueError, match="views"):
        SymmetricViews(protonet(), views=3)
    with pytest.raises(RuntimeError, match="fit"):
        SymmetricViews(protonet()).predict(random_strokes(2, 0))
    with pytest.raises(ValueError, match="square"):
        symmetric_view(torch.zeros(1, 1, 4, 5), False, 1)


def test_only_quarter_turns_need_square_images():
    wide = torch.arange(6.0).view(1, 1, 2, 3)
    assert torch.equal(symmetric_view(wide, False, 0), wide)
    assert torch.equal(symmetric_view(wide, True, 2), wide.flip(-2))
    with pytest.raises(ValueError, match="square"):
        symmetric_view(wide, False, 1)
