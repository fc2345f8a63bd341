"""The notebook helpers: comparison tables, recorded benchmark sections, shared figures,
per-class accuracy, and the application widgets (notebooks 04 and 05)."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

from fewshot_course.analysis import evaluate_per_class, per_class_accuracy  # noqa: E402
from fewshot_course.data import Digits, EpisodeSampler  # noqa: E402
from fewshot_course.episodes import Episode  # noqa: E402
from fewshot_course.evaluation import Result, evaluate  # noqa: E402
from fewshot_course.methods import NearestNeighbour, ProtoNet  # noqa: E402
from fewshot_course.plots import (  # noqa: E402
    embed_images,
    plot_accuracy_curves,
    plot_ci_versus_episodes,
    plot_comparison,
    plot_domain_comparison,
    plot_embeddings,
    project_2d,
    results_by_episode_count,
)
from fewshot_course.reports import benchmark_section, comparison_table, format_result  # noqa: E402


@pytest.fixture(scope="module")
def digits() -> Digits:
    return Digits()


def _result(*accuracies: float) -> Result:
    return Result.from_accuracies(list(accuracies))


def test_comparison_table_formats_results_and_keeps_column_order():
    table = comparison_table({
        "ProtoNet": {"1-shot": _result(0.9, 0.8), "note": "a|b"},
        "MAML": {"5-shot": _result(0.5, 0.7), "1-shot": _result(0.6, 0.6), "steps": 0.123456},
    })
    lines = table.splitlines()
    assert lines[0] == "| method | 1-shot | note | 5-shot | steps |"
    assert lines[1] == "| --- | ---: | ---: | ---: | ---: |"
    expected = _result(0.9, 0.8)
    assert lines[2] == (f"| ProtoNet | {100 * expected.mean:.1f} ± {100 * expected.ci95:.1f} % "
                        "| a\\|b |  |  |")
    assert lines[3].endswith("| 0.123 |") and "| 60.0 ± 0.0 % |" in lines[3]
    assert comparison_table({"NN": _result(0.5, 0.5)}).splitlines()[0] == "| method | accuracy |"
    with pytest.raises(ValueError):
        comparison_table({})


def test_format_result_percent_and_fraction():
    result = _result(0.25, 0.75)
    half = 1.96 * math.sqrt(0.125) / math.sqrt(2)
    assert format_result(result) == f"50.0 ± {100 * half:.1f} %"
    assert format_result(result, percent=False) == f"0.500 ± {half:.3f}"


def test_benchmark_section_reads_one_section_without_its_heading(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n<!-- speed:start -->\n## speed\n\nCommand: `x`\n\n"
                       "| a | b |\n<!-- speed:end -->\n\n<!-- other:start -->\n## other\n\nmore\n"
                       "<!-- other:end -->\n")
    assert benchmark_section("speed", results) == "Command: `x`\n\n| a | b |"
    assert benchmark_section("other", results) == "more"
    assert benchmark_section("missing", results) is None
    assert benchmark_section("speed", tmp_path / "absent.md") is None


def test_results_by_episode_count_uses_the_first_n_episodes():
    accuracies = [0.2, 0.4, 0.9, 0.5, 0.7, 1.0]
    results = results_by_episode_count(accuracies, [2, 4, 6])
    assert [r.episodes for r in results] == [2, 4, 6]
    for n, result in zip([2, 4, 6], results, strict=True):
        assert result == Result.from_accuracies(accuracies[:n])
    with pytest.raises(ValueError, match="only 6"):
        results_by_episode_count(accuracies, [7])


def test_figures_have_titles_and_labelled_axes(digits):
    results = {"A": {"x": _result(0.5, 0.6), "y": _result(0.7, 0.9)}, "B": {"x": _result(0.2, 0.4)}}
    for figure in (plot_comparison(results, title="bars", chance=0.2),
                   plot_accuracy_curves({"A": {1: _result(0.5, 0.6), 3: _result(0.6, 0.8)}},
                                        xlabel="shots", title="curve"),
                   plot_ci_versus_episodes({"A": [0.5, 0.7, 0.6, 0.9] * 200}, mark=600),
                   plot_domain_comparison({"digits": digits}, samples=50)):
        axes = [ax for ax in figure.axes if ax.has_data()]
        assert axes
        for ax in axes:
            assert ax.get_title(), "every panel needs a title"
    labels = torch.arange(3).repeat_interleave(10)
    features = torch.randn(30, 8) + 5 * nn.functional.one_hot(labels, 8).float()
    figure = plot_embeddings({"f": features, "pixels": torch.randn(30, 4)}, labels)
    assert len(figure.axes) == 2 and "silhouette" in figure.axes[0].get_title()
    assert figure.axes[0].get_xlabel() == "PCA 1"


def test_embed_images_keeps_the_input_order():
    images = torch.rand(23, 1, 4, 4)
    embedded = embed_images(nn.Flatten(), images, chunk_size=5, seed=3)
    assert torch.equal(embedded, images.flatten(start_dim=1))


def test_project_2d_pca_and_bad_method():  # t-SNE runs in notebook 05
    features = torch.randn(40, 6, generator=torch.Generator().manual_seed(0))
    points = project_2d(features, "pca")
    assert points.shape == (40, 2)
    assert abs(points[:, 0].var()) >= abs(points[:, 1].var())  # first component: most variance
    with pytest.raises(ValueError, match="pca"):
        project_2d(features, "umap")


def test_per_class_accuracy_counts_each_class_separately():
    # 1-NN on pixels with the support images repeated as queries, except one query of class 1
    # that is an exact copy of class 0's support image: class 0 perfect, class 1 half right.
    support = torch.stack([torch.full((1, 2, 2), v) for v in (0.0, 1.0, 0.5)])
    query = torch.stack([support[0], support[0], support[1], support[0], support[2], support[2]])
    episode = Episode(support, torch.arange(3), query, torch.arange(3).repeat_interleave(2),
                      (0, 1, 2))
    assert per_class_accuracy(NearestNeighbour(), episode).tolist() == [1.0, 0.5, 1.0]


def test_evaluate_per_class_rows_average_to_evaluate(digits):
    shots = [1, 3, 5, 2, 4]
    table = evaluate_per_class(NearestNeighbour(), EpisodeSampler(digits, 5, shots, 4, seed=8), 12,
                               device="cpu")
    result = evaluate(NearestNeighbour(), EpisodeSampler(digits, 5, shots, 4, seed=8), 12,
                      device="cpu")
    assert table.shape == (12, 5)
    assert torch.allclose(table.mean(dim=1).double(), torch.tensor(result.accuracies).double())


def test_adaptation_explorer_draws_and_redraws(digits):
    pytest.importorskip("ipywidgets", reason="the widgets need the course extras (make setup)")
    from fewshot_course.widgets.applications import adaptation_explorer

    methods = {"1-NN": NearestNeighbour(), "centroid": ProtoNet(nn.Flatten())}
    box = adaptation_explorer(methods, digits)
    choice, shots, seeds = box.children[0].children
    status, image = box.children[1], box.children[2]
    first = image.value
    assert first[:4] == b"\x89PNG" and "1-NN" in status.value and "centroid" in status.value
    seeds.value = 5
    assert image.value != first
    shots.value = 3
    choice.value = "centroid"
    assert image.value[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="k_shot"):
        adaptation_explorer(methods, digits, k_shot=9)


def test_imbalance_explorer_reports_rare_and_common_accuracy(digits):
    pytest.importorskip("ipywidgets", reason="the widgets need the course extras (make setup)")
    from fewshot_course.widgets.applications import imbalance_explorer

    box = imbalance_explorer({"1-NN": NearestNeighbour()}, digits, episodes=3)
    rare, common = box.children[0].children
    status, image = box.children[1], box.children[2]
    first = image.value
    assert first[:4] == b"\x89PNG" and "common minus rare" in status.value
    rare.value = 4
    assert image.value != first
