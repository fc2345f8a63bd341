from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from fewshot_course.models import (
    MLP,
    BatchStatNorm2d,
    Conv4,
    graph_for_second_derivatives,
)

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@pytest.mark.parametrize("image_size, side", [(28, 1), (32, 2), (84, 5)])
def test_conv4_shapes(image_size, side):
    model = Conv4(in_channels=3, n_way=7, hidden=8, image_size=image_size)
    x = torch.rand(4, 3, image_size, image_size)
    assert model.feature_dim == 8 * side * side
    assert model.features(x).shape == (4, model.feature_dim)
    assert model(x).shape == (4, 7)


def test_global_max_pool_keeps_the_largest_value_of_each_channel_over_positions():
    torch.manual_seed(0)
    pooled = Conv4(hidden=6, image_size=32, global_max_pool=True)
    plain = Conv4(hidden=6, image_size=32)
    plain.features.load_state_dict(pooled.features.state_dict())  # only the pooling differs
    x = torch.rand(3, 1, 32, 32)
    assert pooled.feature_dim == 6 and pooled.head.in_features == 6
    positions = plain.features(x).view(3, 6, 2, 2)  # the 2x2 map, flattened channel-major
    torch.testing.assert_close(pooled.features(x), positions.amax(dim=(2, 3)))
    assert pooled(x).shape == (3, 5)


def test_conv4_default_is_mamls_omniglot_network():
    model = Conv4()
    convolutions = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, BatchStatNorm2d)]
    assert [c.out_channels for c in convolutions] == [64] * 4
    assert all(c.kernel_size == (3, 3) for c in convolutions)
    assert len(norms) == 4
    assert model.head.in_features == 64 and model.head.out_features == 5


def test_a_larger_first_kernel_keeps_every_shape_and_only_widens_the_first_convolution():
    model = Conv4(hidden=6, image_size=32, global_max_pool=True, first_kernel=5)
    kernels = [m.kernel_size for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert kernels == [(5, 5), (3, 3), (3, 3), (3, 3)]
    first = model.features[0]
    assert first(torch.rand(2, 1, 32, 32)).shape == (2, 6, 16, 16)  # "same" padding, then pool
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 5)
    with pytest.raises(ValueError, match="odd"):
        Conv4(first_kernel=4)


def test_conv4_rejects_images_too_small_for_four_pools():
    with pytest.raises(ValueError, match="image_size=8"):
        Conv4(image_size=8)


def test_batch_norm_uses_the_statistics_of_each_call():
    torch.manual_seed(0)
    norm = BatchStatNorm2d(3)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        norm.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    x = torch.randn(6, 3, 5, 5) * 4 + 2
    reference = F.batch_norm(x, None, None, norm.weight, norm.bias, training=True, eps=1e-5)
    torch.testing.assert_close(norm(x), reference)
    # No running statistics: eval mode normalises exactly like train mode.
    torch.testing.assert_close(norm.eval()(x), reference)
    assert len(list(norm.buffers())) == 0


def test_conv4_predictions_are_transductive():
    torch.manual_seed(0)
    model = Conv4(hidden=8).eval()
    x = torch.rand(6, 1, 28, 28)
    together = model(x)
    alone = torch.cat([model(x[:3]), model(x[3:])])
    assert not torch.allclose(together, alone, atol=1e-4)


def test_functional_call_with_a_parameter_dict_matches_the_module():
    torch.manual_seed(0)
    model = Conv4(hidden=8)
    x = torch.rand(5, 1, 28, 28)
    params = dict(model.named_parameters())
    torch.testing.assert_close(functional_call(model, params, (x,)), model(x))
    shifted = {name: p + 0.1 for name, p in params.items()}
    assert not torch.allclose(functional_call(model, shifted, (x,)), model(x))


def test_vmap_over_per_task_weights_matches_a_loop():
    torch.manual_seed(0)
    models = [Conv4(hidden=8) for _ in range(3)]
    params, _ = stack_module_state(models)
    x = torch.rand(3, 5, 1, 28, 28)

    def call(p, images):
        return functional_call(models[0], p, (images,))

    batched = vmap(call)(params, x)
    looped = torch.stack([m(images) for m, images in zip(models, x, strict=True)])
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-5)


def test_mlp_is_the_sinusoid_regressor():
    model = MLP()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1, 40), (40, 40), (40, 1)]
    assert sum(p.numel() for p in model.parameters()) == 1761
    assert model(torch.rand(10, 1)).shape == (10, 1)


def test_mlp_is_relu_between_layers_only():
    torch.manual_seed(0)
    model = MLP((2, 3, 4))
    x = torch.randn(8, 2)
    first, second = model.layers[0], model.layers[2]
    torch.testing.assert_close(model(x), second(torch.relu(first(x))))


def test_mlp_needs_two_sizes():
    with pytest.raises(ValueError, match="sizes"):
        MLP((3,))


def textbook_features(model: Conv4, x: torch.Tensor) -> torch.Tensor:
    """Conv4's encoder written the textbook way: conv, affine BatchNorm, ReLU, then max-pool."""
    for block in model.features[:4]:
        x = F.conv2d(x, block.conv.weight, padding=1)
        x = F.batch_norm(x, None, None, block.norm.weight, block.norm.bias, training=True)
        x = F.max_pool2d(F.relu(x), kernel_size=2)
    return x.flatten(start_dim=1)


