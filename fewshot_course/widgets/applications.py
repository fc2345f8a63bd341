"""Widgets for applying few-shot methods (notebooks 04 and 05).

* ``adaptation_explorer``: pick a method, the number of shots and a seed; see one episode with
  every query's predicted class, right in green and wrong in red, and how each method scored it.
* ``imbalance_explorer``: set how many shots the rarest and the commonest class get; see each
  method's accuracy on the rare and on the common classes over a few episodes.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from fewshot_course.analysis import episode_predictions, per_class_accuracy
from fewshot_course.data import EpisodeSampler
from fewshot_course.episodes import Episode
from fewshot_course.widgets._png import figure_png

__all__ = ["adaptation_explorer", "plot_predictions", "imbalance_explorer"]

MAX_SHOTS = 5
MAX_SEED = 99


def _show(ax, image: torch.Tensor) -> None:
    image = image.detach().cpu()
    if image.shape[0] == 1:
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1))
    ax.set_xticks([])
    ax.set_yticks([])


def plot_predictions(episode: Episode, predicted: torch.Tensor,
                     class_names: list[str] | None = None, title: str = "") -> Figure:
    """One column per class: its support images on top, then its queries titled with the prediction.

    A query's title is green when the prediction is right and red when it is wrong.
    ``class_names`` gives names for the episode's labels 0..N-1.
    """
    n_way = episode.n_way
    support_y, query_y = episode.support_y.cpu(), episode.query_y.cpu()
    shots = int(torch.bincount(support_y, minlength=n_way).max())
    queries = int(torch.bincount(query_y, minlength=n_way).max())
    names = class_names or [str(c) for c in range(n_way)]
    figure, axes = plt.subplots(shots + queries, n_way, figsize=(1.45 * n_way,
                                                                  1.45 * (shots + queries) + 0.5),
                                squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for c in range(n_way):
        for row, index in enumerate((support_y == c).nonzero().flatten().tolist()):
            ax = axes[row][c]
            ax.axis("on")
            _show(ax, episode.support_x[index])
            if row == 0:
                ax.set_title(f"support: {names[c]}", fontsize=8)
        for row, index in enumerate((query_y == c).nonzero().flatten().tolist()):
            ax = axes[shots + row][c]
            ax.axis("on")
            _show(ax, episode.query_x[index])
            guess = int(predicted[index])
            right = guess == c
            ax.set_title(f"→ {names[guess]}", fontsize=8, color="green" if right else "red")
            for spine in ax.spines.values():
                spine.set_edgecolor("green" if right else "red")
                spine.set_linewidth(2)
    accuracy = float((predicted == query_y).float().mean())
    figure.suptitle(f"{title}  query accuracy {100 * accuracy:.0f}%".strip(), fontsize=10)
    figure.tight_layout()
    return figure


def adaptation_explorer(methods: Mapping[str, object], dataset, *, n_way: int = 5,
                        k_shot: int = 1, q_query: int = 2, seed: int = 0) -> widgets.VBox:
    """A method menu, a K slider and a seed slider above one episode with its predictions.

    Every change draws ``EpisodeSampler(dataset, n_way, K, q_query, seed=seed).sample()``, fits the
    chosen method on its support set and shows ``plot_predictions`` as a PNG; a status line gives
    every method's accuracy on that same episode.

    Args:
        methods: name -> a ``FewShotClassifier`` (``fit``/``predict``), already trained.
        dataset: any course dataset with at least ``n_way`` classes.
        n_way, q_query: fixed for the explorer; k_shot and seed: initial slider positions.

    Returns:
        A VBox with the CSS class ``adaptation-explorer``.
    """
    if not methods:
        raise ValueError("adaptation_explorer needs at least one method")
    if not 1 <= k_shot <= MAX_SHOTS:
        raise ValueError(f"k_shot = {k_shot} is outside the slider's range 1..{MAX_SHOTS}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed = {seed} is outside the slider's range 0..{MAX_SEED}")
    choice = widgets.Dropdown(options=list(methods), description="method")
    shots = widgets.IntSlider(value=k_shot, min=1, max=MAX_SHOTS, description="K (shots)",
                              continuous_update=False)
    seeds = widgets.IntSlider(value=seed, min=0, max=MAX_SEED, description="seed",
                              continuous_update=False)
    status = widgets.HTML()
    image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
    names = getattr(dataset, "class_names", None)

    def redraw(_change=None) -> None:
        try:
            sampler = EpisodeSampler(dataset, n_way, shots.value, q_query, seed=seeds.value)
            episode = sampler.sample()
        except ValueError as error:
            status.value = f"<span style='color:#b00'>{html.escape(str(error))}</span>"
            return
        predictions = {name: episode_predictions(method, episode)
                       for name, method in methods.items()}
        labels = [names[c] for c in episode.classes] if names is not None else None
        image.value = figure_png(plot_predictions(episode, predictions[choice.value], labels,
                                                  title=choice.value))
        scores = " · ".join(
            f"{html.escape(name)} {100 * float((p == episode.query_y).float().mean()):.0f}%"
            for name, p in predictions.items())
        status.value = f"this episode: {scores}"

    for control in (choice, shots, seeds):
        control.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([choice, shots, seeds]), status, image])
    box.add_class("adaptation-explorer")
    return box


def imbalance_explorer(methods: Mapping[str, object], dataset, *, n_way: int = 5,
                       rare_shots: int = 1, common_shots: int = 9, q_query: int = 10,
                       episodes: int = 10, seed: int = 0) -> widgets.VBox:
    """Sliders for the shots of the rare class and of the common classes; accuracies as bars.

    Each episode gives class 0 ``rare_shots`` support images and the other ``n_way - 1`` classes
    ``common_shots`` each (``EpisodeSampler`` with a per-class ``k_shot``). The bars show each
    method's mean query accuracy on the rare class and on the common classes over ``episodes``
    episodes, the same episodes for every method.
    """
    if not methods:
        raise ValueError("imbalance_explorer needs at least one method")
    if not 1 <= rare_shots <= MAX_SHOTS * 2 or not 1 <= common_shots <= MAX_SHOTS * 2:
        raise ValueError(f"rare_shots = {rare_shots} and common_shots = {common_shots} must be "
                         f"within 1..{MAX_SHOTS * 2}")
    rare = widgets.IntSlider(value=rare_shots, min=1, max=MAX_SHOTS * 2,
                             description="rare class K", continuous_update=False,
                             style={"description_width": "initial"})
    common = widgets.IntSlider(value=common_shots, min=1, max=MAX_SHOTS * 2,
                               description="other classes K", continuous_update=False,
                               style={"description_width": "initial"})
    status = widgets.HTML()
    image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))

    def redraw(_change=None) -> None:
        shots = [rare.value] + [common.value] * (n_way - 1)
        try:
            sampler = EpisodeSampler(dataset, n_way, shots, q_query, seed=seed)
            drawn = [sampler.sample() for _ in range(episodes)]
        except ValueError as error:
            status.value = f"<span style='color:#b00'>{html.escape(str(error))}</span>"
            return
        rare_acc, common_acc = [], []
        for method in methods.values():
            per_class = torch.stack([per_class_accuracy(method, e) for e in drawn])  # [E, N]
            rare_acc.append(float(per_class[:, 0].mean()))
            common_acc.append(float(per_class[:, 1:].mean()))
        figure, ax = plt.subplots(figsize=(1.6 * len(methods) + 2, 3.2))
        positions = torch.arange(len(methods)).float()
        ax.bar(positions - 0.2, rare_acc, width=0.4, label=f"rare class ({rare.value}-shot)")
        ax.bar(positions + 0.2, common_acc, width=0.4,
               label=f"other classes ({common.value}-shot)")
        ax.set_xticks(positions.tolist(), list(methods), fontsize=8)
        ax.set_ylim(0, 1.3)  # room for the legend above the bars
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set(ylabel="query accuracy", title=f"{n_way}-way, {episodes} episodes, shots {shots}")
        ax.legend(fontsize=8, loc="upper center", ncols=2)
        figure.tight_layout()
        image.value = figure_png(figure)
        gaps = " · ".join(f"{html.escape(name)} {100 * (c - r):+.0f} points"
                          for name, r, c in zip(methods, rare_acc, common_acc, strict=True))
        status.value = f"common minus rare accuracy: {gaps}"

    for control in (rare, common):
        control.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([widgets.HBox([rare, common]), status, image])
    box.add_class("imbalance-explorer")
    return box
