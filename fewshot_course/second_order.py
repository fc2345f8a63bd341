"""Convolution and batch normalisation whose second derivatives are written out by hand.

Second-order MAML differentiates each inner step's gradient once more: autograd runs the
*backward of the backward* ("double backward") of every layer of the support passes. PyTorch's
generic double backward of these two layers does more work than MAML needs on the CPU:

* batch normalisation's is assembled from dozens of small operations, each a full pass over the
  activations, where the version below needs about fifteen;
* a convolution's also computes the gradient with respect to its input where nothing asks for it
  (the images of Conv4's first block), and on channels-last activations, the layout in which the
  CPU's convolutions and max-pool run fastest, it was timed slower than on the standard layout.

Each layer here is a pair of ``torch.autograd.Function``s: the layer, whose backward calls the
second Function, the layer's backward, whose own backward is the double backward below. The
forward passes and first derivatives are PyTorch's own kernels, so ordinary training is
unchanged; only second derivatives take the formulas below (checked against PyTorch's to float64
precision in tests/test_second_order.py). Third derivatives are not provided (MAML needs none):
asking for them raises an error.

Batch normalisation in training mode, per channel over its N = B * H * W values:
    x_hat = (x - mean(x)) * r,  r = 1 / sqrt(var(x) + eps),  y = w * x_hat + b.
Its backward, given g = dL/dy, with P(v) = v - mean(v) - x_hat * mean(v * x_hat):
    dL/dx = w * r * P(g),   dL/dw = sum(g * x_hat),   dL/db = sum(g).
The double backward receives cotangents A, a, c for (dL/dx, dL/dw, dL/db) and returns
    d/dg = w * r * P(A) + a * x_hat + c,
    d/dw = r * sum(A * P(g)),
    d/dx = r * (P(C) - r * w * sum(A * P(g)) * x_hat / N),  C = (a - w * r * mean(A * x_hat)) * g
                                                                - w * r * mean(g * x_hat) * A,
where the first term of d/dx is x_hat's dependence on x and the second that of r. Every mean
above is a per-channel number, so each output costs a few passes over the activations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Padding = tuple[int, int]


def conv2d(x: torch.Tensor, weight: torch.Tensor, padding: Padding) -> torch.Tensor:
    """``F.conv2d(x, weight, padding=padding)`` (stride 1, no bias), its double backward by hand.

    x: [B, C_in, H, W], weight: [C_out, C_in, kh, kw] -> [B, C_out, H', W'].
    """
    return _Conv2d.apply(x, weight, tuple(padding))


def batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               eps: float) -> torch.Tensor:
    """Batch normalisation with the batch's statistics, its double backward by hand.

    x: [B, C, H, W], weight and bias: [C] -> [B, C, H, W]; the same function as
    ``F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)``.
    """
    return _BatchNorm.apply(x, weight, bias, eps)


def _refuse_third_derivatives(*cotangents: torch.Tensor | None) -> None:
    """Raise where autograd is asked to record a double backward for differentiating it again.

    (``torch.autograd.function.once_differentiable`` would not do: ``torch.autograd.grad`` with
    ``inputs`` prunes the error node it plants, and the third derivative comes out silently
    without this layer's share.)
    """
    if torch.is_grad_enabled() and any(c is not None and c.requires_grad for c in cotangents):
        raise RuntimeError("fewshot_course.second_order provides first and second derivatives "
                           "only; a third derivative (create_graph=True on a second derivative) "
                           "is not implemented")


def _layout(x: torch.Tensor) -> torch.memory_format:
    """x's memory format: channels-last where x is stored so (and is not also standard)."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


# --- convolution ----------------------------------------------------------------------------------

def _convolution_backward(grad_output: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                          padding: Padding, input_and_weight: tuple[bool, bool]):
    """(dL/dx, dL/dweight) of a stride-1 convolution without bias, each only if asked for."""
    grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
        grad_output, x, weight, None, [1, 1], list(padding), [1, 1], False, [0, 0], 1,
        [*input_and_weight, False])
    return grad_x, grad_weight


class _Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, padding):
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, padding=padding)

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_x, grad_weight = _Conv2dBackward.apply(grad_output, x, weight, ctx.padding,
                                                    ctx.needs_input_grad[0])
        return grad_x, grad_weight, None


