"""Checks for 03_maml_implementation: a functional inner loop, a vmapped meta-batch, learn2learn.

Every check builds a small float64 Conv4 and a few random tasks, runs the learner's function and
compares it with ``fewshot_course.maml.MAML``, which the test suite checks against learn2learn.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from checks import passed
from fewshot_course.episodes import EpisodeBatch
from fewshot_course.maml import MAML
from fewshot_course.models import Conv4

INNER_LR = 0.4
TOLERANCE = 1e-8  # relative, in float64


def _model(seed: int = 0) -> Conv4:
    torch.manual_seed(seed)
    return Conv4(in_channels=1, n_way=5, hidden=8).double()


def _batch(tasks: int = 3, n_way: int = 5, k_shot: int = 2, q_query: int = 3,
           seed: int = 0) -> EpisodeBatch:
    """Random 28x28 images (the gradients are what is compared, not the accuracy)."""
    generator = torch.Generator().manual_seed(seed)

    def images(per_class: int) -> torch.Tensor:
        return torch.rand(tasks, n_way * per_class, 1, 28, 28, generator=generator,
                          dtype=torch.float64)

    def labels(per_class: int) -> torch.Tensor:
        return torch.arange(n_way).repeat_interleave(per_class).expand(tasks, -1).clone()

    classes = tuple(tuple(range(n_way)) for _ in range(tasks))
    return EpisodeBatch(images(k_shot), labels(k_shot), images(q_query), labels(q_query), classes)


def _single(batch: EpisodeBatch, task: int) -> EpisodeBatch:
    return EpisodeBatch.stack([batch[task]])


def _grads(loss: torch.Tensor, model: torch.nn.Module) -> list[torch.Tensor]:
    assert isinstance(loss, torch.Tensor) and loss.numel() == 1, (
        f"expected a scalar loss tensor, got {type(loss).__name__} "
        f"{tuple(getattr(loss, 'shape', ()))}")
    assert loss.requires_grad, ("the loss does not depend on the model's weights: build it from "
                                "dict(model.named_parameters()) with functional_call")
    return list(torch.autograd.grad(loss, list(model.parameters()), allow_unused=True))


def _relative_error(ours: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    worst = 0.0
    for a, b in zip(ours, reference, strict=True):
        a = torch.zeros_like(b) if a is None else a
        worst = max(worst, float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)))
    return worst


def _library_grads(model, batch, *, steps: int = 1, first_order: bool = False,
                   strategy: str = "loop") -> tuple[torch.Tensor, list[torch.Tensor]]:
    maml = MAML(model, inner_lr=INNER_LR, inner_steps=steps, first_order=first_order,
                strategy=strategy)
    loss, _ = maml.meta_loss(batch)
    return loss.detach(), list(torch.autograd.grad(loss, list(model.parameters())))


def _diagnose(ours: list[torch.Tensor], model, batch, steps: int) -> str:
    """A hint naming the usual mistake, by comparing with the usual wrong answers."""
    _, first_order = _library_grads(model, batch, steps=steps, first_order=True)
    if _relative_error(ours, first_order) < TOLERANCE:
        return ("it equals first-order MAML's: pass create_graph=True to torch.autograd.grad in "
                "the inner step")
    task = batch[0]
    plain = _grads(torch.nn.functional.cross_entropy(model(task.query_x), task.query_y), model)
    if _relative_error(ours, plain) < TOLERANCE:
        return ("it equals the gradient of the unadapted query loss: evaluate the query set with "
                "the adapted weights, functional_call(model, fast_weights, (query_x,))")
    return "check the inner update theta' = theta - inner_lr * grad and the number of steps"


def check_1(answer: Callable) -> None:
    """answer(model, support_x, support_y, query_x, query_y, inner_lr, inner_steps) -> loss."""
    model, batch = _model(), _batch(tasks=1)
    task = batch[0]
    for steps in (1, 3):
        loss = answer(model, task.support_x, task.support_y, task.query_x, task.query_y,
                      INNER_LR, steps)
        reference_loss, reference = _library_grads(model, batch, steps=steps)
        assert torch.allclose(loss.detach(), reference_loss, rtol=TOLERANCE, atol=0), (
            f"with {steps} inner step(s) the query loss is {float(loss):.10f}, the library's "
            f"MAML gives {float(reference_loss):.10f}")
        ours = _grads(loss, model)
        error = _relative_error(ours, reference)
        assert error < TOLERANCE, (f"with {steps} inner step(s) the meta-gradient differs from "
                                   f"the library's by {error:.1e} (relative); "
                                   + _diagnose(ours, model, batch, steps))
    passed("query loss and second-order meta-gradient match fewshot_course.maml.MAML "
           "(1 and 3 inner steps, float64)")


def check_2(answer: Callable) -> None:
    """answer(model, batch, inner_lr) -> per-task query losses [B], computed with vmap."""
    model, batch = _model(seed=1), _batch(tasks=4, seed=1)
    losses = answer(model, batch, INNER_LR)
    assert isinstance(losses, torch.Tensor) and tuple(losses.shape) == (len(batch),), (
        f"expected a tensor of {len(batch)} per-task losses, got "
        f"{type(losses).__name__} {tuple(getattr(losses, 'shape', ()))}")
    for task in range(len(batch)):
        reference_loss, _ = _library_grads(model, _single(batch, task))
        assert torch.allclose(losses[task].detach(), reference_loss, rtol=TOLERANCE, atol=0), (
            f"task {task}: loss {float(losses[task]):.10f}, the library's MAML gives "
            f"{float(reference_loss):.10f}")
    _, reference = _library_grads(model, batch, strategy="loop")
    ours = _grads(losses.mean(), model)
    error = _relative_error(ours, reference)
    assert error < TOLERANCE, (f"the meta-gradient of the mean loss differs from the library's "
                               f"by {error:.1e} (relative); " + _diagnose(ours, model, batch, 1))
    passed(f"{len(batch)} per-task losses and their meta-gradient match "
           "MAML(strategy='loop') (float64)")


def check_3(answer: Callable) -> None:
    """answer(model, batch, inner_lr, first_order) -> mean query loss via learn2learn."""
    model, batch = _model(seed=2), _batch(tasks=3, seed=2)
    for first_order in (False, True):
        loss = answer(model, batch, INNER_LR, first_order)
        reference_loss, reference = _library_grads(model, batch, first_order=first_order)
        assert torch.allclose(loss.detach(), reference_loss, rtol=TOLERANCE, atol=0), (
            f"first_order={first_order}: mean query loss {float(loss):.10f}, our MAML gives "
            f"{float(reference_loss):.10f}")
        error = _relative_error(_grads(loss, model), reference)
        assert error < TOLERANCE, (f"first_order={first_order}: the meta-gradient differs from "
                                   f"our MAML's by {error:.1e} (relative)")
    passed("learn2learn's clone()/adapt() meta-gradients equal our MAML's, second and first order")