@pytest.mark.parametrize("second_derivatives_by_hand", [False, True])
def test_fast_block_equals_the_textbook_order_up_to_second_derivatives(second_derivatives_by_hand):
    # ConvBlock pools before its ReLU, uses channels-last on the CPU and the fused BatchNorm (and
    # within graph_for_second_derivatives the hand-written double backward): the same function,
    # so values, gradients and gradients of gradients (MAML's second-order term) must agree to
    # float64 rounding.
    torch.manual_seed(0)
    model = Conv4(hidden=4, image_size=32).double()
    with torch.no_grad():
        for block in model.features[:4]:
            block.norm.weight.uniform_(-1.5, 1.5)  # negative scales too: affine must not commute
            block.norm.bias.normal_()
    x = torch.rand(6, 1, 32, 32, dtype=torch.float64)
    weights = list(model.features.parameters())

    def gradient_and_curvature(features):
        loss = features(x).pow(2).sum()
        first = torch.autograd.grad(loss, weights, create_graph=True)
        second = torch.autograd.grad(sum(g.pow(2).sum() for g in first), weights)
        return [g.detach() for g in first], second

    torch.testing.assert_close(model.features(x), textbook_features(model, x), rtol=1e-10,
                               atol=1e-12)
    with graph_for_second_derivatives() if second_derivatives_by_hand else nullcontext():
        ours = gradient_and_curvature(model.features)
    textbook = gradient_and_curvature(lambda images: textbook_features(model, images))
    for mine, reference in zip(ours[0] + list(ours[1]), textbook[0] + list(textbook[1]),
                               strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-9, atol=1e-11)


def test_batch_norm_under_vmap_matches_the_fused_kernel():
    torch.manual_seed(0)
    norm = BatchStatNorm2d(3).double()
    weights = torch.randn(4, 3, dtype=torch.float64)
    biases = torch.randn(4, 3, dtype=torch.float64)
    x = torch.randn(4, 5, 3, 6, 6, dtype=torch.float64)
    batched = vmap(lambda w, b, xs: functional_call(norm, {"weight": w, "bias": b}, (xs,)))(
        weights, biases, x)
    looped = torch.stack([F.batch_norm(xs, None, None, w, b, training=True)
                          for w, b, xs in zip(weights, biases, x, strict=True)])
    torch.testing.assert_close(batched, looped)


def test_second_derivatives_by_hand_change_speed_not_results():
    torch.manual_seed(0)
    model = Conv4(hidden=4).double()
    x = torch.rand(5, 1, 28, 28, dtype=torch.float64)
    weights = list(model.parameters())

    def curvature():
        first = torch.autograd.grad(model(x).pow(2).sum(), weights, create_graph=True)
        return torch.autograd.grad(sum(g.pow(2).sum() for g in first), weights)

    def batch_norm_node() -> str:
        block = model.features[0]
        return block.norm(block.conv(x)).grad_fn.name()

    native = curvature()
    assert batch_norm_node() == "NativeBatchNormBackward0"
    with graph_for_second_derivatives():
        by_hand = curvature()
        assert batch_norm_node() == "_BatchNormBackward"  # fewshot_course.second_order's
        with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision: PyTorch's own
            assert batch_norm_node() == "NativeBatchNormBackward0"
    assert batch_norm_node() == "NativeBatchNormBackward0"  # restored
    for a, b in zip(native, by_hand, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_vmap_of_grad_with_shared_weights_matches_plain_autograd():
    # The pattern of notebook 03: the weights are shared (in_dims None), the tasks are vmapped and
    # torch.func.grad runs inside, so tensors look unbatched there; the meta-gradient must still
    # equal plain autograd's (which takes the fused BatchNorm and channels-last paths).
    torch.manual_seed(0)
    model = Conv4(n_way=3, hidden=4).double()
    params = {name: p.detach().requires_grad_() for name, p in model.named_parameters()}
    support_x = torch.rand(2, 3, 1, 28, 28, dtype=torch.float64)
    query_x = torch.rand(2, 6, 1, 28, 28, dtype=torch.float64)
    support_y, query_y = torch.arange(3).repeat(2, 1), torch.arange(3).repeat(2, 2)

    def adapted_query_loss(p, sx, sy, qx, qy):
        gradients = torch.func.grad(
            lambda w: F.cross_entropy(functional_call(model, w, (sx,)), sy))(p)
        fast = {name: p[name] - 0.4 * gradients[name] for name in p}
        return F.cross_entropy(functional_call(model, fast, (qx,)), qy)

    batched = vmap(adapted_query_loss, in_dims=(None, 0, 0, 0, 0))(
        params, support_x, support_y, query_x, query_y).mean()
    plain = []
    for sx, sy, qx, qy in zip(support_x, support_y, query_x, query_y, strict=True):
        inner = torch.autograd.grad(F.cross_entropy(functional_call(model, params, (sx,)), sy),
                                    list(params.values()), create_graph=True)
        fast = {name: p - 0.4 * g for (name, p), g in zip(params.items(), inner, strict=True)}
        plain.append(F.cross_entropy(functional_call(model, fast, (qx,)), qy))
    plain_loss = torch.stack(plain).mean()
    torch.testing.assert_close(batched, plain_loss, rtol=1e-10, atol=1e-12)
    for a, b in zip(torch.autograd.grad(batched, list(params.values())),
                    torch.autograd.grad(plain_loss, list(params.values())), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
