"""Our functional MAML against learn2learn's module-cloning MAML, and its own contract.

The cross-checks run in float64 on tiny networks, so any difference above rounding (1e-10
relative) is a real difference in the maths (for example BatchNorm statistics shared across tasks,
or a missing second-order term). They run on the CPU and, where available, on CUDA.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from fewshot_course.episodes import EpisodeBatch
from fewshot_course.maml import MAML
from fewshot_course.models import MLP, Conv4

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPE = torch.float64
TOLERANCE = 1e-10


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@pytest.fixture(scope="module")
def l2l():
    from fewshot_course.compat import import_learn2learn

    try:
        return import_learn2learn()
    except ImportError as error:
        pytest.skip(str(error))


def image_batch(tasks=2, n_way=5, k_shot=1, q_query=2, size=28, seed=0, device="cpu",
                dtype=DTYPE) -> EpisodeBatch:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_way)
    return EpisodeBatch(
        torch.rand(tasks, n_way * k_shot, 1, size, size, generator=generator, dtype=dtype),
        labels.repeat_interleave(k_shot).repeat(tasks, 1),
        torch.rand(tasks, n_way * q_query, 1, size, size, generator=generator, dtype=dtype),
        labels.repeat_interleave(q_query).repeat(tasks, 1),
        tuple(tuple(range(n_way)) for _ in range(tasks))).to(device)


def sinusoid_batch(tasks=3, k_shot=10, seed=0, device="cpu", dtype=DTYPE) -> EpisodeBatch:
    generator = torch.Generator().manual_seed(seed)
    amplitude = 0.1 + 4.9 * torch.rand(tasks, 1, 1, generator=generator, dtype=dtype)
    phase = math.pi * torch.rand(tasks, 1, 1, generator=generator, dtype=dtype)
    support_x = 10 * torch.rand(tasks, k_shot, 1, generator=generator, dtype=dtype) - 5
    query_x = 10 * torch.rand(tasks, k_shot, 1, generator=generator, dtype=dtype) - 5
    return EpisodeBatch(support_x, amplitude * torch.sin(support_x - phase),
                        query_x, amplitude * torch.sin(query_x - phase),
                        tuple(() for _ in range(tasks))).to(device)


def conv4(device="cpu") -> Conv4:
    torch.manual_seed(0)
    return Conv4(hidden=8).to(device, DTYPE)


def mlp(device="cpu") -> MLP:
    torch.manual_seed(0)
    return MLP().to(device, DTYPE)


def criterion(loss: str):
    if loss == "cross_entropy":
        return F.cross_entropy
    return lambda output, target: F.mse_loss(output, target.reshape(output.shape))


def learn2learn_meta_gradient(learner, batch: EpisodeBatch, steps: int, loss: str) -> list:
    """learn2learn's usual loop: clone, adapt, backpropagate each task's query loss / B."""
    loss_fn = criterion(loss)
    for task in batch:
        clone = learner.clone()
        for _ in range(steps):
            clone.adapt(loss_fn(clone(task.support_x), task.support_y))
        (loss_fn(clone(task.query_x), task.query_y) / len(batch)).backward()
    return [p.grad.clone() for p in learner.parameters()]


def our_meta_gradient(maml: MAML, batch: EpisodeBatch) -> list:
    loss, _ = maml.meta_loss(batch)
    loss.backward()
    return [p.grad.clone() for p in maml.parameters()]


def relative_error(ours: list, reference: list) -> float:
    ours, reference = torch.cat([g.flatten() for g in ours]), torch.cat(
        [g.flatten() for g in reference])
    return float((ours - reference).norm() / reference.norm())


CASES = [pytest.param(steps, first_order, strategy, id=f"{steps}step-{order}-{strategy}")
         for steps in (1, 5) for first_order, order in ((False, "2nd"), (True, "1st"))
         for strategy in ("loop", "vmap")]


# problem -> (model factory, batch factory, inner learning rate, loss)
PROBLEMS = {"conv4": (conv4, image_batch, 0.4, "cross_entropy"),
            "sinusoid": (mlp, sinusoid_batch, 0.01, "mse")}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("steps, first_order, strategy", CASES)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_meta_gradient_equals_learn2learn(l2l, device, problem, steps, first_order, strategy):
    make_model, make_batch, inner_lr, loss = PROBLEMS[problem]
    model, batch = make_model(device), make_batch(device=device)
    reference = learn2learn_meta_gradient(
        l2l.algorithms.MAML(copy.deepcopy(model), lr=inner_lr, first_order=first_order),
        batch, steps, loss)
    maml = MAML(copy.deepcopy(model), inner_lr=inner_lr, inner_steps=steps,
                first_order=first_order, strategy=strategy, loss=loss)
    assert relative_error(our_meta_gradient(maml, batch), reference) < TOLERANCE


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("first_order", [False, True], ids=["2nd", "1st"])
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_meta_sgd_equals_learn2learn(l2l, device, first_order, strategy):
    model, batch = conv4(device), image_batch(device=device)
    reference = learn2learn_meta_gradient(
        l2l.algorithms.MetaSGD(copy.deepcopy(model), lr=0.4, first_order=first_order),
        batch, 2, "cross_entropy")
    maml = MAML(copy.deepcopy(model), inner_lr=0.4, inner_steps=2, first_order=first_order,
                learn_inner_lr=True, strategy=strategy)
    # Both list the model's weights first, then one step-size tensor per weight, in model order.
    assert relative_error(our_meta_gradient(maml, batch), reference) < TOLERANCE


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_meta_sgd_step_sizes_are_learned(strategy):
    model = conv4()
    maml = MAML(model, inner_lr=0.3, learn_inner_lr=True, strategy=strategy)
    step_sizes = list(maml.inner_lrs.values())
    assert list(maml.parameters()) == list(model.parameters()) + step_sizes
    for step_size, weight in zip(step_sizes, model.parameters(), strict=True):
        assert step_size.shape == weight.shape and bool((step_size == 0.3).all())
    our_meta_gradient(maml, image_batch())
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in step_sizes)
    # One Adam step moves them away from their initial value.
    torch.optim.Adam(maml.parameters(), lr=1e-3).step()
    assert not torch.allclose(step_sizes[0], torch.full_like(step_sizes[0], 0.3))


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_first_order_differs_from_second_order(strategy):
    model, batch = conv4(), image_batch()
    second = our_meta_gradient(MAML(copy.deepcopy(model), inner_steps=2, strategy=strategy), batch)
    first = our_meta_gradient(
        MAML(copy.deepcopy(model), inner_steps=2, first_order=True, strategy=strategy), batch)
    assert relative_error(first, second) > 1e-3


def test_loss_and_accuracy_are_means_over_tasks_of_adapt_then_predict():
    model, batch = conv4(), image_batch(tasks=3, q_query=3)
    for strategy in ("loop", "vmap"):
        maml = MAML(model, inner_steps=2, strategy=strategy)
        loss, accuracy = maml.meta_loss(batch)
        losses, accuracies = [], []
        for task in batch:
            logits = maml.predict(maml.adapt(task.support_x, task.support_y), task.query_x)
            assert logits.shape == (15, 5)
            losses.append(F.cross_entropy(logits, task.query_y))
            accuracies.append((logits.argmax(dim=1) == task.query_y).float().mean())
        torch.testing.assert_close(loss, torch.stack(losses).mean(), rtol=1e-12, atol=0)
        torch.testing.assert_close(accuracy, torch.stack(accuracies).mean())
        assert loss.ndim == 0 and accuracy.ndim == 0 and not accuracy.requires_grad


def test_regression_accuracy_is_nan():
    maml = MAML(mlp(), inner_lr=0.01, loss="mse")
    loss, accuracy = maml.meta_loss(sinusoid_batch())
    assert math.isfinite(float(loss.detach())) and math.isnan(float(accuracy))


def test_gradient_survives_zero_grad_between_meta_loss_and_backward():
    """The training loop calls meta_loss, then optimiser.zero_grad(), then loss.backward()."""
    model, batch = conv4(), image_batch()
    expected = our_meta_gradient(MAML(copy.deepcopy(model), strategy="vmap"), batch)
    maml = MAML(copy.deepcopy(model), strategy="loop")
    optimiser = torch.optim.SGD(maml.parameters(), lr=0.1)
    loss, _ = maml.meta_loss(batch)
    optimiser.zero_grad()
    (3 * loss).backward()  # the chain rule scales the gradient like any other loss
    got = [p.grad for p in maml.parameters()]
    assert relative_error(got, [3 * g for g in expected]) < TOLERANCE


def test_adapt_leaves_the_model_untouched_and_lowers_the_support_loss():
    model = conv4()
    before = {name: p.clone() for name, p in model.named_parameters()}
    maml = MAML(model, inner_lr=0.1, inner_steps=3)
    task = image_batch(k_shot=2)[0]
    adapted = maml.adapt(task.support_x, task.support_y)
    assert set(adapted) == set(before)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name])
    initial = F.cross_entropy(model(task.support_x), task.support_y)
    final = F.cross_entropy(maml.predict(adapted, task.support_x), task.support_y)
    assert final < initial
    # Differentiable with respect to the meta-parameters, for meta-training.
    assert all(p.grad_fn is not None for p in adapted.values())


def test_adapt_one_step_is_one_gradient_step():
    model = mlp()
    task = sinusoid_batch()[0]
    maml = MAML(model, inner_lr=0.01, loss="mse")
    loss = F.mse_loss(model(task.support_x), task.support_y)
    gradients = torch.autograd.grad(loss, list(model.parameters()))
    adapted = maml.adapt(task.support_x, task.support_y)
    for (name, p), g in zip(model.named_parameters(), gradients, strict=True):
        torch.testing.assert_close(adapted[name], p - 0.01 * g, rtol=1e-12, atol=1e-14)
    zero = maml.adapt(task.support_x, task.support_y, steps=0)
    assert all(torch.equal(zero[name], p) for name, p in model.named_parameters())


def test_adapted_weights_reach_every_use_of_a_shared_weight():
    """Two layers that share one weight (tied): the adapted weight replaces it in both."""
    torch.manual_seed(0)
    first, second = torch.nn.Linear(3, 3).double(), torch.nn.Linear(3, 3).double()
    second.weight = first.weight
    model = torch.nn.Sequential(first, torch.nn.Tanh(), second)
    maml = MAML(model, inner_lr=0.1, loss="mse")
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 3, dtype=torch.float64)
    adapted = maml.adapt(x, y)
    assert "2.weight" not in adapted  # named once, as model.named_parameters() names it
    weight = adapted["0.weight"]
    expected = F.linear(torch.tanh(F.linear(x, weight, adapted["0.bias"])), weight,
                        adapted["2.bias"])
    torch.testing.assert_close(maml.predict(adapted, x), expected, rtol=1e-12, atol=1e-14)


def test_evaluation_under_no_grad():
    model, batch = conv4(), image_batch()
    maml = MAML(model, inner_steps=2)
    with torch.no_grad():
        adapted = maml.adapt(batch[0].support_x, batch[0].support_y)
        results = {s: MAML(model, inner_steps=2, strategy=s).meta_loss(batch)
                   for s in ("loop", "vmap")}
    assert all(not p.requires_grad for p in adapted.values())
    expected = maml.predict(maml.adapt(batch[0].support_x, batch[0].support_y), batch[0].query_x)
    torch.testing.assert_close(maml.predict(adapted, batch[0].query_x), expected.detach())
    loss_with_grad, accuracy_with_grad = maml.meta_loss(batch)
    for loss, accuracy in results.values():
        assert not loss.requires_grad
        torch.testing.assert_close(loss, loss_with_grad.detach(), rtol=1e-12, atol=0)
        torch.testing.assert_close(accuracy, accuracy_with_grad)


def test_meta_loss_is_deterministic_on_the_cpu():
    batch = image_batch(dtype=torch.float32)
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        maml = MAML(Conv4(hidden=8), inner_steps=2)
        runs.append(our_meta_gradient(maml, batch))
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


def test_auto_strategy():
    image_maml, sinusoid_maml = MAML(Conv4(hidden=8)), MAML(MLP(), loss="mse")
    assert image_maml.resolve_strategy("cpu") == "loop"
    assert sinusoid_maml.resolve_strategy("cpu") == "vmap"
    assert image_maml.resolve_strategy("cuda") == "vmap"
    assert MAML(Conv4(hidden=8), strategy="loop").resolve_strategy("cuda") == "loop"


@pytest.mark.parametrize("keyword, value", [("strategy", "fast"), ("loss", "hinge"),
                                            ("inner_steps", -1), ("inner_steps", 1.5)])
def test_invalid_settings_are_clear_errors(keyword, value):
    with pytest.raises(ValueError, match=keyword):
        MAML(MLP(), **{keyword: value})


def test_empty_batch_is_a_clear_error():
    batch = image_batch(tasks=1)
    empty = EpisodeBatch(batch.support_x[:0], batch.support_y[:0], batch.query_x[:0],
                         batch.query_y[:0], ())
    with pytest.raises(ValueError, match="at least one task"):
        MAML(conv4()).meta_loss(empty)


def test_state_dict_round_trip_keeps_step_sizes():
    maml = MAML(Conv4(hidden=8), learn_inner_lr=True)
    with torch.no_grad():
        next(iter(maml.inner_lrs.values())).fill_(0.123)
    restored = MAML(Conv4(hidden=8), learn_inner_lr=True)
    restored.load_state_dict(maml.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(maml.parameters(), restored.parameters(),
                                                     strict=True))


HEAD = ("head.weight", "head.bias")


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("first_order", [False, True], ids=["2nd", "1st"])
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_zero_head_equals_learn2learn_on_a_zeroed_head(l2l, first_order, strategy, steps):
    """A head that starts every task at zero: learn2learn on a copy whose head is zero gives the
    same meta-gradient for every other weight; ours gives the head none (it is not meta-learned).
    Ours skips the body's first inner gradient (zero behind a zero head); learn2learn takes it."""
    model, batch = conv4(), image_batch(k_shot=2)
    reference_model = copy.deepcopy(model)
    with torch.no_grad():
        reference_model.head.weight.zero_()
        reference_model.head.bias.zero_()
    learner = l2l.algorithms.MAML(reference_model, lr=0.4, first_order=first_order)
    reference = dict(zip((name for name, _ in reference_model.named_parameters()),
                         learn2learn_meta_gradient(learner, batch, steps, "cross_entropy"),
                         strict=True))
    maml = MAML(model, inner_lr=0.4, inner_steps=steps, first_order=first_order,
                strategy=strategy, zero_init=HEAD)
    maml.meta_loss(batch)[0].backward()
    body = [name for name, _ in model.named_parameters() if name not in HEAD]
    ours = dict(model.named_parameters())
    assert relative_error([ours[n].grad for n in body], [reference[n] for n in body]) < TOLERANCE
    assert all(ours[n].grad is None or not ours[n].grad.any() for n in HEAD)


