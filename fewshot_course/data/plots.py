"""Pictures of episodes and datasets: strokes drawn dark on white, like ink on paper."""

from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure

from fewshot_course.data.sampler import class_index, images_at
from fewshot_course.episodes import Episode

__all__ = ["plot_episode", "plot_alphabets"]


def _show(ax, image: torch.Tensor) -> None:
    """Draw one [C, H, W] image in [0, 1]: grey-scale as dark strokes on white, colour as is."""
    image = image.detach().cpu().float()
    if image.shape[0] == 1:
        ax.imshow(image[0].numpy(), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor("#cccccc")


def _blank(ax) -> None:
    ax.axis("off")


def plot_episode(episode: Episode, *, class_names: list[str] | None = None,
                 max_queries: int = 60, cell: float = 0.75) -> Figure:
    """The support set (one row per class, label on the left) beside the query set.

    Args:
        episode: an ``Episode`` (balanced or imbalanced support set).
        class_names: optional names of the dataset's classes, indexed by ``episode.classes``.
        max_queries: the first this many queries are drawn, each titled with its true label.
        cell: inches per image.

    Returns:
        The matplotlib Figure (not shown; in a notebook it is displayed as the cell's value).
    """
    n_way = episode.n_way
    support_y = episode.support_y.cpu()
    rows = [torch.nonzero(support_y == label).flatten().tolist() for label in range(n_way)]
    shots = max(1, max(len(r) for r in rows))
    names = [f"{label}" if class_names is None else f"{label}: {class_names[c]}"
             for label, c in enumerate(episode.classes)]
    n_query = min(len(episode.query_y), max_queries)
    query_cols = max(1, min(10, math.ceil(math.sqrt(n_query * 1.5))))
    query_rows = max(1, math.ceil(n_query / query_cols))
    label_width = 0.3 + 0.065 * max(len(name) for name in names)  # inches for the row names
    # Wide enough for the two-line titles, however few the shots or queries.
    widths = [max(cell * shots + label_width, 1.5), max(cell * query_cols + 0.2, 1.9)]
    height = cell * max(n_way, query_rows) + 0.9
    figure = Figure(figsize=(sum(widths) + 0.3, height), layout="constrained")
    left, right = figure.subfigures(1, 2, width_ratios=widths)
    shot_counts = "/".join(str(k) for k in sorted({len(r) for r in rows}))
    left.suptitle(f"support set\nN={n_way}, K={shot_counts}", fontsize=10)
    axes = np.asarray(left.subplots(n_way, shots, squeeze=False))
    for label, indices in enumerate(rows):
        for column in range(shots):
            ax = axes[label, column]
            if column < len(indices):
                _show(ax, episode.support_x[indices[column]])
            else:
                _blank(ax)
        axes[label, 0].set_ylabel(names[label], rotation=0, ha="right", va="center", fontsize=8)
    right.suptitle(f"query set, {len(episode.query_y)} images"
                   + (f" (first {n_query} shown)" if n_query < len(episode.query_y) else "")
                   + "\ntrue label above each", fontsize=10)
    axes = np.asarray(right.subplots(query_rows, query_cols, squeeze=False)).ravel()
    for position, ax in enumerate(axes):
        if position < n_query:
            _show(ax, episode.query_x[position])
            ax.set_title(str(int(episode.query_y[position])), fontsize=8, pad=2)
        else:
            _blank(ax)
    return figure


def plot_alphabets(dataset, *, per_alphabet: int = 12, max_alphabets: int | None = None,
                   cell: float = 0.55) -> Figure:
    """One row per alphabet: the first drawing of its first ``per_alphabet`` characters.

    Datasets without alphabets (digits, your folder) get a single row of their classes.

    Args:
        dataset: a course dataset (``.labels``; ``.class_alphabets`` where it has alphabets).
        per_alphabet: characters per row.
        max_alphabets: draw at most this many alphabets (all by default).
        cell: inches per image.

    Returns:
        The matplotlib Figure.
    """
    index = class_index(dataset)
    class_alphabets = getattr(dataset, "class_alphabets", None)
    groups: dict[str, list[int]] = {}
    for row, class_id in enumerate(index.class_ids.tolist()):
        alphabet = class_alphabets[class_id] if class_alphabets is not None else "classes"
        groups.setdefault(alphabet, []).append(row)
    names = list(groups)[:max_alphabets]
    counts = [len(groups[name]) for name in names]
    first_image = index.members[:, 0]
    figure = Figure(figsize=(cell * per_alphabet + 2.4, cell * len(names) + 0.6),
                    layout="constrained")
    axes = np.asarray(figure.subplots(len(names), per_alphabet, squeeze=False))
    for row, name in enumerate(names):
        members = groups[name][:per_alphabet]
        images = images_at(dataset, first_image[members])
        for column in range(per_alphabet):
            ax = axes[row, column]
            if column < len(members):
                _show(ax, images[column])
            else:
                _blank(ax)
        axes[row, 0].set_ylabel(f"{name} ({counts[row]})", rotation=0, ha="right",
                                va="center", fontsize=8)
    total = sum(len(groups[n]) for n in groups)
    figure.suptitle(f"{type(dataset).__name__}: {len(groups)} alphabets, {total} classes "
                    "(first drawing of each character; characters per alphabet in brackets)"
                    if class_alphabets is not None else
                    f"{type(dataset).__name__}: {total} classes", fontsize=10)
    return figure
