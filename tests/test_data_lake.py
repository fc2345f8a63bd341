"""Lake's one-shot runs, read from files written here in the benchmark's exact layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_helpers import drawing, lake_files, png_bytes, write_tree, write_zip

from fewshot_course.data import lake_one_shot_runs
from fewshot_course.data.omniglot import handwriting_image


@pytest.fixture(scope="module")
def lake_runs():
    return lake_files(prefix="all_runs/")


def as_tensor(seed: int, size: int) -> torch.Tensor:
    image = drawing(seed).convert("L").resize((size, size), Image.Resampling.BOX)
    return torch.from_numpy((255 - np.asarray(image, dtype=np.float32)) / 255)[None]


def check_runs(episodes, truths, size: int = 28) -> None:
    assert len(episodes) == 20
    for run, (episode, truth) in enumerate(zip(episodes, truths, strict=True), start=1):
        assert episode.support_x.shape == (20, 1, size, size)
        assert episode.query_x.shape == (20, 1, size, size)
        assert episode.support_y.tolist() == list(range(20))
        assert episode.query_y.tolist() == [k - 1 for k in truth]
        assert len(set(episode.classes)) == 20
        # support in class01..class20 order, queries in item01..item20 order
        for k in (1, 7, 20):
            torch.testing.assert_close(episode.support_x[k - 1], as_tensor(100 * run + k, size),
                                       atol=1 / 255, rtol=0)
        for m in (1, 13, 20):
            torch.testing.assert_close(episode.query_x[m - 1],
                                       as_tensor(100 * run + truth[m - 1] + 5000, size),
                                       atol=1 / 255, rtol=0)


def test_zip_with_all_runs_folder(lake_runs, tmp_path):
    files, truths = lake_runs
    episodes = lake_one_shot_runs(write_zip(tmp_path / "all_runs.zip", files))
    check_runs(episodes, truths)
    assert set(episodes[0].classes).isdisjoint(episodes[1].classes)


def test_zip_without_top_folder_and_other_size(tmp_path):
    files, truths = lake_files(prefix="", seed=1)
    check_runs(lake_one_shot_runs(write_zip(tmp_path / "runs.zip", files), image_size=20),
               truths, size=20)


def test_extracted_folder_and_its_parent(lake_runs, tmp_path):
    files, truths = lake_runs
    write_tree(tmp_path, files)
    check_runs(lake_one_shot_runs(tmp_path / "all_runs"), truths)
    check_runs(lake_one_shot_runs(tmp_path), truths)


def test_strokes_are_high(lake_runs, tmp_path):
    files, _ = lake_runs
    episode = lake_one_shot_runs(write_zip(tmp_path / "all_runs.zip", files))[0]
    assert episode.support_x.max() == 1.0 and episode.support_x.mean() < 0.2


def test_crop_to_ink_as_omniglot_does(lake_runs, tmp_path):
    files, truths = lake_runs
    episode = lake_one_shot_runs(write_zip(tmp_path / "all_runs.zip", files), image_size=32,
                                 crop_to_ink=True)[0]
    expected = handwriting_image(png_bytes(drawing(100 + 7)), 32, crop_to_ink=True)
    assert torch.equal(episode.support_x[6, 0], torch.from_numpy(expected.astype(np.float32) / 255))
    assert episode.query_y.tolist() == [k - 1 for k in truths[0]]


def test_missing_path_and_broken_files(lake_runs, tmp_path):
    with pytest.raises(FileNotFoundError, match="all_runs.zip"):
        lake_one_shot_runs(tmp_path / "nothing.zip")
    with pytest.raises(ValueError, match="no runNN/class_labels.txt"):
        lake_one_shot_runs(write_zip(tmp_path / "empty.zip", {"readme.txt": b"hi"}))
    files, _ = lake_runs
    broken = dict(files)
    broken["all_runs/run03/class_labels.txt"] = b"run03/test/item01.png\n"
    with pytest.raises(ValueError, match="run03/class_labels.txt"):
        lake_one_shot_runs(write_zip(tmp_path / "broken.zip", broken))
    missing = {k: v for k, v in files.items() if k != "all_runs/run05/training/class09.png"}
    with pytest.raises(ValueError, match="run05/training/class09.png is missing"):
        lake_one_shot_runs(write_zip(tmp_path / "missing.zip", missing))