def test_zero_head_adapts_from_zero_and_leaves_the_model_alone():
    model, task = conv4(), image_batch()[0]
    maml = MAML(model, inner_lr=0.4, zero_init=HEAD)
    before = model.head.weight.clone()
    with torch.no_grad():
        untrained = maml.adapt(task.support_x, task.support_y, steps=0)
    assert not untrained["head.weight"].any() and not untrained["head.bias"].any()
    # One step from a zero head: every logit starts equal, so the bias moves by
    # alpha * (label frequency - 1/N), which is zero for a balanced support set.
    adapted = maml.adapt(task.support_x, task.support_y)
    torch.testing.assert_close(adapted["head.bias"].detach(),
                               torch.zeros(5, dtype=DTYPE), rtol=0, atol=1e-12)
    assert adapted["head.weight"].detach().any()
    assert torch.equal(model.head.weight, before)
    assert all(torch.equal(adapted[name], weight) for name, weight in model.named_parameters()
               if name not in HEAD)
    with pytest.raises(ValueError, match="zero_init"):
        MAML(conv4(), zero_init=("head.weights",))


def backward_convolutions(function) -> int:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        function()
    return sum(event.count for event in profile.key_averages()
               if event.key == "aten::convolution_backward")


def test_the_first_step_from_a_zero_head_skips_the_bodys_gradient():
    """Behind a zero head the body's gradient is zero: the first inner step does not compute it
    (no backward pass through the 4 convolutions), later steps do, and the body then moves."""
    model, task = conv4(), image_batch()[0]
    maml = MAML(model, inner_lr=0.4, zero_init=HEAD)
    assert backward_convolutions(lambda: maml.adapt(task.support_x, task.support_y)) == 0
    assert backward_convolutions(lambda: maml.adapt(task.support_x, task.support_y, steps=2)) == 4
    assert backward_convolutions(lambda: MAML(model, inner_lr=0.4).adapt(
        task.support_x, task.support_y)) == 4
    two_steps = maml.adapt(task.support_x, task.support_y, steps=2)
    assert not any(torch.equal(two_steps[name], weight)
                   for name, weight in model.named_parameters() if name not in HEAD)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_any_way_zero_head_equals_a_zero_head_of_the_tasks_size(strategy):
    """With any_way a 5-row head meta-trains on 7-way tasks exactly as a 7-row zero head does."""
    five_rows, batch = conv4(), image_batch(n_way=7)
    torch.manual_seed(1)
    seven_rows = Conv4(n_way=7, hidden=8).to(DTYPE)
    body = {name: w for name, w in five_rows.state_dict().items() if not name.startswith("head")}
    seven_rows.load_state_dict(body, strict=False)
    any_way = MAML(five_rows, inner_lr=0.4, inner_steps=2, strategy=strategy, zero_init=HEAD,
                   any_way=True)
    sized = MAML(seven_rows, inner_lr=0.4, inner_steps=2, strategy=strategy, zero_init=HEAD)
    loss, accuracy = any_way.meta_loss(batch)
    expected_loss, expected_accuracy = sized.meta_loss(batch)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-12, atol=0)
    assert accuracy == expected_accuracy
    loss.backward()
    expected_loss.backward()
    grads = dict(five_rows.named_parameters())
    expected = dict(seven_rows.named_parameters())
    names = [name for name in body if name in grads]
    assert relative_error([grads[n].grad for n in names],
                          [expected[n].grad for n in names]) < TOLERANCE
    adapted = any_way.adapt(batch.support_x[0, :3], batch.support_y[0, :3])
    assert adapted["head.weight"].shape == (3, five_rows.head.in_features)
    with pytest.raises(ValueError, match="any_way"):
        MAML(conv4(), any_way=True)
    with pytest.raises(ValueError, match="any_way"):
        MAML(mlp(), loss="mse", zero_init=("layers.0.weight",), any_way=True)


def test_adapt_step_size_override():
    model, task = mlp(), sinusoid_batch()[0]
    small = MAML(model, inner_lr=0.01, inner_steps=2, loss="mse")
    large = MAML(model, inner_lr=0.4, inner_steps=2, loss="mse")
    expected = small.adapt(task.support_x, task.support_y)
    overridden = large.adapt(task.support_x, task.support_y, inner_lr=0.01)
    for name, weight in expected.items():
        torch.testing.assert_close(overridden[name], weight, rtol=0, atol=0)
    with pytest.raises(ValueError, match="Meta-SGD"):
        MAML(mlp(), learn_inner_lr=True, loss="mse").adapt(task.support_x, task.support_y,
                                                           inner_lr=0.1)
