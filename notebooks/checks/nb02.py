"""Checks for 02_maml_math: the meta-gradient through several inner steps; a closed-form Hessian."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.autograd.functional import hessian

from checks import passed

Loss = Callable[[torch.Tensor], torch.Tensor]


def _tiny_problem(seed: int) -> tuple[torch.Tensor, Loss, Loss]:
    """A 5-parameter non-linear regression model f(x) = a·tanh(b·x + c) + d·x + e on a sine task.

    Returns theta [5] (float64), the support loss and the query loss, both functions of theta.
    """
    generator = torch.Generator().manual_seed(seed)
    amplitude = 0.5 + 4.5 * torch.rand((), generator=generator, dtype=torch.float64)
    phase = torch.pi * torch.rand((), generator=generator, dtype=torch.float64)

    def data(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = 10 * torch.rand(count, generator=generator, dtype=torch.float64) - 5
        return x, amplitude * torch.sin(x - phase)

    (xs, ys), (xq, yq) = data(10), data(10)

    def model(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        a, b, c, d, e = theta
        return a * torch.tanh(b * x + c) + d * x + e

    theta = torch.randn(5, generator=generator, dtype=torch.float64)
    return (theta, lambda t: ((model(t, xs) - ys) ** 2).mean(),
            lambda t: ((model(t, xq) - yq) ** 2).mean())


def _unrolled_meta_gradient(theta: torch.Tensor, support_loss: Loss, query_loss: Loss,
                            alpha: float, steps: int, *, first_order: bool = False) -> torch.Tensor:
    """d query_loss(theta_steps) / d theta by autograd through `steps` plain gradient steps."""
    theta = theta.detach().clone().requires_grad_(True)
    fast = theta
    for _ in range(steps):
        (grad,) = torch.autograd.grad(support_loss(fast), fast, create_graph=not first_order)
        fast = fast - alpha * grad
    if first_order:
        (meta_grad,) = torch.autograd.grad(query_loss(fast), fast)
        return meta_grad
    (meta_grad,) = torch.autograd.grad(query_loss(fast), theta)
    return meta_grad


def check_1(meta_gradient: Callable[..., torch.Tensor]) -> None:
    """meta_gradient(theta, support_loss, query_loss, alpha, steps) -> the exact MAML meta-gradient.

    Compared with autograd differentiating through the unrolled inner loop, for 1, 2 and 3 steps.
    """
    assert callable(meta_gradient), "answer_1 must be a function"
    for seed, alpha, steps in [(0, 0.05, 1), (1, 0.05, 2), (2, 0.1, 3), (3, 0.02, 2)]:
        theta, support_loss, query_loss = _tiny_problem(seed)
        start = theta.clone()
        expected = _unrolled_meta_gradient(theta, support_loss, query_loss, alpha, steps)
        first_order = _unrolled_meta_gradient(theta, support_loss, query_loss, alpha, steps,
                                              first_order=True)
        assert (expected - first_order).norm() > 1e-3 * expected.norm(), "check problem too easy"

        got = meta_gradient(theta, support_loss, query_loss, alpha, steps)
        assert torch.equal(theta, start), "meta_gradient must not modify theta in place"
        assert isinstance(got, torch.Tensor) and got.shape == theta.shape, (
            f"expected a tensor of shape {tuple(theta.shape)}, got "
            f"{getattr(got, 'shape', type(got).__name__)}")
        got = got.detach().to(torch.float64)
        if torch.allclose(got, first_order, rtol=1e-8, atol=1e-10):
            raise AssertionError(f"with {steps} step(s) your result is the first-order "
                                 "approximation: the factors (I - alpha * Hessian) are missing")
        error = (got - expected).abs().max().item()
        assert torch.allclose(got, expected, rtol=1e-8, atol=1e-10), (
            f"with alpha={alpha}, {steps} step(s): max |yours - autograd| = {error:.3g}; "
            f"expected {expected.tolist()}, got {got.tolist()}")
    passed("your meta-gradient matches autograd through 1, 2 and 3 inner steps (to 1e-10)")


def check_2(mse_hessian: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """mse_hessian(x) -> the 2x2 Hessian of mean((w*x + b - y)**2) with respect to (w, b).

    Compared with torch.autograd.functional.hessian at random (w, b) and random targets y.
    """
    assert callable(mse_hessian), "answer_2 must be a function"
    generator = torch.Generator().manual_seed(0)
    for count in (1, 5, 10, 40):
        x = 10 * torch.rand(count, generator=generator, dtype=torch.float64) - 5
        y = torch.randn(count, generator=generator, dtype=torch.float64)
        theta = torch.randn(2, generator=generator, dtype=torch.float64)
        expected = hessian(lambda t, x=x, y=y: ((t[0] * x + t[1] - y) ** 2).mean(), theta)

        got = mse_hessian(x.clone())
        assert isinstance(got, torch.Tensor) and got.shape == (2, 2), (
            f"expected a 2x2 tensor, got {getattr(got, 'shape', type(got).__name__)}")
        got = got.detach().to(torch.float64)
        assert torch.allclose(got, expected, rtol=1e-10, atol=1e-12), (
            f"for {count} points: expected\n{expected}\ngot\n{got}")
    largest = torch.linalg.eigvalsh(expected).max().item()
    passed(f"closed-form Hessian matches autograd; for the last 40 points one inner step diverges "
           f"when alpha > 2 / lambda_max = {2 / largest:.4f}")
