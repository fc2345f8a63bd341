"""The Omniglot benchmark's validation split: small1 without some alphabets, scored on them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from omniglot_accuracy import alphabet_samplers, held_out_split  # noqa: E402

from fewshot_course.data import Omniglot  # noqa: E402

HELD_OUT = ("Balinese", "Early_Aramaic")


@pytest.fixture(scope="module")
def small1(real_omniglot) -> Omniglot:
    return Omniglot(real_omniglot, "background_small1", image_size=28)


def test_two_held_out_alphabets_are_left_out_of_training_and_each_scores_its_own_episodes(
        small1, real_omniglot):
    train, test = held_out_split(small1, HELD_OUT, real_omniglot)
    assert set(train.class_alphabets) == {"Korean", "Latin", "Greek"}
    assert len(train.classes) == 136 - 24 - 22
    samplers = alphabet_samplers(test, 20, 1, 1, seed=0, alphabets=HELD_OUT)
    assert list(samplers) == list(HELD_OUT)
    for alphabet, sampler in samplers.items():
        episode = sampler.sample()
        assert sampler.n_way == 20
        names = {sampler.dataset.class_alphabets[c] for c in episode.classes}
        assert names == {alphabet}


def test_an_unknown_alphabet_or_holding_out_every_alphabet_is_refused(small1, real_omniglot):
    with pytest.raises(SystemExit, match="Klingon"):
        held_out_split(small1, ("Korean", "Klingon"), real_omniglot)
    with pytest.raises(SystemExit, match="at least one"):
        held_out_split(small1, tuple(small1.alphabets), real_omniglot)
