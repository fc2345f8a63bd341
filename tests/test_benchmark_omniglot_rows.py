"""The Omniglot benchmark's rows: which test-time settings it scores a trained method with."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from omniglot_accuracy import augmentation_sentence, scored_variants  # noqa: E402

from fewshot_course.methods import (  # noqa: E402
    AugmentedEpisodes,
    ShiftedViews,
    SymmetricViews,
    build_method,
)


def benchmark_args(**changes) -> argparse.Namespace:
    """The benchmark's test-time options, at their defaults unless changed."""
    args = dict(test_copies=0, test_copies_for=["protonet"], test_strength=[0.5], test_views=1,
                test_views_for=["protonet", "maml"], test_shifts=1, test_shifts_for=["protonet"],
                test_transductive=[], test_inner=[], seed=0)
    return argparse.Namespace(**{**args, **changes})


def copies_inside(method) -> AugmentedEpisodes:
    return method.method if isinstance(method, SymmetricViews) else method


def test_one_strength_keeps_the_tables_labels_and_applies_that_strength():
    protonet = build_method("protonet", hidden=4, image_size=16)
    rows = scored_variants("protonet", protonet, benchmark_args(
        test_copies=8, test_views=8, test_strength=[0.75]))
    assert list(rows) == ["protonet", "protonet + 8 copies", "protonet + 8 views",
                          "protonet + 8 views and 8 copies"]
    assert rows["protonet"] is protonet
    for label in ("protonet + 8 copies", "protonet + 8 views and 8 copies"):
        copies = copies_inside(rows[label])
        assert isinstance(copies, AugmentedEpisodes)
        assert (copies.copies, copies.strength) == (8, 0.75)
    assert "distorted at strength 0.75," in augmentation_sentence(benchmark_args(
        test_copies=8, test_views=8, test_strength=[0.75]))


def test_several_strengths_give_a_labelled_row_each_with_and_without_views():
    protonet = build_method("protonet", hidden=4, image_size=16)
    args = benchmark_args(test_copies=2, test_views=8, test_strength=[0.5, 0.75])
    rows = scored_variants("protonet", protonet, args)
    strengths = {label: copies_inside(row).strength for label, row in rows.items()
                 if "copies" in label}
    assert strengths == {"protonet + 2 copies at strength 0.5": 0.5,
                         "protonet + 2 copies at strength 0.75": 0.75,
                         "protonet + 8 views and 2 copies at strength 0.5": 0.5,
                         "protonet + 8 views and 2 copies at strength 0.75": 0.75}
    assert "distorted at strength 0.5 or 0.75," in augmentation_sentence(args)


def test_the_rows_score_an_episode_and_stronger_copies_change_the_scores():
    torch.manual_seed(0)
    protonet = build_method("protonet", hidden=4, image_size=16).eval()
    rows = scored_variants("protonet", protonet, benchmark_args(
        test_copies=2, test_strength=[0.25, 1.0]))
    support_x, query_x = torch.rand(3, 1, 16, 16), torch.rand(6, 1, 16, 16)
    support_y = torch.arange(3)
    scores = {label: row.fit(support_x, support_y).predict(query_x)
              for label, row in rows.items()}
    assert all(score.shape == (6, 3) for score in scores.values())
    assert not torch.allclose(scores["protonet + 2 copies at strength 0.25"],
                              scores["protonet + 2 copies at strength 1"])


def test_methods_outside_the_copies_list_get_no_copies_rows():
    maml = build_method("maml", n_way=3, hidden=4, image_size=16)
    rows = scored_variants("maml", maml, benchmark_args(test_copies=8, test_views=8))
    assert list(rows) == ["maml", "maml + 8 views"]


def test_shifts_add_one_row_around_the_views_for_the_methods_listed():
    protonet = build_method("protonet", hidden=4, image_size=16)
    args = benchmark_args(test_copies=8, test_views=8, test_shifts=4)
    rows = scored_variants("protonet", protonet, args)
    assert list(rows) == ["protonet", "protonet + 8 copies", "protonet + 8 views",
                          "protonet + 8 views and 4 shifts", "protonet + 8 views and 8 copies",
                          "protonet + 8 views, 4 shifts and 8 copies"]
    shifted = rows["protonet + 8 views and 4 shifts"]
    assert isinstance(shifted, ShiftedViews) and isinstance(shifted.method, SymmetricViews)
    assert (shifted.shifts, shifted.method.views, shifted.method.method) == (4, 8, protonet)
    everything = rows["protonet + 8 views, 4 shifts and 8 copies"]
    assert isinstance(everything, ShiftedViews) and everything.shifts == 4
    assert everything.method.views == 8
    assert isinstance(everything.method.method, AugmentedEpisodes)
    assert everything.method.method.method is protonet
    assert "'4 shifts': each episode also scored moved" in augmentation_sentence(args)
    alone = scored_variants("protonet", protonet, benchmark_args(test_shifts=9))
    assert list(alone) == ["protonet", "protonet + 9 shifts"]
    maml = build_method("maml", n_way=3, hidden=4, image_size=16)
    assert list(scored_variants("maml", maml, args)) == ["maml", "maml + 8 views"]
