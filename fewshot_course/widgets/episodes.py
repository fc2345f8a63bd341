"""The episode explorer: sliders for N, K, Q and the seed above the episode they draw (nb 01)."""

from __future__ import annotations

import html
from collections import Counter

import ipywidgets as widgets

from fewshot_course.data import EpisodeSampler, Glyphs, plot_episode
from fewshot_course.episodes import Episode
from fewshot_course.widgets._png import figure_png

__all__ = ["episode_explorer", "episode_png"]

MAX_WAYS = 20
MAX_SHOTS = 15
MAX_QUERIES = 15
MAX_SEED = 99


def episode_png(episode: Episode, *, dpi: int = 72) -> bytes:
    """``plot_episode(episode)`` as PNG bytes; the figure is closed, so it is not shown twice."""
    return figure_png(plot_episode(episode), dpi=dpi)


def episode_explorer(dataset=None, n_way: int = 5, k_shot: int = 1, q_query: int = 2,
                     seed: int = 0) -> widgets.VBox:
    """Sliders for N (ways), K (shots), Q (queries) and the seed above the episode they draw.

    Every change of a slider (on release) draws ``EpisodeSampler(dataset, N, K, Q, seed=seed)
    .sample()`` and shows ``plot_episode`` of it as a PNG in an ``ipywidgets.Image``. A choice the
    dataset cannot satisfy (more ways than classes, K + Q above the images per class) keeps the
    last picture and shows the sampler's error message instead.

    Args:
        dataset: any course dataset (``.labels`` per image); the embedded ``Glyphs("background")``
            when None.
        n_way, k_shot, q_query, seed: the initial slider positions.

    Returns:
        A VBox with the CSS class ``episode-explorer``: the sliders, a status line and the image.
    """
    if dataset is None:
        dataset = Glyphs("background")
    per_class = Counter(int(label) for label in dataset.labels)
    n_classes, smallest_class = len(per_class), min(per_class.values())
    if n_classes < 2 or smallest_class < 2:
        raise ValueError(f"the explorer needs at least 2 classes with at least 2 images each; "
                         f"the dataset has {n_classes} classes, the smallest with "
                         f"{smallest_class} images")

    def slider(description: str, value: int, low: int, high: int) -> widgets.IntSlider:
        if not low <= value <= high:
            raise ValueError(f"{description} = {value} is outside {low}..{high} for this dataset "
                             f"({n_classes} classes, at least {smallest_class} images per class)")
        return widgets.IntSlider(value=value, min=low, max=high, step=1, description=description,
                                 continuous_update=False, style={"description_width": "initial"})

    ways = slider("N (ways)", n_way, 2, min(MAX_WAYS, n_classes))
    shots = slider("K (shots)", k_shot, 1, min(MAX_SHOTS, smallest_class - 1))
    queries = slider("Q (queries)", q_query, 1, min(MAX_QUERIES, smallest_class - 1))
    seeds = slider("seed", seed, 0, MAX_SEED)
    status = widgets.HTML()
    image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))

    def redraw(_change=None) -> None:
        n, k, q = ways.value, shots.value, queries.value
        try:
            episode = EpisodeSampler(dataset, n, k, q, seed=seeds.value).sample()
        except ValueError as error:
            status.value = f"<span style='color:#b00'>{html.escape(str(error))}</span>"
            return
        image.value = episode_png(episode)
        status.value = (f"{n}-way {k}-shot: support set {tuple(episode.support_x.shape)}, "
                        f"query set {tuple(episode.query_x.shape)}, dataset classes "
                        f"{list(episode.classes)}")

    for control in (ways, shots, queries, seeds):
        control.observe(redraw, names="value")
    redraw()

    explorer = widgets.VBox([widgets.HBox([ways, shots]), widgets.HBox([queries, seeds]), status,
                             image])
    explorer.add_class("episode-explorer")
    return explorer
