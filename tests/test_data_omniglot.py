"""Omniglot from zips in the official layout (generated here, and the real small ones), rotations,
the md5 and missing-file errors, and split_classes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_helpers import drawing, omniglot_files, png_bytes, write_omniglot_zip, write_tree

from fewshot_course.data import (
    EpisodeSampler,
    Omniglot,
    available_splits,
    omniglot_root,
    split_classes,
)
from fewshot_course.data import omniglot as omniglot_module
from fewshot_course.data.omniglot import handwriting_image

ALPHABETS = {"Alpha": 3, "Beta": 2, "Gamma": 4}  # 9 characters
STEM = "images_background_small2"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("FEWSHOT_CACHE", str(folder))
    return folder


@pytest.fixture
def fake_root(tmp_path, monkeypatch, cache) -> Path:
    """A root with a generated images_background_small2.zip, registered with its md5."""
    root = tmp_path / "omniglot"
    path = write_omniglot_zip(root, STEM, ALPHABETS, drawings=20)
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(omniglot_module.OMNIGLOT_FILES, "background_small2", (path.name, digest))
    return root


def expected_image(a: int, c: int, j: int, size: int) -> np.ndarray:
    """What Omniglot should return for drawing j of character c of alphabet number a."""
    image = drawing(1000 * a + 20 * c + j).convert("L")
    image = image.resize((size, size), Image.Resampling.BOX)
    return (255 - np.asarray(image, dtype=np.float32)) / 255


def test_generated_zip_classes_names_and_images(fake_root):
    dataset = Omniglot(fake_root, "background_small2")
    assert len(dataset) == 9 * 20 and dataset.num_classes == 9
    assert dataset.alphabets == ["Alpha", "Beta", "Gamma"]
    assert dataset.class_names[:4] == ["Alpha/character01", "Alpha/character02",
                                       "Alpha/character03", "Beta/character01"]
    assert dataset.class_alphabets.count("Gamma") == 4
    assert torch.bincount(dataset.labels).tolist() == [20] * 9
    image, label = dataset[20 * 3 + 4]  # Beta/character01, drawing 05
    assert label == 3 and image.shape == (1, 28, 28) and image.dtype == torch.float32
    np.testing.assert_allclose(image[0].numpy(), expected_image(1, 1, 5, 28), atol=1 / 255)


def test_original_size_is_the_inverted_scan(fake_root):
    dataset = Omniglot(fake_root, "background_small2", image_size=105)
    image, _ = dataset[0]
    ink = ~np.asarray(drawing(1000 * 0 + 20 * 1 + 1), dtype=bool)
    assert torch.equal(image[0], torch.from_numpy(ink.astype(np.float32)))  # strokes 1, paper 0


def test_rotations_add_three_classes_per_character_with_a_fixed_angle(fake_root):
    plain = Omniglot(fake_root, "background_small2")
    rotated = Omniglot(fake_root, "background_small2", rotations=True)
    assert rotated.num_classes == 4 * 9 and len(rotated) == 4 * len(plain)
    assert rotated.class_names[9 + 2] == "Alpha/character03 rot90"
    assert rotated.class_angles == [0] * 9 + [90] * 9 + [180] * 9 + [270] * 9
    assert rotated.class_groups == list(range(9)) * 4
    assert rotated.alphabets == plain.alphabets
    everything = rotated.images_at(torch.arange(len(rotated)))
    base = plain.images_at(torch.arange(len(plain)))
    for class_id in range(rotated.num_classes):
        members = torch.nonzero(rotated.labels == class_id).flatten()
        turns = rotated.class_angles[class_id] // 90
        originals = members % len(plain)
        assert torch.all(plain.labels[originals] == class_id % 9)
        # every image of the class is its original turned by the class's one angle
        assert torch.equal(everything[members], torch.rot90(base[originals], turns, dims=(2, 3)))
    assert not torch.equal(everything[9 * 20], everything[0])
    image, label = rotated[len(plain) * 2 + 7]
    assert label == 18 + plain.labels[7] and torch.equal(image, torch.rot90(base[7], 2, (1, 2)))


def test_mirrors_add_a_flipped_copy_of_every_class_after_the_rotations(fake_root):
    plain = Omniglot(fake_root, "background_small2")
    both = Omniglot(fake_root, "background_small2", rotations=True, mirrors=True)
    mirrored = Omniglot(fake_root, "background_small2", mirrors=True)
    assert both.num_classes == 8 * 9 and len(both) == 8 * len(plain)
    assert mirrored.num_classes == 2 * 9 and mirrored.class_angles == [0] * 18
    assert both.class_mirrored == [False] * 36 + [True] * 36
    assert both.class_angles == ([0] * 9 + [90] * 9 + [180] * 9 + [270] * 9) * 2
    assert both.class_groups == list(range(9)) * 8
    assert both.class_names[36 + 9 + 2] == "Alpha/character03 mirrored rot90"
    assert mirrored.class_names[9 + 2] == "Alpha/character03 mirrored"
    everything = both.images_at(torch.arange(len(both)))
    base = plain.images_at(torch.arange(len(plain)))
    for class_id in range(both.num_classes):
        members = torch.nonzero(both.labels == class_id).flatten()
        originals = members % len(plain)
        assert torch.all(plain.labels[originals] == class_id % 9)
        expected = base[originals].flip(-1) if both.class_mirrored[class_id] else base[originals]
        turns = both.class_angles[class_id] // 90
        assert torch.equal(everything[members], torch.rot90(expected, turns, dims=(2, 3)))
    # without rotations the mirrored images directly follow the originals
    assert torch.equal(mirrored.images_at([len(plain) + 3])[0], base[3].flip(-1))
    assert not torch.equal(base[3].flip(-1), base[3])


def test_cache_is_reused_and_the_data_folder_left_alone(fake_root, cache, monkeypatch):
    before = sorted(p.name for p in fake_root.iterdir())
    first = Omniglot(fake_root, "background_small2")
    assert len(list(cache.glob("*.pt"))) == 1
    monkeypatch.setattr(omniglot_module, "_decode", lambda *a: pytest.fail("decoded again"))
    second = Omniglot(fake_root, "background_small2")
    assert torch.equal(first.images_at(range(len(first))), second.images_at(range(len(second))))
    assert sorted(p.name for p in fake_root.iterdir()) == before


def scan(*blocks: tuple[int, int, int, int], size: int = 105) -> bytes:
    """A 1-bit black-on-white scan with ink in the blocks (row, column, height, width)."""
    ink = np.zeros((size, size), dtype=bool)
    for row, column, height, width in blocks:
        ink[row:row + height, column:column + width] = True
    return png_bytes(Image.fromarray(~ink).convert("1"))


def ink_box(image: np.ndarray) -> tuple[float, float, int, int]:
    """(centre row, centre column, height, width) of the pixels at least half inked."""
    rows, columns = np.nonzero(image >= 128)
    return ((rows.min() + rows.max() + 1) / 2, (columns.min() + columns.max() + 1) / 2,
            rows.max() - rows.min() + 1, columns.max() - columns.min() + 1)


def test_crop_to_ink_centres_the_drawing_and_fills_the_image_with_it():
    # A 60 x 40 block near the top left corner: the crop, 1.15 x 60 = 69 pixels on a side
    # around its centre, overhangs the scan there and is filled with paper.
    png = scan((2, 5, 60, 40))
    plain = handwriting_image(png, 32)
    cropped = handwriting_image(png, 32, crop_to_ink=True)
    assert cropped.shape == (32, 32) and cropped.dtype == np.uint8
    assert ink_box(plain)[2] in (18, 19)  # 60 / 105 * 32 = 18.3 rows
    row, column, height, width = ink_box(cropped)
    assert (row, column) == (16, 16)
    assert abs(height - 32 / omniglot_module.INK_MARGIN) <= 1  # 27.8 rows
    assert abs(width - 40 / 69 * 32) <= 1
    # paper all round the block: 2 rows above and below it, 6 columns left and right
    assert not cropped[[0, -1]].any() and not cropped[:, :6].any() and not cropped[:, -6:].any()
    assert cropped.max() == 255  # the block's inside is still full ink


def test_crop_to_ink_keeps_a_small_mark_small_and_a_blank_page_blank():
    dot = handwriting_image(scan((70, 80, 4, 4)), 32, crop_to_ink=True)
    row, column, height, width = ink_box(dot)
    assert (row, column) == (16, 16)
    assert height <= 4 / 48 * 32 + 1 and width <= 4 / 48 * 32 + 1  # the crop is 48 pixels wide
    assert not handwriting_image(scan(), 32, crop_to_ink=True).any()


def test_crop_to_ink_dataset_and_its_own_cache(fake_root, cache):
    plain = Omniglot(fake_root, "background_small2", image_size=32)
    cropped = Omniglot(fake_root, "background_small2", image_size=32, crop_to_ink=True)
    assert cropped.crop_to_ink and not plain.crop_to_ink
    assert cropped.class_names == plain.class_names
    assert torch.equal(cropped.labels, plain.labels)
    image, _ = cropped[20 * 3 + 4]  # Beta/character01, drawing 05
    expected = handwriting_image(png_bytes(drawing(1000 * 1 + 20 * 1 + 5)), 32, crop_to_ink=True)
    assert torch.equal(image[0], torch.from_numpy(expected.astype(np.float32) / 255))
    assert not torch.equal(image, plain[20 * 3 + 4][0])
    assert len(list(cache.glob("*_32px_ink_*.pt"))) == 1 and len(list(cache.glob("*.pt"))) == 2
    again = Omniglot(fake_root, "background_small2", image_size=32, crop_to_ink=True)
    assert torch.equal(again.images_at(range(180)), cropped.images_at(range(180)))


def test_extracted_folder_reads_the_same(fake_root, tmp_path):
    folder_root = tmp_path / "extracted"
    write_tree(folder_root, omniglot_files(STEM, ALPHABETS))
    from_zip = Omniglot(fake_root, "background_small2")
    from_folder = Omniglot(folder_root, "background_small2")
    assert from_folder.class_names == from_zip.class_names
    assert torch.equal(from_folder.labels, from_zip.labels)
    assert torch.equal(from_folder.images_at(range(180)), from_zip.images_at(range(180)))


def test_missing_zip_names_url_md5_and_path(tmp_path, cache):
    url = omniglot_module.OMNIGLOT_BASE_URL + "images_background.zip"
    with pytest.raises(FileNotFoundError) as error:
        Omniglot(tmp_path, "background")
    message = str(error.value)
    assert url == "https://github.com/brendenlake/omniglot/raw/master/python/images_background.zip"
    assert url in message and "68d2efa1b9178cc56df9314c21c6e718" in message
    assert str(tmp_path / "images_background.zip") in message and "download=True" in message


def test_zip_with_wrong_md5_is_refused(tmp_path, cache):
    write_omniglot_zip(tmp_path, "images_evaluation", {"Alpha": 1}, drawings=2)
    with pytest.raises(ValueError, match="6b91aef0f799c5bb55b94e3f2daec811") as error:
        Omniglot(tmp_path, "evaluation")
    assert "images_evaluation.zip" in str(error.value)


def test_omniglot_root_and_available_splits(fake_root, cache, monkeypatch):
    monkeypatch.delenv("FEWSHOT_OMNIGLOT_DIR", raising=False)
    assert omniglot_root() == cache / "omniglot"
    assert available_splits() == []
    monkeypatch.setenv("FEWSHOT_OMNIGLOT_DIR", str(fake_root))
    assert omniglot_root() == fake_root
    assert available_splits() == ["background_small2"]
    (fake_root / "images_evaluation").mkdir()  # an extracted release counts too
    assert available_splits(fake_root) == ["evaluation", "background_small2"]


def test_unknown_split():
    with pytest.raises(ValueError, match="background_small1"):
        Omniglot(".", "training")


def test_episodes_from_omniglot_match_their_labels(fake_root):
    dataset = Omniglot(fake_root, "background_small2", rotations=True)
    episode = EpisodeSampler(dataset, 20, 5, 15, seed=0).sample()
    assert episode.support_x.shape == (100, 1, 28, 28) and episode.query_x.shape == (300, 1, 28, 28)
    # support images really are drawings of the class they are labelled with
    for label in range(20):
        class_id = episode.classes[label]
        members = dataset.images_at(torch.nonzero(dataset.labels == class_id).flatten())
        for image in episode.support_x[episode.support_y == label]:
            assert (members == image).flatten(1).all(1).any()


def test_split_by_character_keeps_rotations_together(fake_root):
    dataset = Omniglot(fake_root, "background_small2", rotations=True)
    parts = split_classes(dataset, (5, 2, 2), by="character", seed=1)
    assert [p.num_classes for p in parts] == [20, 8, 8]
    characters = [{dataset.class_groups[c] for c in p.classes} for p in parts]
    assert sum(len(c) for c in characters) == 9 and not set.intersection(*characters)
    for part in parts:
        assert torch.bincount(part.labels).tolist() == [20] * part.num_classes
        assert part.images_at([0, 1]).shape == (2, 1, 28, 28)
        image, label = part[len(part) - 1]
        assert label == part.num_classes - 1
        assert torch.equal(image, dataset[int(part.indices[-1])][0])
        assert part.class_names == [dataset.class_names[c] for c in part.classes]
    assert split_classes(dataset, (5, 2, 2), seed=1)[0].classes == parts[0].classes
    assert split_classes(dataset, (5, 2, 2), seed=2)[0].classes != parts[0].classes


def test_split_by_alphabet_and_fractions(fake_root):
    dataset = Omniglot(fake_root, "background_small2")
    parts = split_classes(dataset, (1 / 3, 1 / 3, 1 / 3), by="alphabet", seed=0)
    assert sorted(a for p in parts for a in p.alphabets) == ["Alpha", "Beta", "Gamma"]
    assert sum(p.num_classes for p in parts) == 9
    sampler = EpisodeSampler(max(parts, key=lambda p: p.num_classes), 2, 1, 1, seed=0)
    assert sampler.sample().support_x.shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="sum to 1.2"):
        split_classes(dataset, (0.6, 0.6))
    with pytest.raises(ValueError, match="leaves a part empty"):
        split_classes(dataset, (0.9, 0.05, 0.05), by="alphabet")
    with pytest.raises(ValueError, match="10 characters requested"):
        split_classes(dataset, (8, 2))
    with pytest.raises(ValueError, match="'character' or 'alphabet'"):
        split_classes(dataset, by="drawer")


def test_real_small_zips(real_omniglot, cache):
    before = sorted(p.name for p in real_omniglot.iterdir())
    for split, alphabets, characters in (("background_small1", 5, 136),
                                          ("background_small2", 5, 156)):
        dataset = Omniglot(real_omniglot, split)
        assert len(dataset.alphabets) == alphabets and dataset.num_classes == characters
        assert len(dataset) == 20 * characters
        assert torch.bincount(dataset.labels).tolist() == [20] * characters
        images = dataset.images_at(torch.arange(0, len(dataset), 7))
        assert images.shape[1:] == (1, 28, 28)
        # strokes high on a dark background: few bright pixels, a dark border
        assert 0.03 < images.mean() < 0.3 and images[:, :, 0, :].mean() < 0.05
        assert images.amax(dim=(1, 2, 3)).min() > 0.5
    assert Omniglot(real_omniglot, "background_small2").alphabets == [
        "Greek", "Japanese_(katakana)", "Latin", "Sanskrit", "Tagalog"]
    assert sorted(p.name for p in real_omniglot.iterdir()) == before
