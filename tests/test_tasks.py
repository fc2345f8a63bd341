"""The sinusoid family of the MAML paper, and its Figure 2."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from fewshot_course.maml import MAML
from fewshot_course.models import MLP
from fewshot_course.tasks import (
    Sinusoid,
    SinusoidTask,
    adapted_predictions,
    plot_adaptation,
    pretrain_regressor,
)


def test_tasks_and_points_cover_the_papers_ranges():
    family = Sinusoid(k_shot=10, q_query=5, seed=0)
    tasks = [family.sample_task() for _ in range(500)]
    amplitudes = torch.tensor([t.amplitude for t in tasks])
    phases = torch.tensor([t.phase for t in tasks])
    assert 0.1 <= amplitudes.min() < 0.3 and 4.8 < amplitudes.max() <= 5.0
    assert 0.0 <= phases.min() < 0.1 and math.pi - 0.1 < phases.max() <= math.pi

    episode = family.episode(SinusoidTask(2.0, 0.5))
    assert episode.support_x.shape == episode.support_y.shape == (10, 1)
    assert episode.query_x.shape == episode.query_y.shape == (5, 1)
    x = torch.cat([episode.support_x, episode.query_x])
    assert x.min() >= -5 and x.max() <= 5
    torch.testing.assert_close(episode.support_y, 2.0 * torch.sin(episode.support_x - 0.5))


def test_sampling_is_seeded_and_its_state_can_be_saved():
    a, b = Sinusoid(seed=4), Sinusoid(seed=4)
    assert torch.equal(a.sample().support_y, b.sample().support_y)
    state = a.state_dict()
    after = a.sample_batch(3)
    b.load_state_dict(state)
    assert torch.equal(b.sample_batch(3).query_x, after.query_x)
    assert after.support_x.shape == (3, 10, 1)


def test_maml_regression_batches_train_to_a_lower_loss():
    torch.manual_seed(0)
    maml = MAML(MLP((1, 20, 20, 1)), inner_lr=0.01, loss="mse")
    optimiser = torch.optim.Adam(maml.parameters(), lr=1e-2)
    family = Sinusoid(seed=1)
    held_out = family.sample_batch(50)
    before, _ = maml.meta_loss(held_out)
    for _ in range(40):
        loss, _ = maml.meta_loss(family.sample_batch(10))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after, _ = maml.meta_loss(held_out)
    assert after.item() < 0.8 * before.item()


def test_adapted_predictions_are_plain_gradient_steps_on_the_support_mse():
    torch.manual_seed(0)
    model = MLP((1, 8, 1))
    maml = MAML(model, inner_lr=0.05, loss="mse")
    episode = Sinusoid(seed=2).sample()
    x = torch.linspace(-5, 5, 7)[:, None]
    predictions = adapted_predictions(maml, episode.support_x, episode.support_y, x, (0, 1))

    torch.testing.assert_close(predictions[0], model(x))
    loss = F.mse_loss(model(episode.support_x), episode.support_y)
    gradients = torch.autograd.grad(loss, list(model.parameters()))
    stepped = {name: p - 0.05 * g for (name, p), g in
               zip(model.named_parameters(), gradients, strict=True)}
    torch.testing.assert_close(predictions[1],
                               torch.func.functional_call(model, stepped, (x,)).detach())


def test_pretraining_fits_the_pooled_waves_and_figure_2_has_two_labelled_panels():
    torch.manual_seed(0)
    family = Sinusoid(seed=5)
    pooled = family.sample_batch(100)
    model = MLP((1, 20, 20, 1))
    initial = F.mse_loss(model(pooled.support_x.flatten(0, 1)), pooled.support_y.flatten(0, 1))
    pretrain_regressor(model, Sinusoid(seed=6), 100, batch_size=10, lr=1e-2)
    trained = F.mse_loss(model(pooled.support_x.flatten(0, 1)), pooled.support_y.flatten(0, 1))
    assert trained.item() < initial.item()

    figure = plot_adaptation(MAML(MLP((1, 20, 20, 1)), inner_lr=0.01, loss="mse"), model,
                             SinusoidTask(3.0, 1.0), k_shot=5, steps=(0, 1, 10))
    assert isinstance(figure, Figure)
    maml_axes, pretrained_axes = figure.axes
    assert maml_axes.get_title() == "MAML, K = 5"
    assert pretrained_axes.get_title() == "pre-trained, K = 5"
    assert maml_axes.get_xlabel() == "x" and maml_axes.get_ylabel() == "y"
    labels = [line.get_label() for line in maml_axes.get_lines()]
    assert labels == ["ground truth", "before adaptation", "after 1 grad step",
                      "after 10 grad steps"]
