"""Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017), written functionally.

For each task, start from the shared weights theta and take a few gradient steps on the support set,

    theta'_0 = theta,    theta'_{s+1} = theta'_s - alpha * grad L_support(theta'_s),

then score the adapted weights on the query set. Meta-training minimises the mean query loss
L_query(theta') over a batch of tasks with respect to theta, differentiating *through* the inner
steps (second order). First-order MAML treats each inner gradient as a constant; Meta-SGD
(Li et al., 2017) also learns alpha, one step size per weight.

The weights are a dictionary ``{name: tensor}`` evaluated with ``torch.func.functional_call``, so
adapting never copies or edits the module: the adapted weights of a task are just new tensors.
A meta-batch is processed by one of two strategies:

* ``"vmap"``: every task at once. The weights get a leading task dimension [B, ...] and the model
  is evaluated on all tasks with ``torch.func.vmap``; since task b's loss depends only on task b's
  weights, one ``torch.autograd.grad`` of the summed losses yields every task's inner gradient
  (measured 10-15% faster than nesting ``torch.func.grad`` inside ``vmap``, same numbers). Few,
  large kernels: best where per-operation overhead dominates (a small network such as the
  sinusoid MLP) and on GPUs: on an H100 a Conv4 meta-batch of 32 tasks ran 9-14x faster than
  learn2learn's loop, at 35-39x its memory (benchmarks/RESULTS.md, "throughput (cuda)").
* ``"loop"``: the tasks one after another, each task's meta-gradient computed as soon as its query
  loss is known, so only one task's graph is ever in memory (as with learn2learn's clone/adapt
  loop). Best for a convolutional network on the CPU, where vmap's batched convolutions are slower
  and keep every task's graph alive at once. A hybrid, the support-set inner loop vmapped over
  the tasks (many small passes, where per-operation overhead dominates) and the query passes
  looped, was also timed on the CPU and was slower than the loop (Conv4, 5 second-order steps),
  so the loop stays whole.

BatchNorm layers see one task's support set or query set per call in both strategies, so their
batch statistics are per task and per call, exactly as in learn2learn's loop (checked to float64
precision in tests/test_maml.py).

A head that starts every task at zero (``zero_init``, the "zeroing trick" of Kao, Chiu & Chen, ICLR
2022): the labels of a few-shot task are an arbitrary permutation of its classes, so a meta-learned
initial head, whose row n scores "whatever class got label n", can only add noise. Fixed at zero,
one inner step makes row n of the head proportional to the support features of class n minus their
mean, a prototype, and the meta-gradient goes to the features alone. Nothing meta-learned then
depends on the number of classes N, so with ``any_way`` the zero head gets one row per class of
each task: one model meta-trains on 40-way tasks and is tested on 20-way ones. It also saves work:
Conv4 computes head(features(x)), and while the head's weight W is zero the gradient reaching the
features, W^T dL/dlogits, is zero, so the first inner step moves the head alone. That step takes
only the head's gradient, skipping a backward pass through the convolutions and, for second
order, its double backward; the numbers are the same (tests/test_maml.py checks it).

Second-order inner steps run inside ``fewshot_course.models.graph_for_second_derivatives()``, a
hint that their graph will be differentiated twice: there Conv4 takes the convolution and
BatchNorm of ``fewshot_course.second_order``, whose double backward is written out by hand and
runs faster on the CPU than PyTorch's generic one (a 5-step second-order Conv4 meta-iteration
took 2.36 times its plain forward and backward passes, against 2.83 before; benchmarks/RESULTS.md,
section "throughput"). Other models ignore the hint; results are the same either way.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from fewshot_course.episodes import EpisodeBatch
from fewshot_course.models import Conv4, graph_for_second_derivatives

Params = dict[str, torch.Tensor]
#: (weights, inputs, targets) -> (loss, outputs), for one task or, vmapped, for a batch of tasks.
LossFunction = Callable[[Params, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
STRATEGIES = ("auto", "vmap", "loop")
LOSSES = ("cross_entropy", "mse")


class MAML(nn.Module):
    """MAML, first-order MAML and Meta-SGD around any ``nn.Module``.

    Args:
        model: the network, e.g. ``Conv4`` for images or ``MLP`` for the sinusoid. Its parameters
            are the meta-parameters theta (it is registered as a submodule: ``.to``,
            ``.parameters()`` and ``state_dict()`` include it).
        inner_lr: alpha, the inner-loop step size (Meta-SGD: the initial value of every step size).
        inner_steps: gradient steps on the support set per task.
        first_order: drop the second-order term (FOMAML): inner gradients are constants.
        learn_inner_lr: Meta-SGD, one learnable step size per weight (same shapes as the weights),
            returned by ``parameters()`` after the model's weights.
        strategy: ``"vmap"``, ``"loop"`` or ``"auto"``, which picks per call from the data's
            device and the model: vmap on accelerators; on the CPU vmap for networks without
            convolutions and the loop for convolutional ones. Measured on the course's 2-core CPU
            (benchmarks/RESULTS.md, section "throughput"): the vmapped sinusoid MLP (25 tasks)
            runs about 8x faster than learn2learn's loop and than our loop (7.6-10.5x over the
            runs recorded), in about the same memory; the vmapped Conv4 (32 tasks of 5-way 1-shot
            15-query) ran at about 0.3x the speed of learn2learn with about 18-20x its peak memory
            (3.2 GB), because convolutions with per-task weights become grouped convolutions
            and every task's graph is alive at once, while the loop runs at 1.0-1.23x
            learn2learn's speed (1.23x at 5 second-order steps, where the hand-written double
            backward of ``fewshot_course.second_order`` counts most; 1.28x with a zero head,
            which skips the body's first inner gradient) in 0.9-1.4x its memory.
        loss: ``"cross_entropy"`` (classification; logits [Q, N], labels [Q]) or ``"mse"``
            (regression; targets reshaped to the outputs' shape).
        zero_init: names of model parameters (e.g. ``("head.weight", "head.bias")``) that start
            every task at zero instead of at a meta-learned value; they get no meta-gradient.
        any_way: give the ``zero_init`` parameters one row per class of each task: their first
            dimension becomes the task's N (its largest support label + 1) instead of the model's,
            so any N can be trained and tested. Needs ``zero_init`` and the cross-entropy loss.

    Shapes: an ``EpisodeBatch`` holds support_x [B, S, ...], support_y [B, S], query_x [B, Q, ...],
    query_y [B, Q] (regression targets may carry trailing dimensions, e.g. [B, Q, 1]).
    """

    def __init__(self, model: nn.Module, *, inner_lr: float = 0.4, inner_steps: int = 1,
                 first_order: bool = False, learn_inner_lr: bool = False,
                 strategy: str = "auto", loss: str = "cross_entropy",
                 zero_init: tuple[str, ...] = (), any_way: bool = False):
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r} is not one of {STRATEGIES}")
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r} is not one of {LOSSES}")
        if int(inner_steps) != inner_steps or inner_steps < 0:
            raise ValueError(f"inner_steps={inner_steps} must be a whole number >= 0")
        names = dict(model.named_parameters())
        unknown = sorted(set(zero_init) - set(names))
        if unknown:
            raise ValueError(f"zero_init names {unknown} are not parameters of the model; "
                             f"it has {sorted(names)}")
        if any_way and not (zero_init and loss == "cross_entropy"):
            raise ValueError("any_way sizes the zero_init parameters (a head that starts every "
                             "task at zero) to each task's classes: it needs zero_init and "
                             f"loss='cross_entropy', got zero_init={tuple(zero_init)}, "
                             f"loss={loss!r}")
        self.model = model
        self.zero_init = tuple(zero_init)
        self.any_way = any_way
        self.inner_lr = float(inner_lr)
        self.inner_steps = int(inner_steps)
        self.first_order = first_order
        self.learn_inner_lr = learn_inner_lr
        self.strategy = strategy
        self.loss = loss
        # ParameterDict keys cannot contain ".", and "-" never occurs in a module's attribute name.
        # Built from (key, value) pairs: ParameterDict sorts the keys of a plain dict.
        self.inner_lrs = nn.ParameterDict([
            (_key(name), nn.Parameter(torch.full_like(weight, self.inner_lr)))
            for name, weight in model.named_parameters()]) if learn_inner_lr else None
        # functional_call needs to untie shared weights only if the model has any: untying inspects
        # every module on every call, as costly as a small network's forward pass.
        self._tied_weights = (len(list(model.named_parameters(remove_duplicate=False)))
                              != len(names))
        # Weights whose first inner gradient is exactly zero (see the module docstring).
        self._unmoved_by_first_step = frozenset(
            name for name in names if not name.startswith("head.")
        ) if isinstance(model, Conv4) and "head.weight" in self.zero_init else frozenset()

    def extra_repr(self) -> str:
        return (f"inner_lr={self.inner_lr}, inner_steps={self.inner_steps}, "
                f"first_order={self.first_order}, learn_inner_lr={self.learn_inner_lr}, "
                f"strategy={self.strategy!r}, loss={self.loss!r}"
                + (f", zero_init={self.zero_init}" if self.zero_init else "")
                + (", any_way=True" if self.any_way else ""))

    # --- one task -----------------------------------------------------------------------------

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor, *,
              steps: int | None = None, inner_lr: float | None = None) -> Params:
        """The adapted weights theta' of one task, as ``{name: tensor}``.

        support_x: [S, ...] inputs, support_y: [S] labels (or [S, ...] regression targets);
        ``steps`` overrides ``inner_steps`` and ``inner_lr`` the step size alpha (not for
        Meta-SGD, whose step sizes are learned). Gradients are always on for the inner loop. Where
        autograd is recording and the meta-parameters require gradients, theta' stays
        differentiable with respect to them (this is what meta-training backpropagates through);
        otherwise (evaluation under ``torch.no_grad()``) theta' is returned detached.
        """
        steps = self.inner_steps if steps is None else steps
        if inner_lr is not None and self.inner_lrs is not None:
            raise ValueError("Meta-SGD learns its step sizes; inner_lr cannot override them")
        differentiable = self._differentiable()
        params = self._initial_params(differentiable, support_y)
        with torch.enable_grad():
            for step in range(steps):
                params = self._inner_step(self._loss_and_output, params, support_x, support_y,
                                          differentiable, inner_lr, first=step == 0)
        return params if differentiable else _detached(params)

    def predict(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Outputs of the model with weights ``params``: x [Q, ...] -> logits [Q, N]."""
        return functional_call(self.model, params, (x,), tie_weights=self._tied_weights)

    # --- a batch of tasks -----------------------------------------------------------------------

    def meta_loss(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean query loss over the tasks of ``batch`` after adaptation, and mean query accuracy.

        Returns two scalar tensors: the loss (call ``.backward()`` on it for the meta-gradient)
        and the accuracy, detached; for ``loss="mse"`` the accuracy is NaN (no classes).

        With the loop strategy the meta-gradient is computed here, task by task, and the returned
        loss hands it out on ``.backward()``: any function of it (``2 * loss``, a sum with other
        losses) backpropagates correctly, but it cannot be differentiated twice.
        """
        if batch.support_x.shape[0] == 0:
            raise ValueError("meta_loss needs at least one task in the batch, got 0")
        if self.resolve_strategy(batch.support_x.device) == "vmap":
            return self._meta_loss_vmap(batch)
        return self._meta_loss_loop(batch)

    def resolve_strategy(self, device: torch.device | str) -> str:
        """The strategy ``meta_loss`` uses for data on ``device`` ("vmap" or "loop")."""
        if self.strategy != "auto":
            return self.strategy
        if torch.device(device).type != "cpu":
            return "vmap"
        convolutional = any(isinstance(m, nn.modules.conv._ConvNd) for m in self.model.modules())
        return "loop" if convolutional else "vmap"

    def _meta_loss_loop(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor]:
        differentiable = self._differentiable()
        meta_params = [p for p in self.parameters() if p.requires_grad]
        summed_gradients: list[torch.Tensor] | None = None
        losses, outputs = [], []
        for task in range(len(batch)):
            params = self.adapt(batch.support_x[task], batch.support_y[task])
            output = self.predict(params, batch.query_x[task])
            loss = self._criterion(output, batch.query_y[task])
            if differentiable:
                # Backpropagate now, so this task's graph is freed before the next task starts.
                gradients = torch.autograd.grad(loss, meta_params, allow_unused=True)
                gradients = [torch.zeros_like(p) if g is None else g
                             for p, g in zip(meta_params, gradients, strict=True)]
                summed_gradients = gradients if summed_gradients is None else [
                    total + g for total, g in zip(summed_gradients, gradients, strict=True)]
            losses.append(loss.detach())
            outputs.append(output.detach())
        mean_loss = torch.stack(losses).mean()
        if differentiable:
            mean_gradients = tuple(total / len(batch) for total in summed_gradients)
            mean_loss = _PrecomputedGradient.apply(mean_loss, mean_gradients, *meta_params)
        return mean_loss, self._accuracy(torch.stack(outputs), batch.query_y)

    def _meta_loss_vmap(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor]:
        differentiable = self._differentiable()
        theta = self._initial_params(differentiable, batch.support_y)
        # One set of weights per task, [B, *shape]: broadcast views of theta until the first step.
        params = {name: p.expand(len(batch), *p.shape) for name, p in theta.items()}
        batched = vmap(self._loss_and_output)
        with torch.enable_grad():
            for step in range(self.inner_steps):
                params = self._inner_step(batched, params, batch.support_x, batch.support_y,
                                          differentiable, first=step == 0)
        losses, outputs = batched(params, batch.query_x, batch.query_y)
        if not differentiable:
            losses = losses.detach()
        return losses.mean(), self._accuracy(outputs.detach(), batch.query_y)

    # --- the inner loop -------------------------------------------------------------------------

    def _inner_step(self, loss_and_output: LossFunction, params: Params, x: torch.Tensor,
                    y: torch.Tensor, differentiable: bool, inner_lr: float | None = None, *,
                    first: bool = False) -> Params:
        """One inner gradient step, theta' <- theta' - alpha * grad L_support(theta').

        Serves one task (``loss_and_output`` returns a scalar loss) and a vmapped batch of tasks
        (it returns [B] losses for weights [B, ...]: the gradient of their sum with respect to the
        weights holds each task's own gradient, as task b's loss depends on its weights only).
        ``first`` marks a task's first step, which leaves ``_unmoved_by_first_step`` as they are.
        """
        second_order = differentiable and not self.first_order
        moved = [name for name in params
                 if not (first and name in self._unmoved_by_first_step)]
        # First order (or no meta-gradient wanted): the inner gradient is a constant, so take it
        # with respect to detached copies and keep no graph of its computation.
        inputs = params if second_order else {n: p.detach().requires_grad_(n in moved)
                                              for n, p in params.items()}
        with graph_for_second_derivatives() if second_order else nullcontext():
            losses, _ = loss_and_output(inputs, x, y)
        gradients = torch.autograd.grad(losses.sum(), [inputs[name] for name in moved],
                                        create_graph=second_order, allow_unused=True)
        # An unmoved weight still becomes a new tensor (a view): the next step's gradient must be
        # taken with respect to theta' alone, not also through the head computed from it here.
        alpha = self.inner_lr if inner_lr is None else inner_lr
        gradient_of = dict(zip(moved, gradients, strict=True))
        stepped = {}
        for name, p in params.items():
            g = gradient_of.get(name)
            if g is None:  # not moved, or no gradient: the weight stays as it is
                stepped[name] = p.view_as(p)
            elif self.inner_lrs is None:
                # One fused operation, p + (-alpha) * g: for a small network such as the sinusoid
                # MLP the step's time is mostly per-operation overhead.
                stepped[name] = torch.add(p, g, alpha=-alpha)
            else:
                stepped[name] = p - self.inner_lrs[_key(name)] * g
        return stepped

    def _loss_and_output(self, params: Params, x: torch.Tensor,
                         y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.predict(params, x)
        return self._criterion(output, y), output

    def _initial_params(self, differentiable: bool, support_y: torch.Tensor) -> Params:
        """theta as a dictionary; detached where no meta-gradient is wanted (no graph to keep).

        ``zero_init`` parameters are fresh zeros, differentiable leaves outside the meta-parameters
        (a second-order inner step differentiates with respect to them); with ``any_way`` they
        have one row per class of ``support_y`` ([S] labels, or [B, S] for tasks of equal N).
        """
        theta = dict(self.model.named_parameters())
        if not differentiable:
            theta = _detached(theta)
        n_way = int(support_y.max()) + 1 if self.any_way and self.zero_init else None
        for name in self.zero_init:
            shape = theta[name].shape if n_way is None else (n_way, *theta[name].shape[1:])
            theta[name] = torch.zeros(shape, dtype=theta[name].dtype, device=theta[name].device,
                                      requires_grad=differentiable)
        return theta

    # --- helpers --------------------------------------------------------------------------------

    def _criterion(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss == "cross_entropy":
            return F.cross_entropy(output, target)
        return (output - target.reshape(output.shape)).pow(2).mean()

    def _accuracy(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean over tasks of the query accuracy; outputs [B, Q, N], targets [B, Q]."""
        if self.loss != "cross_entropy":
            return torch.full((), float("nan"), device=outputs.device)
        return (outputs.argmax(dim=-1) == targets).float().mean()

    def _differentiable(self) -> bool:
        """Whether the caller can backpropagate to the meta-parameters from here."""
        return torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())


class _PrecomputedGradient(torch.autograd.Function):
    """Identity on a scalar loss whose backward hands out gradients computed beforehand.

    Lets the loop strategy return an ordinary loss tensor for ``loss.backward()`` although each
    task was backpropagated (and its graph freed) as soon as it was done. Exact for any function
    of the loss: the chain rule only scales the stored gradients by ``grad_output``.
    """

    @staticmethod
    def forward(ctx, loss: torch.Tensor, gradients: tuple[torch.Tensor, ...],
                *meta_params: torch.Tensor) -> torch.Tensor:
        ctx.gradients = gradients
        return loss.clone()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return (None, None, *(grad_output * g for g in ctx.gradients))


def _key(parameter_name: str) -> str:
    return parameter_name.replace(".", "-")


def _detached(params: Params) -> Params:
    return {name: p.detach() for name, p in params.items()}


__all__ = ["MAML", "Params"]
