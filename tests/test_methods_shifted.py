"""fewshot_course.methods.shifted: the shifted views and their average."""

from __future__ import annotations

import pytest
import torch

from conftest import random_strokes
from fewshot_course.methods import ProtoNet, ShiftedViews
from fewshot_course.methods.shifted import SHIFTS, shifted_view
from fewshot_course.models import Conv4


def protonet() -> ProtoNet:
    torch.manual_seed(0)
    return ProtoNet(Conv4(hidden=8).features).double()


def test_a_shift_moves_the_pixels_and_fills_the_edge_with_background():
    image = torch.arange(1.0, 17.0).view(1, 1, 4, 4)
    down_right = shifted_view(image, 1, 1)
    assert torch.equal(down_right[0, 0, 1:, 1:], image[0, 0, :3, :3])
    assert down_right[0, 0, 0].eq(0).all() and down_right[0, 0, :, 0].eq(0).all()
    up_left = shifted_view(image, -1, -1)
    assert torch.equal(up_left[0, 0, :3, :3], image[0, 0, 1:, 1:])
    assert up_left[0, 0, 3].eq(0).all() and up_left[0, 0, :, 3].eq(0).all()
    assert torch.equal(shifted_view(image, 0, 0), image)
    # the nine offsets are distinct, and the first four are the phases of a 2x2 max-pool
    assert len(set(SHIFTS)) == 9 and set(SHIFTS[:4]) == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_prediction_is_the_mean_log_probability_over_the_shifts():
    net = protonet()
    support_x, support_y = random_strokes(6, 0).double(), torch.tensor([0, 0, 1, 1, 2, 2])
    query_x = random_strokes(5, 1).double()
    with torch.no_grad():
        scores = ShiftedViews(net, shifts=9).fit(support_x, support_y).predict(query_x)
        expected = torch.stack([
            net.fit(shifted_view(support_x, down, right), support_y).predict(
                shifted_view(query_x, down, right)).log_softmax(-1)
            for down, right in SHIFTS]).mean(0)
        plain = net.fit(support_x, support_y).predict(query_x)
        one_shift = ShiftedViews(net, shifts=1).fit(support_x, support_y).predict(query_x)
        four = ShiftedViews(net, shifts=4).fit(support_x, support_y).predict(query_x)
    assert scores.shape == (5, 3)
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(one_shift, plain.log_softmax(-1))
    assert not torch.allclose(four, one_shift) and not torch.allclose(four, scores)


def test_bad_arguments_and_order_are_refused():
    with pytest.raises(ValueError, match="shifts = 2"):
        ShiftedViews(protonet(), shifts=2)
    with pytest.raises(RuntimeError, match="fit"):
        ShiftedViews(protonet()).predict(random_strokes(2, 0))
    with pytest.raises(ValueError, match="out of itself"):
        shifted_view(torch.zeros(1, 1, 4, 4), 4, 0)
