"""The networks of the course: MAML's Conv4 for images and a small MLP for the sinusoid.

Both are ordinary ``nn.Module``s. They are written so that the same forward pass serves three
callers unchanged: plain module calls (ProtoNet, the baselines, learn2learn's module-cloning MAML),
``torch.func.functional_call`` with a dictionary of adapted parameters (our MAML), and
``torch.func.vmap`` over a batch of tasks, each with its own parameters (our batched MAML).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

from fewshot_course import second_order


class BatchStatNorm2d(nn.Module):
    """BatchNorm over [B, C, H, W] that always normalises with the statistics of the batch given.

    Like ``nn.BatchNorm2d(track_running_stats=False)``: no running averages, so training and
    evaluation behave the same, and each call (each support set, each query set) is normalised
    with its own mean and variance. As in the MAML paper, this makes predictions transductive: a
    query image's logits depend on the other query images of the same call.

    Outside ``torch.func`` transforms the learnable scale and shift go into ``F.batch_norm``'s fused
    kernel. Under ``vmap`` with per-task weights that kernel gives silently wrong second-order
    gradients (relative errors of about 1e-2 in float64 with torch 2.14, measured), so under any
    transform they are applied explicitly after an affine-free normalisation, which is exact. Both
    forms compute the same function; the fused one skips two passes over the activations and their
    backward (measured about 8% of a Conv4 meta-iteration on the CPU). Within
    ``graph_for_second_derivatives()`` on the CPU the fused kernel's double backward is the one
    written out in ``fewshot_course.second_order``.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] -> [B, C, H, W]."""
        if _under_torch_func():
            normalised = F.batch_norm(x, None, None, training=True, eps=self.eps)
            return normalised * self.weight[:, None, None] + self.bias[:, None, None]
        if _second_derivatives_by_hand(x):
            return second_order.batch_norm(x, self.weight, self.bias, self.eps)
        return F.batch_norm(x, None, None, self.weight, self.bias, training=True, eps=self.eps)


_SECOND_DERIVATIVES: ContextVar[bool] = ContextVar("second_derivatives", default=False)


@contextmanager
def graph_for_second_derivatives() -> Iterator[None]:
    """Within this context Conv4's blocks on the CPU use ``fewshot_course.second_order``'s
    convolution and BatchNorm: for passes whose graph will be differentiated twice, such as
    second-order MAML's inner steps.

    Their forward passes and first derivatives are PyTorch's kernels; their double backward is
    written out by hand, which made a 5-step second-order Conv4 meta-iteration about 18% faster
    on the CPU (benchmarks/RESULTS.md, section "throughput"). Results are the same either way, to
    float64 precision; only the speed differs. Under ``torch.autocast`` (mixed precision, where
    the kernels' inputs change dtype) the context changes nothing.
    """
    token = _SECOND_DERIVATIVES.set(True)
    try:
        yield
    finally:
        _SECOND_DERIVATIVES.reset(token)


def _second_derivatives_by_hand(x: torch.Tensor) -> bool:
    """Whether a plain (not torch.func) call on x should use ``fewshot_course.second_order``."""
    return (_SECOND_DERIVATIVES.get() and x.device.type == "cpu"
            and not torch.is_autocast_enabled("cpu"))


def _under_torch_func() -> bool:
    """Whether a ``torch.func`` transform (vmap, grad, ...) is running this code.

    A tensor batched by an outer vmap looks unbatched from inside a nested ``grad``, so the test is
    on the transform stack, not on the tensors.
    """
    return torch._C._functorch.maybe_current_level() is not None


class ConvBlock(nn.Module):
    """3x3 convolution (padding 1, no bias), batch-statistics BatchNorm, ReLU, 2x2 max-pool.

    [B, C_in, H, W] -> [B, C_out, H // 2, W // 2]. Another odd ``kernel_size`` k keeps the
    "same" padding, k // 2.

    The ReLU runs after the max-pool, on a quarter of the values: max and ReLU commute
    (relu(max(a, b)) = max(relu(a), relu(b))), so outputs and gradients are those of the usual
    order, and the cheaper order saves a pass over the largest activations.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive (3 is MAML's), got "
                             f"{kernel_size}")
        # No bias: BatchNorm subtracts the mean right after, so its gradient would be exactly zero.
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size,
                              padding=kernel_size // 2, bias=False)
        self.norm = BatchStatNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.conv.weight
        plain_cpu_call = x.device.type == "cpu" and not _under_torch_func()
        if plain_cpu_call:
            # The CPU's convolution and max-pool kernels run about 1.5x faster on channels-last
            # activations (measured on a Conv4 step); the output keeps the layout through the block.
            x = x.to(memory_format=torch.channels_last)
            weight = weight.to(memory_format=torch.channels_last)
        if plain_cpu_call and _second_derivatives_by_hand(x):
            convolved = second_order.conv2d(x, weight, self.conv.padding)
        else:
            convolved = F.conv2d(x, weight, padding=self.conv.padding)
        return F.relu(F.max_pool2d(self.norm(convolved), kernel_size=2))


class Conv4(nn.Module):
    """MAML's standard few-shot network: 4 x [conv 3x3, BatchNorm, ReLU, max-pool 2x2] + linear.

    BatchNorm always uses the statistics of the current batch (see ``BatchStatNorm2d``): this is
    transductive, as in the MAML paper, so evaluate each task's query set in one call.

    Args:
        in_channels: C, 1 for Omniglot-style greyscale images.
        n_way: N, the number of classes the linear head scores.
        hidden: channels of every convolution (64 in the paper; smaller is fine for quick runs).
        image_size: H = W of the inputs; without global_max_pool it fixes the head's input size,
            hidden * (image_size // 16)**2 (1x1 spatial for 28x28 images, 5x5 for 84x84).
            Each max-pool rounds an odd side down and so ignores its input's last row and
            column (at 28x28 the pools at 7 -> 3 and 3 -> 1 do); sides that are multiples of 16,
            such as 32, lose nothing (the Omniglot benchmark uses 32x32).
        global_max_pool: end the body with a max over the last feature map's positions, so
            features are ``hidden`` numbers whatever the image size (a 2x2 map at 32x32).
        first_kernel: the side of the first convolution's kernel (odd; 3 in the paper). The
            first block has one input channel, so a larger kernel there costs little: with 5x5,
            the Omniglot benchmark's ProtoNet took about 4% fewer steps in the same CPU time.

    Shapes: [B, C, H, W] images -> [B, N] logits. ``features`` alone is an encoder:
    [B, C, H, W] -> [B, feature_dim] (used by ProtoNet and the baselines).
    """

    def __init__(self, in_channels: int = 1, n_way: int = 5, hidden: int = 64, *,
                 image_size: int = 28, global_max_pool: bool = False, first_kernel: int = 3):
        super().__init__()
        side = image_size
        for _ in range(4):
            side //= 2
        if side < 1:
            raise ValueError(f"image_size={image_size} is too small for 4 max-pools; Conv4 needs "
                             "images of at least 16x16 pixels")
        self.feature_dim = hidden if global_max_pool else hidden * side * side
        blocks = [ConvBlock(in_channels, hidden, first_kernel), ConvBlock(hidden, hidden),
                  ConvBlock(hidden, hidden), ConvBlock(hidden, hidden)]
        if global_max_pool:
            blocks.append(nn.AdaptiveMaxPool2d(1))
        self.features = nn.Sequential(*blocks, nn.Flatten())
        self.head = nn.Linear(self.feature_dim, n_way)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] -> logits [B, N]."""
        return self.head(self.features(x))


class MLP(nn.Module):
    """Fully connected ReLU network, e.g. the MAML paper's sinusoid regressor (1, 40, 40, 1).

    Args:
        sizes: widths from input to output; ReLU between layers, none after the last.

    Shapes: [B, sizes[0]] -> [B, sizes[-1]].
    """

    def __init__(self, sizes: tuple[int, ...] = (1, 40, 40, 1)):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least an input and an output size, got sizes={sizes}")
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
            if i > 0:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(n_in, n_out))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
