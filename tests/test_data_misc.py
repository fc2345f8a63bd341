"""Digits, ImageFolder and the two pictures."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from fewshot_course.data import (
    Digits,
    EpisodeSampler,
    ImageDataset,
    ImageFolder,
    plot_alphabets,
    plot_episode,
)


@pytest.fixture(autouse=True, scope="module")
def agg_backend():
    matplotlib.use("Agg")  # no display; the figures are checked, not shown


def test_digits_are_the_real_scikit_learn_digits():
    from sklearn.datasets import load_digits

    digits = Digits()
    raw = load_digits()
    assert len(digits) == 1797 and digits.class_names == [str(d) for d in range(10)]
    assert torch.equal(digits.labels, torch.from_numpy(raw.target))
    image, label = digits[5]
    assert image.shape == (1, 28, 28) and label == raw.target[5]
    assert image.min() >= 0 and image.max() <= 1
    # strokes high: the bright pixels of the upsampled image are where the 8x8 scan has ink
    small = torch.nn.functional.adaptive_avg_pool2d(image, (10, 10))[0, 1:-1, 1:-1]
    correlation = np.corrcoef(small.flatten().numpy(), raw.images[5].flatten())[0, 1]
    assert correlation > 0.9
    assert Digits(image_size=16)[0][0].shape == (1, 16, 16)
    episode = EpisodeSampler(digits, 10, 5, 5, seed=0).sample()
    assert episode.support_x.shape == (50, 1, 28, 28)


def save_image(path, colour, size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    for i in range(3):
        save_image(root / "cat" / f"c{i}.jpg", (200, 30, 30))
        save_image(root / "dog" / f"d{i}.png", (30, 30, 200), size=(25, 50))
    save_image(root / "owl" / "o0.bmp", (30, 200, 30))
    save_image(root / "owl" / "o1.JPEG", (30, 200, 30))
    (root / "owl" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    (root / "README.md").write_text("loose files are ignored")
    return root


def test_image_folder_reads_classes_in_order(photos):
    dataset = ImageFolder(photos, image_size=12)
    assert dataset.class_names == ["cat", "dog", "owl"]
    assert dataset.counts == {"cat": 3, "dog": 3, "owl": 2}
    assert dataset.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    image, label = dataset[3]
    assert image.shape == (3, 12, 12) and label == 1
    assert image[2].mean() > 0.7 and image[0].mean() < 0.2  # blue stays blue
    grey = ImageFolder(photos, image_size=12, grayscale=True)
    assert grey[0][0].shape == (1, 12, 12)
    episode = EpisodeSampler(dataset, 3, 1, 1, seed=0).sample()
    assert episode.support_x.shape == (3, 3, 12, 12)


def test_image_folder_errors_name_the_problem(photos, tmp_path):
    with pytest.raises(ValueError, match=r"'owl' \(2\).*min_images"):
        ImageFolder(photos, min_images=3)
    (photos / "empty").mkdir()
    with pytest.raises(ValueError, match="empty has no images"):
        ImageFolder(photos)
    (photos / "empty").rmdir()
    (photos / "dog" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot read image .*broken.jpg"):
        ImageFolder(photos)
    with pytest.raises(ValueError, match="no class sub-folders"):
        ImageFolder(tmp_path / "photos" / "cat")
    with pytest.raises(ValueError, match="not a folder"):
        ImageFolder(tmp_path / "missing")


def test_too_few_images_for_an_episode_is_reported_by_the_sampler(photos):
    dataset = ImageFolder(photos, image_size=8)
    with pytest.raises(ValueError, match=r"class 2 \('owl'\) has 2"):
        EpisodeSampler(dataset, 3, 2, 1, seed=0)


def small_dataset() -> ImageDataset:
    images = torch.rand(60, 1, 10, 10)
    labels = torch.arange(12).repeat_interleave(5)
    alphabets = ["A"] * 5 + ["B"] * 4 + ["C"] * 3
    return ImageDataset(images, labels, [f"c{i}" for i in range(12)], alphabets)


def test_plot_episode_draws_support_rows_and_labelled_queries():
    dataset = small_dataset()
    episode = EpisodeSampler(dataset, 4, 2, 3, seed=0).sample()
    figure = plot_episode(episode, class_names=dataset.class_names)
    assert isinstance(figure, Figure)
    images = [ax for ax in figure.get_axes() if ax.get_images()]
    assert len(images) == 4 * 2 + 4 * 3
    titles = sorted(ax.get_title() for ax in images if ax.get_title())
    assert titles == sorted(str(y) for y in episode.query_y.tolist())
    ylabels = [ax.get_ylabel() for ax in figure.get_axes() if ax.get_ylabel()]
    assert ylabels == [f"{i}: {dataset.class_names[c]}" for i, c in enumerate(episode.classes)]


def test_plot_episode_imbalanced_and_colour():
    dataset = small_dataset()
    episode = EpisodeSampler(dataset, 3, [1, 3, 2], 1, seed=0).sample()
    figure = plot_episode(episode)
    assert sum(bool(ax.get_images()) for ax in figure.get_axes()) == 6 + 3
    labels = torch.arange(4).repeat_interleave(2)
    colour = ImageDataset(torch.rand(8, 3, 6, 6), labels, list("abcd"))
    figure = plot_episode(EpisodeSampler(colour, 2, 1, 1, seed=0).sample())
    assert figure.get_axes()[0].get_images()[0].get_array().shape == (6, 6, 3)


def test_plot_alphabets_one_row_per_alphabet():
    dataset = small_dataset()
    figure = plot_alphabets(dataset, per_alphabet=4)
    assert isinstance(figure, Figure)
    assert sum(bool(ax.get_images()) for ax in figure.get_axes()) == 4 + 4 + 3
    labels = [ax.get_ylabel() for ax in figure.get_axes() if ax.get_ylabel()]
    assert labels == ["A (5)", "B (4)", "C (3)"]
    no_alphabets = ImageDataset(torch.rand(6, 1, 5, 5), torch.arange(3).repeat(2), list("xyz"))
    assert isinstance(plot_alphabets(no_alphabets), Figure)