class _Conv2dBackward(torch.autograd.Function):
    """(g, x, weight) -> (dL/dx, dL/dweight), both linear in g: dL/dx = J_x^T g, where J_x maps
    x to conv(x, weight), and dL/dweight = J_w^T g, where J_w maps weight to conv(x, weight)."""

    @staticmethod
    def forward(ctx, grad_output, x, weight, padding, input_needs_grad):
        ctx.save_for_backward(grad_output, x, weight)
        ctx.padding = padding
        ctx.set_materialize_grads(False)
        return _convolution_backward(grad_output, x, weight, padding, (input_needs_grad, True))

    @staticmethod
    def backward(ctx, cotangent_x, cotangent_weight):
        _refuse_third_derivatives(cotangent_x, cotangent_weight)
        grad_output, x, weight = ctx.saved_tensors
        padding = ctx.padding
        wants_grad_output, wants_x, wants_weight = ctx.needs_input_grad[:3]
        d_grad_output = d_x = d_weight = None
        if wants_grad_output:  # J_x cotangent_x + J_w cotangent_weight
            if cotangent_x is not None:
                d_grad_output = F.conv2d(cotangent_x, weight, padding=padding)
            if cotangent_weight is not None:
                term = F.conv2d(x, cotangent_weight, padding=padding)
                d_grad_output = term if d_grad_output is None else d_grad_output + term
        # <cotangent_weight, J_w^T g> = <conv(x, cotangent_weight), g>, linear in x:
        if wants_x and cotangent_weight is not None:
            d_x, _ = _convolution_backward(grad_output, x, cotangent_weight, padding,
                                           (True, False))
        # <cotangent_x, J_x^T g> = <conv(cotangent_x, weight), g>, linear in weight:
        if wants_weight and cotangent_x is not None:
            _, d_weight = _convolution_backward(grad_output, cotangent_x, weight, padding,
                                                (False, True))
        return d_grad_output, d_x, d_weight, None, None


# --- batch normalisation --------------------------------------------------------------------------

class _BatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        y, mean, inverse_std = torch.ops.aten.native_batch_norm(x, weight, bias, None, None, True,
                                                                0.0, eps)
        ctx.save_for_backward(x, weight, mean, inverse_std)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, grad_output):
        x, weight, mean, inverse_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = _BatchNormBackward.apply(grad_output, x, weight, mean,
                                                                  inverse_std, ctx.eps)
        return grad_x, grad_weight, grad_bias, None


class _BatchNormBackward(torch.autograd.Function):
    """(g, x, w) -> (dL/dx, dL/dw, dL/db) of batch normalisation (see the module docstring).

    mean and inverse_std are the forward pass's statistics of x: constants here, since the
    double backward below differentiates through them analytically.
    """

    @staticmethod
    def forward(ctx, grad_output, x, weight, mean, inverse_std, eps):
        # The CPU kernel is several times slower when the two layouts differ (as where autograd
        # sums gradients of both layouts) than the copy that makes them agree.
        grad_output = grad_output.contiguous(memory_format=_layout(x))
        grad_x, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            grad_output, x, weight, None, None, mean, inverse_std, True, eps, [True, True, True])
        ctx.save_for_backward(grad_output, x, weight, mean, inverse_std, grad_weight, grad_bias)
        ctx.set_materialize_grads(False)
        return grad_x, grad_weight, grad_bias

    @staticmethod
    def backward(ctx, cotangent_x, cotangent_weight, cotangent_bias):
        _refuse_third_derivatives(cotangent_x, cotangent_weight, cotangent_bias)
        g, x, weight, mean, r, sum_g_xhat, sum_g = ctx.saved_tensors
        count = x.numel() // x.shape[1]
        reduced = [0, *range(2, x.dim())]

        def per_channel(v: torch.Tensor) -> torch.Tensor:  # [C] -> [1, C, 1, 1]
            return v.reshape(1, -1, *([1] * (x.dim() - 2)))

        zero = torch.zeros_like(r)
        a = zero if cotangent_weight is None else cotangent_weight
        c = zero if cotangent_bias is None else cotangent_bias
        x_hat = (x - per_channel(mean)) * per_channel(r)
        mean_g, mean_g_xhat = sum_g / count, sum_g_xhat / count
        if cotangent_x is None:
            mean_a = mean_a_xhat = mean_a_g = zero
        else:
            mean_a = cotangent_x.sum(reduced) / count
            mean_a_xhat = (cotangent_x * x_hat).sum(reduced) / count
            mean_a_g = (cotangent_x * g).sum(reduced) / count
        mean_a_projected_g = mean_a_g - mean_g * mean_a - mean_g_xhat * mean_a_xhat  # mean(A P(g))
        scale = weight * r
        wants_g, wants_x, wants_weight = ctx.needs_input_grad[:3]
        d_g = d_x = d_weight = None
        if wants_g:
            d_g = x_hat * per_channel(a - scale * mean_a_xhat)
            d_g.add_(per_channel(c - scale * mean_a))
            if cotangent_x is not None:
                d_g.addcmul_(cotangent_x, per_channel(scale))
        if wants_x:
            # C = g_coefficient * g + a_coefficient * A; P(C) needs mean(C) and mean(C x_hat).
            g_coefficient = a - scale * mean_a_xhat
            a_coefficient = -scale * mean_g_xhat
            mean_c = g_coefficient * mean_g + a_coefficient * mean_a
            mean_c_xhat = g_coefficient * mean_g_xhat + a_coefficient * mean_a_xhat
            xhat_coefficient = -(mean_c_xhat + scale * mean_a_projected_g)
            d_x = (x_hat * per_channel(xhat_coefficient * r)).add_(per_channel(-mean_c * r))
            d_x.addcmul_(g, per_channel(g_coefficient * r))
            if cotangent_x is not None:
                d_x.addcmul_(cotangent_x, per_channel(a_coefficient * r))
        if wants_weight:
            d_weight = r * mean_a_projected_g * count
        return d_g, d_x, d_weight, None, None, None


__all__ = ["batch_norm", "conv2d"]
