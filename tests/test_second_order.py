"""The hand-written double backward of fewshot_course.second_order against PyTorch's own."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fewshot_course import second_order

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def conv_inputs(x_needs_grad: bool):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 6, 5, dtype=torch.float64, generator=generator)
    weight = torch.randn(4, 2, 3, 3, dtype=torch.float64, generator=generator)
    return x.requires_grad_(x_needs_grad), weight.requires_grad_()


def norm_inputs():
    generator = torch.Generator().manual_seed(1)
    x = 3 + 2 * torch.randn(4, 3, 5, 5, dtype=torch.float64, generator=generator)
    weight = torch.randn(3, dtype=torch.float64, generator=generator)  # negative scales too
    bias = torch.randn(3, dtype=torch.float64, generator=generator)
    return x.requires_grad_(), weight.requires_grad_(), bias.requires_grad_()


@pytest.mark.parametrize("x_needs_grad", [True, False])
@pytest.mark.parametrize("padding", [(1, 1), (0, 1)])
def test_convolution_passes_gradcheck_and_gradgradcheck(x_needs_grad, padding):
    x, weight = conv_inputs(x_needs_grad)

    def layer(x, weight):
        return second_order.conv2d(x, weight, padding)

    assert torch.autograd.gradcheck(layer, (x, weight))
    assert torch.autograd.gradgradcheck(layer, (x, weight))


def test_batch_norm_passes_gradcheck_and_gradgradcheck():
    def layer(x, weight, bias):
        return second_order.batch_norm(x, weight, bias, 1e-5)

    assert torch.autograd.gradcheck(layer, norm_inputs())
    assert torch.autograd.gradgradcheck(layer, norm_inputs())


def second_derivatives(layer, inputs, uses):
    """Derivatives of a function of the layer's first derivatives, with respect to its inputs.

    ``uses`` picks which first derivatives the objective sees, so that the double backward also
    meets missing cotangents (MAML's meta-gradient reaches the first block's weight gradient,
    never a gradient for the images).
    """
    wanted = [t for t in inputs if t.requires_grad]
    output = layer(*inputs)
    mix = torch.linspace(-1, 2, output.numel(), dtype=output.dtype).reshape(output.shape)
    first = torch.autograd.grad((output.sin() * mix).sum(), wanted, create_graph=True)
    objective = sum((g.pow(2) * (i + 1)).sum() for i, g in enumerate(first) if i in uses)
    return torch.autograd.grad(objective, wanted, allow_unused=True)


@pytest.mark.parametrize("x_needs_grad, uses", [(True, {0, 1}), (True, {0}), (True, {1}),
                                                (False, {0})])
def test_convolution_second_derivatives_equal_pytorch(x_needs_grad, uses):
    x, weight = conv_inputs(x_needs_grad)
    ours = second_derivatives(lambda x, w: second_order.conv2d(x, w, (1, 1)), (x, weight), uses)
    reference = second_derivatives(lambda x, w: F.conv2d(x, w, padding=1), (x, weight), uses)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("uses", [{0, 1, 2}, {0}, {1}, {2}, {1, 2}])
def test_batch_norm_second_derivatives_equal_pytorch(uses):
    inputs = norm_inputs()
    ours = second_derivatives(lambda x, w, b: second_order.batch_norm(x, w, b, 1e-5), inputs,
                              uses)
    reference = second_derivatives(
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=1e-5), inputs, uses)
    for a, b in zip(ours, reference, strict=True):
        if b is None:  # a derivative PyTorch leaves out must be zero in ours, or left out too
            assert a is None or not a.any()
        else:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_forward_and_first_derivatives_are_pytorchs():
    x, weight = conv_inputs(True)
    out = second_order.conv2d(x, weight, (1, 1))
    assert torch.equal(out, F.conv2d(x, weight, padding=1))
    x, weight, bias = norm_inputs()
    out = second_order.batch_norm(x, weight, bias, 1e-5)
    assert torch.equal(out, F.batch_norm(x, None, None, weight, bias, training=True, eps=1e-5))


def test_third_derivatives_raise_instead_of_being_wrong():
    x, weight, bias = norm_inputs()
    first, = torch.autograd.grad(second_order.batch_norm(x, weight, bias, 1e-5).pow(3).sum(), x,
                                 create_graph=True)
    with pytest.raises(RuntimeError, match="third derivative"):
        torch.autograd.grad(first.pow(2).sum(), x, create_graph=True)
    x, weight = conv_inputs(False)
    first, = torch.autograd.grad(second_order.conv2d(x, weight, (1, 1)).pow(3).sum(), weight,
                                 create_graph=True)
    with pytest.raises(RuntimeError, match="third derivative"):
        torch.autograd.grad(first.pow(2).sum(), weight, create_graph=True)
