"""Figures the notebooks share: methods compared with error bars, the confidence interval against
the number of test episodes, embeddings projected to 2-D, and how two image domains differ.

Every function returns the matplotlib ``Figure`` (labelled axes, a title) and draws into ``ax``
when one is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from fewshot_course.evaluation import Result

__all__ = ["plot_comparison", "plot_accuracy_curves", "results_by_episode_count",
           "plot_ci_versus_episodes", "embed_images", "project_2d", "plot_embeddings",
           "plot_domain_comparison"]


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    figure, ax = plt.subplots(figsize=figsize)
    return figure, ax


def plot_comparison(results: Mapping[str, Mapping[str, Result]], *, title: str,
                    ylabel: str = "accuracy (mean ± 95% CI)", chance: float | None = None,
                    ax: Axes | None = None) -> Figure:
    """Grouped bars: one group per setting (inner key), one bar per method (outer key).

    Args:
        results: method -> setting -> ``Result``; a method may lack some settings.
        chance: draws a dashed line at this accuracy (e.g. 1/N) when given.
    """
    settings = list(dict.fromkeys(s for per_method in results.values() for s in per_method))
    figure, ax = _axes(ax, (max(6.0, 1.6 * len(settings) + 2), 3.6))
    width = 0.8 / max(1, len(results))
    for i, (method, per_setting) in enumerate(results.items()):
        positions = [j + (i - (len(results) - 1) / 2) * width
                     for j, s in enumerate(settings) if s in per_setting]
        chosen = [per_setting[s] for s in settings if s in per_setting]
        ax.bar(positions, [r.mean for r in chosen], width=width * 0.95, label=method,
               yerr=[r.ci95 for r in chosen], capsize=3)
    if chance is not None:
        ax.axhline(chance, color="grey", ls="--", lw=0.8, label=f"chance ({chance:.2f})")
    ax.set_xticks(range(len(settings)), settings)
    ax.set_ylim(0, 1)
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize=8, ncols=2)
    figure.tight_layout()
    return figure


def plot_accuracy_curves(results: Mapping[str, Mapping[object, Result]], *, xlabel: str,
                         title: str, ylabel: str = "accuracy (mean ± 95% CI)",
                         chance: float | None = None, ax: Axes | None = None) -> Figure:
    """One line per method (outer key) over the settings (inner keys), with CI error bars.

    Numeric settings are placed at their values; any other settings (labels such as "1-9") are
    placed evenly in order of first appearance.
    """
    settings = list(dict.fromkeys(s for per_method in results.values() for s in per_method))
    numeric = all(isinstance(s, int | float) for s in settings)
    position = {s: (float(s) if numeric else float(i)) for i, s in enumerate(settings)}
    figure, ax = _axes(ax, (6.5, 3.8))
    for method, per_setting in results.items():
        xs = [position[s] for s in per_setting]
        ax.errorbar(xs, [r.mean for r in per_setting.values()],
                    yerr=[r.ci95 for r in per_setting.values()], marker="o", capsize=3,
                    label=method)
    if not numeric:
        ax.set_xticks(list(position.values()), [str(s) for s in settings])
    if chance is not None:
        ax.axhline(chance, color="grey", ls="--", lw=0.8, label=f"chance ({chance:.2f})")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def results_by_episode_count(accuracies: Sequence[float], counts: Sequence[int]) -> list[Result]:
    """``Result`` of the first n per-episode accuracies, for each n in ``counts`` (each n >= 2)."""
    if max(counts) > len(accuracies):
        raise ValueError(f"asked for the first {max(counts)} episodes but only "
                         f"{len(accuracies)} accuracies were given")
    return [Result.from_accuracies(list(accuracies[:n])) for n in counts]


def plot_ci_versus_episodes(accuracies: Mapping[str, Sequence[float]],
                            counts: Sequence[int] | None = None, *, mark: int = 600,
                            title: str = "How many test episodes?") -> Figure:
    """How the estimate and its 95% CI settle as test episodes accumulate.

    Left: the running mean over the first n episodes with its CI band, per method. Right: the CI
    half-width against n on log-log axes, with the prediction 1.96 s / sqrt(n) (s: the standard
    deviation of all the episodes) dashed, and a vertical line at ``mark`` episodes.

    Args:
        accuracies: method -> per-episode accuracies, in the order they were drawn.
        counts: the values of n; by default about 25 values spread logarithmically from 10.
    """
    longest = max(len(a) for a in accuracies.values())
    if counts is None:
        counts = sorted({int(round(v)) for v in np.geomspace(10, longest, 25)})
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for (method, values), colour in zip(accuracies.items(), plt.rcParams["axes.prop_cycle"],
                                        strict=False):
        usable = [n for n in counts if 2 <= n <= len(values)]
        results = results_by_episode_count(values, usable)
        means = np.array([r.mean for r in results])
        half = np.array([r.ci95 for r in results])
        left.plot(usable, means, color=colour["color"], label=method)
        left.fill_between(usable, means - half, means + half, color=colour["color"], alpha=0.2)
        right.plot(usable, half, "o-", ms=3, color=colour["color"], label=f"{method}: measured")
        spread = float(np.std(values, ddof=1))
        right.plot(usable, [1.96 * spread / math.sqrt(n) for n in usable], "--",
                   color=colour["color"], lw=1, label=f"{method}: 1.96 s/√n")
    for ax in (left, right):
        ax.set_xscale("log")
        if mark <= longest:
            ax.axvline(mark, color="grey", lw=0.8, ls=":")
    right.set_yscale("log")
    left.set(xlabel="number of test episodes n", ylabel="mean accuracy of the first n",
             title=f"{title}: the estimate with its 95% CI")
    right.set(xlabel="number of test episodes n", ylabel="95% CI half-width",
              title="The CI shrinks like 1/√n")
    left.legend(fontsize=8)
    right.legend(fontsize=7)
    figure.tight_layout()
    return figure


@torch.no_grad()
def embed_images(encoder: nn.Module, images: torch.Tensor, *, chunk_size: int = 25,
                 seed: int = 0) -> torch.Tensor:
    """Embeddings [M, D] of images [M, C, H, W], computed in shuffled chunks of ``chunk_size``.

    An encoder whose BatchNorm always uses batch statistics (Conv4) embeds an image differently
    in different company; random mixed-class chunks of episode size imitate how it is used, and
    the fixed ``seed`` keeps the result repeatable. Rows come back in the input order.
    """
    parameter = next(iter(encoder.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    out: torch.Tensor | None = None
    for start in range(0, images.shape[0], chunk_size):
        index = order[start:start + chunk_size]
        features = encoder(images[index].to(device)).flatten(start_dim=1).cpu()
        if out is None:
            out = torch.empty(images.shape[0], features.shape[1], dtype=features.dtype)
        out[index] = features
    return out


def project_2d(features: torch.Tensor, method: str = "pca", *, seed: int = 0) -> np.ndarray:
    """[M, D] features -> [M, 2] coordinates by PCA or t-SNE (scikit-learn), after centring."""
    values = features.detach().cpu().double().numpy()
    values = values - values.mean(axis=0)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(values)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, (values.shape[0] - 1) / 3)
        return TSNE(n_components=2, init="pca", perplexity=perplexity,
                    random_state=seed).fit_transform(values)
    raise ValueError(f"method={method!r}: choose 'pca' or 'tsne'")


def plot_embeddings(embeddings: Mapping[str, torch.Tensor], labels: torch.Tensor | Sequence[int],
                    *, method: str = "pca", seed: int = 0,
                    class_names: Sequence[str] | None = None) -> Figure:
    """Side-by-side 2-D projections of several embeddings of the same images, coloured by class.

    Each panel's title gives the silhouette score (轮廓系数) of the embedding in its full
    dimension: near 1 when classes form tight, separate clusters, near 0 when they overlap.

    Args:
        embeddings: panel title -> [M, D] features of the same M images.
        labels: [M] class of each image.
        class_names: legend names of the classes 0.. (the first 10 are listed).
    """
    from sklearn.metrics import silhouette_score

    labels = np.asarray(torch.as_tensor(labels).cpu())
    classes = list(dict.fromkeys(labels.tolist()))
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    figure, axes = plt.subplots(1, len(embeddings), figsize=(5 * len(embeddings), 4.4),
                                squeeze=False)
    for ax, (title, features) in zip(axes[0], embeddings.items(), strict=True):
        points = project_2d(features, method, seed=seed)
        score = silhouette_score(features.detach().cpu().double().numpy(), labels)
        for i, c in enumerate(classes):
            chosen = labels == c
            name = class_names[c] if class_names is not None else str(c)
            ax.scatter(points[chosen, 0], points[chosen, 1], s=14, color=colours(i % colours.N),
                       label=name if i < 10 else None)
        ax.set(xlabel=f"{method.upper()} 1", ylabel=f"{method.upper()} 2",
               title=f"{title}\nsilhouette {score:.2f}")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.tight_layout()
    return figure


def plot_domain_comparison(datasets: Mapping[str, object], *, samples: int = 500,
                           seed: int = 0) -> Figure:
    """How image domains differ: each dataset's mean image, and the histogram of pixel values.

    Args:
        datasets: name -> a course dataset (``__getitem__`` gives (image [1, H, W], label)).
        samples: images drawn at random (seeded) from each dataset.
    """
    figure = plt.figure(figsize=(3.0 * len(datasets) + 4.5, 3.4))
    grid = figure.add_gridspec(1, len(datasets) + 2)
    histogram = figure.add_subplot(grid[0, len(datasets):])
    generator = torch.Generator().manual_seed(seed)
    for i, (name, dataset) in enumerate(datasets.items()):
        chosen = torch.randperm(len(dataset), generator=generator)[:samples]
        images = torch.stack([dataset[int(j)][0] for j in chosen])  # [S, C, H, W]
        ax = figure.add_subplot(grid[0, i])
        ax.imshow(images.mean(dim=(0, 1)), cmap="gray", vmin=0, vmax=1)
        ax.set(title=f"{name}\nmean image", xticks=[], yticks=[])
        ink = float((images > 0.5).float().mean())
        histogram.hist(images.flatten().numpy(), bins=20, range=(0, 1), density=True,
                       histtype="step", lw=1.5, label=f"{name} ({100 * ink:.0f}% pixels > 0.5)")
    histogram.set_yscale("log")
    histogram.set(xlabel="pixel value (0 background, 1 stroke)", ylabel="density (log)",
                  title="Pixel values")
    histogram.legend(fontsize=8)
    figure.tight_layout()
    return figure
