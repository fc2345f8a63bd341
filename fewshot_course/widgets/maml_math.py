"""The inner-loop explorer: how step size and number of steps change an adaptation (notebook 02).

For a sinusoid task it shows, for each regressor given, the curve before and after the chosen
number of inner gradient steps, and the query error after every number of steps from 0 to
``max_steps``; too large a step size makes the error grow instead of shrink.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from fewshot_course.maml import MAML
from fewshot_course.models import MLP
from fewshot_course.tasks import Sinusoid
from fewshot_course.widgets._png import figure_png

__all__ = ["inner_loop_explorer", "inner_loop_figure", "query_errors"]


def query_errors(learner: MAML, support_x: torch.Tensor, support_y: torch.Tensor,
                 query_x: torch.Tensor, query_y: torch.Tensor, max_steps: int) -> list[float]:
    """Query MSE after 0, 1, ..., max_steps inner steps of ``learner`` (its step size and loss).

    support_x, support_y: [K, 1]; query_x, query_y: [Q, 1]. Returns max_steps + 1 floats
    (``inf`` once the adaptation has diverged).
    """
    errors = []
    with torch.no_grad():
        for steps in range(max_steps + 1):
            params = learner.adapt(support_x, support_y, steps=steps)
            error = F.mse_loss(learner.predict(params, query_x), query_y).item()
            errors.append(error if math.isfinite(error) else math.inf)
    return errors


def inner_loop_figure(models: dict[str, nn.Module], inner_lr: float, steps: int, *,
                      k_shot: int = 10, seed: int = 0, max_steps: int = 20) -> Figure:
    """Left: each model's curve before and after ``steps`` steps of size ``inner_lr`` on K points
    of a random sinusoid (drawn from ``seed``). Right: query MSE against the number of steps."""
    family = Sinusoid(k_shot, 100, seed=seed)
    task = family.sample_task()
    episode = family.episode(task)
    support_x, support_y = episode.support_x, episode.support_y
    x = torch.linspace(*family.x_range, 200).unsqueeze(1)

    figure = Figure(figsize=(11, 4), layout="constrained")
    curves, errors_ax = figure.subplots(1, 2, width_ratios=[3, 2])
    curves.plot(x, task(x), color="black", linewidth=2, label="ground truth")
    curves.scatter(support_x, support_y, marker="^", color="tab:purple", zorder=3,
                   label=f"{k_shot} support points")
    colours = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:brown", "tab:pink")
    for colour, (name, model) in zip(colours, models.items(), strict=False):
        learner = MAML(model, inner_lr=inner_lr, loss="mse")
        with torch.no_grad():
            before = learner.predict(learner.adapt(support_x, support_y, steps=0), x)
            after = learner.predict(learner.adapt(support_x, support_y, steps=steps), x)
        curves.plot(x, before, color=colour, linestyle=":", label=f"{name}, before")
        curves.plot(x, after, color=colour, label=f"{name}, after {steps} step(s)")
        errors = query_errors(learner, support_x, support_y, episode.query_x, episode.query_y,
                              max_steps)
        errors_ax.plot(range(max_steps + 1), errors, marker="o", markersize=3, color=colour,
                       label=name)
    low, high = task(x).min().item(), task(x).max().item()
    margin = 0.5 * (high - low) + 1.0
    curves.set_ylim(low - margin, high + margin)  # a diverged curve must not squash the plot
    curves.set_xlabel("x")
    curves.set_ylabel("y")
    curves.set_title(f"y = {task.amplitude:.2f} sin(x - {task.phase:.2f}), alpha = {inner_lr:.3g}")
    curves.legend(fontsize="x-small", loc="upper left")
    errors_ax.axvline(steps, color="grey", linestyle="--", linewidth=1)
    errors_ax.set_yscale("log")
    errors_ax.set_xlabel("inner gradient steps")
    errors_ax.set_ylabel("query MSE (log scale)")
    errors_ax.set_title("error on 100 query points")
    errors_ax.legend(fontsize="small")
    return figure


def inner_loop_explorer(models: dict[str, nn.Module] | None = None, *, inner_lr: float = 0.01,
                        steps: int = 1, seed: int = 0, k_shot: int = 10,
                        max_steps: int = 20) -> widgets.VBox:
    """Sliders for the inner step size alpha, the number of inner steps and the task.

    Args:
        models: regressors [B, 1] -> [B, 1] to compare, by name (e.g. a meta-trained MAML's
            ``.model`` and a pre-trained baseline); a freshly initialised ``MLP()`` when None.
        inner_lr, steps, seed: initial slider positions (alpha from 1e-3 to 1, 0 to max_steps
            steps, task seeds 0 to 99).
        k_shot: K support points of the task.

    Returns:
        A VBox with the CSS class ``inner-loop-explorer``: the sliders and the picture drawn by
        ``inner_loop_figure`` (a PNG in an ``ipywidgets.Image``), redrawn when a slider is released.
    """
    if models is None:
        models = {"random initialisation": MLP()}
    if not 1e-3 <= inner_lr <= 1.0:
        raise ValueError(f"inner_lr = {inner_lr} is outside the slider's range 0.001..1")
    if not 0 <= steps <= max_steps:
        raise ValueError(f"steps = {steps} is outside 0..max_steps = {max_steps}")
    common = {"continuous_update": False, "style": {"description_width": "initial"}}
    alpha = widgets.FloatLogSlider(value=inner_lr, base=10, min=-3, max=0, step=0.1,
                                   description="inner lr α", readout_format=".3f", **common)
    step_count = widgets.IntSlider(value=steps, min=0, max=max_steps, description="steps", **common)
    task_seed = widgets.IntSlider(value=seed, min=0, max=99, description="task seed", **common)
    image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))

    def redraw(_change=None) -> None:
        figure = inner_loop_figure(models, alpha.value, step_count.value, k_shot=k_shot,
                                   seed=task_seed.value, max_steps=max_steps)
        image.value = figure_png(figure)

    for control in (alpha, step_count, task_seed):
        control.observe(redraw, names="value")
    redraw()
    explorer = widgets.VBox([widgets.HBox([alpha, step_count, task_seed]), image])
    explorer.add_class("inner-loop-explorer")
    return explorer
