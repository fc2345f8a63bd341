"""The Omniglot benchmark's training episodes: within one alphabet, and within one symmetry."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from omniglot_accuracy import WithinAlphabetSampler  # noqa: E402

SYMMETRIES = ("", " rot90", " mirrored", " mirrored rot90")


class TinyAlphabets:
    """Two alphabets of 3 and 6 characters, each in four symmetries; every image holds its class
    id in its pixels, so an episode tells which classes it drew."""

    def __init__(self):
        characters = [("Greek", f"Greek/character{i:02d}") for i in range(3)] + [
            ("Korean", f"Korean/character{i:02d}") for i in range(6)]
        self.class_names = [name + symmetry for symmetry in SYMMETRIES for _, name in characters]
        self.class_alphabets = [alphabet for _ in SYMMETRIES for alphabet, _ in characters]
        self.alphabets = ["Greek", "Korean"]
        self.labels = torch.arange(len(self.class_names)).repeat_interleave(2)

    def __len__(self) -> int:
        return len(self.labels)

    def images_at(self, indices) -> torch.Tensor:
        labels = self.labels[torch.as_tensor(indices)].float()
        return labels[:, None, None, None].expand(-1, 1, 2, 2).clone()


def drawn_classes(episode) -> set[int]:
    return {int(x) for x in torch.cat([episode.support_x, episode.query_x])[:, 0, 0, 0]}


@pytest.mark.parametrize("same_symmetry", [False, True])
def test_each_episode_keeps_to_one_alphabet_and_with_same_symmetry_to_one_symmetry(same_symmetry):
    data = TinyAlphabets()
    sampler = WithinAlphabetSampler(data, 5, 1, 1, seed=0, same_symmetry=same_symmetry)
    symmetries_seen = set()
    for _ in range(200):
        episode = sampler.sample()
        classes = drawn_classes(episode)
        assert len({data.class_alphabets[c] for c in classes}) == 1
        symmetries = {data.class_names[c].partition(" ")[2] for c in classes}
        symmetries_seen.add(len(symmetries))
        alphabet = data.class_alphabets[next(iter(classes))]
        if same_symmetry:
            # One symmetry of Greek holds 3 characters: fewer than 5, so all 3 make the episode.
            assert len(symmetries) == 1
            assert len(classes) == (3 if alphabet == "Greek" else 5)
        else:
            assert len(classes) == 5
    if not same_symmetry:
        assert max(symmetries_seen) > 1, "mixed-symmetry episodes should mix orientations"
