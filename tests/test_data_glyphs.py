"""The embedded glyph set: size, disjoint splits, image convention, no tofu or look-alikes,
determinism and the disk cache."""

from __future__ import annotations

import itertools
import unicodedata

import numpy as np
import pytest
import torch

from fewshot_course.data import EpisodeSampler, Glyphs
from fewshot_course.data import glyphs as glyphs_module
from fewshot_course.data.glyphs import (
    CANONICAL_FACE,
    DUPLICATE_SIMILARITY,
    EVALUATION_ALPHABETS,
    _cmap,
    _similarity,
    build_glyphs,
    glyph_candidates,
    render_centred,
)


@pytest.fixture(scope="module")
def background() -> Glyphs:
    return Glyphs("background")


@pytest.fixture(scope="module")
def evaluation() -> Glyphs:
    return Glyphs("evaluation")


def test_at_least_1000_characters_over_15_alphabets_in_disjoint_splits(background, evaluation):
    assert background.num_classes + evaluation.num_classes >= 1000
    assert len(background.alphabets) + len(evaluation.alphabets) >= 15
    assert not set(background.alphabets) & set(evaluation.alphabets)
    assert set(evaluation.alphabets) == set(EVALUATION_ALPHABETS)
    assert not set(background.codepoints) & set(evaluation.codepoints)
    # the evaluation split is a real test bed: hundreds of characters, many sizeable alphabets
    per_alphabet = {a: evaluation.class_alphabets.count(a) for a in evaluation.alphabets}
    assert evaluation.num_classes >= 300
    assert sum(n >= 20 for n in per_alphabet.values()) >= 6
    for split in (background, evaluation):
        episode = EpisodeSampler(split, 20, 5, 15, seed=0).sample()
        assert episode.query_x.shape == (300, 1, 28, 28)


def test_images_follow_the_convention(background, evaluation):
    for split in (background, evaluation):
        assert torch.bincount(split.labels).tolist() == [20] * split.num_classes
        images = split.images_at(torch.arange(0, len(split), 11))
        assert images.shape[1:] == (1, 28, 28) and images.dtype == torch.float32
        assert images.min() >= 0 and images.max() <= 1
        assert images.amax(dim=(1, 2, 3)).min() > 0.5  # every drawing has ink
        assert 0.05 < images.mean() < 0.35  # strokes high on a dark background
        border = torch.cat([images[..., 0, :], images[..., -1, :]], dim=-1)
        assert border.mean() < 0.02
    image, label = background[0]
    assert image.shape == (1, 28, 28) and label == 0


def test_twenty_different_drawings_per_character(evaluation):
    for class_id in (0, evaluation.num_classes // 2, evaluation.num_classes - 1):
        members = torch.nonzero(evaluation.labels == class_id).flatten()
        drawings = evaluation.images_at(members).flatten(1)
        distances = torch.cdist(drawings, drawings) + torch.eye(20) * 1e9
        assert distances.min() > 0.5


def test_drawings_of_a_character_resemble_each_other_more_than_other_characters(evaluation):
    # raw-pixel nearest neighbour, 20-way 1-shot: chance is 5%; noise would stay there
    accuracies = []
    for episode in itertools.islice(EpisodeSampler(evaluation, 20, 1, 5, seed=0), 30):
        distance = torch.cdist(episode.query_x.flatten(1), episode.support_x.flatten(1))
        accuracies.append((episode.support_y[distance.argmin(1)] == episode.query_y).float())
    assert torch.cat(accuracies).mean() > 0.2


def test_no_tofu_no_accent_variants_no_look_alikes():
    characters = glyph_candidates()
    cmap = _cmap(CANONICAL_FACE)
    assert all(c.codepoint in cmap for c in characters)
    present = {c.character for c in characters}
    assert not {"o", "O"} <= present and not {"A", "\u0391"} <= present  # Latin A, Greek Alpha
    assert "\u00e9" not in present and "\u0451" not in present  # é, ё: variants of e, е
    bases = [unicodedata.normalize("NFKD", c.character)[0] for c in characters]
    assert len(set(bases)) == len(bases)
    bitmaps = np.stack([render_centred(c.character, CANONICAL_FACE, 32, fill=0.875)
                        for c in characters])
    similarity = _similarity(torch.from_numpy(bitmaps)).fill_diagonal_(-1.0)
    assert similarity.max() <= DUPLICATE_SIMILARITY
    assert all(unicodedata.category(c.character) in ("Lu", "Ll", "Lo") for c in characters)


def test_names_and_characters(background):
    first = background.codepoints[0]
    assert background.class_names[0] == f"U+{first:04X} {background.characters[0]}"
    assert background.characters[0] == chr(first)
    assert background.alphabets[0] == "Latin"
    assert len(background.class_alphabets) == background.num_classes


def test_build_is_deterministic_and_depends_on_the_seed():
    small = ("Coptic", "Ogham")
    first = build_glyphs(16, seed=3, alphabets=small)
    again = build_glyphs(16, seed=3, alphabets=small)
    other = build_glyphs(16, seed=4, alphabets=small)
    expected = sum(c.alphabet in small for c in glyph_candidates())
    assert len(first["codepoints"]) == expected
    assert first["images"].shape == (20 * expected, 1, 16, 16)
    assert first["images"].numpy().tobytes() == again["images"].numpy().tobytes()
    assert first["codepoints"] == other["codepoints"]
    assert not torch.equal(first["images"], other["images"])


def test_built_once_per_size_and_seed_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path))
    calls = []

    def small_build(image_size, seed):
        calls.append((image_size, seed))
        return build_glyphs(image_size, seed, alphabets=("Coptic", "Ogham"))

    monkeypatch.setattr(glyphs_module, "build_glyphs", small_build)
    background = Glyphs("background", image_size=16, seed=5)
    evaluation = Glyphs("evaluation", image_size=16, seed=5)
    assert calls == [(16, 5)]
    assert background.alphabets == ["Coptic"] and evaluation.alphabets == ["Ogham"]
    assert len(list(tmp_path.glob("glyphs_*16px_seed5.pt"))) == 1
    again = Glyphs("background", image_size=16, seed=5)
    assert calls == [(16, 5)]
    assert torch.equal(again.images_at(range(len(again))),
                       background.images_at(range(len(background))))
    Glyphs("background", image_size=16, seed=6)
    assert calls == [(16, 5), (16, 6)]


def test_bad_arguments():
    with pytest.raises(ValueError, match="'background', 'evaluation'"):
        Glyphs("test")
    with pytest.raises(ValueError, match="image_size = 4"):
        Glyphs(image_size=4)
