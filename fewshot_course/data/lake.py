"""Lake et al.'s original one-shot classification benchmark: 20 fixed 20-way 1-shot runs.

The file ``all_runs.zip`` (from the Omniglot repository, ``python/one-shot-classification/``)
holds ``run01`` .. ``run20``; each run has ``training/class01.png`` .. ``class20.png`` (one drawing
of each of 20 evaluation characters), ``test/item01.png`` .. ``item20.png`` (another drawing of
each, shuffled) and ``class_labels.txt``, whose lines read
``runNN/test/itemMM.png runNN/training/classKK.png``: the query and its true class. Humans make
about 4.5% errors on it, and Lake's Bayesian program learning 3.3%.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import torch

from fewshot_course.data.omniglot import handwriting_image
from fewshot_course.episodes import Episode

__all__ = ["lake_one_shot_runs", "LAKE_RUNS_URL"]

LAKE_RUNS_URL = ("https://github.com/brendenlake/omniglot/raw/master/python/one-shot-classification/"
                 "all_runs.zip")
_RUN = re.compile(r"(?:^|/)(run\d+)/class_labels\.txt$")
_NUMBER = re.compile(r"(item|class)(\d+)\.png$")


class _Files:
    """Read files of the benchmark by their path relative to the folder holding run01..run20."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            names = [p.relative_to(path).as_posix() for p in path.rglob("class_labels.txt")]
            self._archive = None
        else:
            self._archive = zipfile.ZipFile(path)
            names = self._archive.namelist()
        runs = {}
        for name in names:
            match = _RUN.search(name)
            if match:
                runs[match.group(1)] = name[:match.end(1)] + "/"
        if not runs:
            raise ValueError(f"no runNN/class_labels.txt in {path}; expected Lake's one-shot "
                             "benchmark (all_runs.zip or its extracted folder, from "
                             f"{LAKE_RUNS_URL})")
        self.runs = sorted(runs)
        self._prefix = runs

    def read(self, run: str, relative: str) -> bytes:
        name = self._prefix[run] + relative
        try:
            if self._archive is not None:
                return self._archive.read(name)
            return (self.path / name).read_bytes()
        except (KeyError, FileNotFoundError) as error:
            raise ValueError(f"{name} is missing from {self.path}") from error

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()


def _number(path: str, kind: str, source: str) -> int:
    match = _NUMBER.search(path)
    if match is None or match.group(1) != kind:
        raise ValueError(f"{source}: expected a path ending in {kind}NN.png, got {path!r}")
    return int(match.group(2))


def lake_one_shot_runs(path: str | Path, *, image_size: int = 28,
                       crop_to_ink: bool = False) -> list[Episode]:
    """The 20 runs of Lake's benchmark as episodes (20-way, 1 shot, 20 queries each).

    Args:
        path: ``all_runs.zip`` or the folder it extracts to (either the folder holding
            run01..run20 or one above it).
        image_size: side of the square images; drawings are inverted (strokes high) and
            area-averaged like ``Omniglot``'s.
        crop_to_ink: crop each drawing to a square around its ink first, as ``Omniglot`` does
            with ``crop_to_ink=True``; use the setting the model was trained with.

    Returns:
        One ``Episode`` per run, in run order: ``support_x`` [20, 1, S, S] are class01..class20
        (label k-1 for classKK), ``query_x`` [20, 1, S, S] are item01..item20 in that order, with
        ``query_y`` the true classes from class_labels.txt. ``classes`` are ids unique over runs,
        ``(run - 1) * 20 + k - 1``: no character is known to be shared between runs.

    Raises:
        FileNotFoundError: ``path`` does not exist (names where to download it).
        ValueError: a file is missing or class_labels.txt does not match the layout.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; download {LAKE_RUNS_URL} and pass its path "
                                "(the zip or the extracted folder)")
    files = _Files(path)
    try:
        return [_episode(files, run, index, image_size, crop_to_ink)
                for index, run in enumerate(files.runs)]
    finally:
        files.close()


def _episode(files: _Files, run: str, run_index: int, image_size: int,
             crop_to_ink: bool) -> Episode:
    source = f"{run}/class_labels.txt"
    lines = [line.split() for line in files.read(run, "class_labels.txt").decode().splitlines()
             if line.strip()]
    if any(len(line) != 2 for line in lines):
        raise ValueError(f"{source}: every line must read 'runNN/test/itemMM.png "
                         "runNN/training/classKK.png'")
    truth = {_number(query, "item", source): _number(answer, "class", source)
             for query, answer in lines}
    n = len(truth)
    if sorted(truth) != list(range(1, n + 1)) or not set(truth.values()) <= set(range(1, n + 1)):
        raise ValueError(f"{source}: expected items 1..{n} each labelled with a class in 1..{n}, "
                         f"got items {sorted(truth)} and classes {sorted(set(truth.values()))}")

    def load(relative: str) -> torch.Tensor:
        png = files.read(run, relative)
        return torch.from_numpy(handwriting_image(png, image_size, crop_to_ink=crop_to_ink))

    support = torch.stack([load(f"training/class{k:02d}.png") for k in range(1, n + 1)])
    query = torch.stack([load(f"test/item{m:02d}.png") for m in range(1, n + 1)])
    return Episode(
        support_x=support[:, None].float().div_(255.0),
        support_y=torch.arange(n),
        query_x=query[:, None].float().div_(255.0),
        query_y=torch.tensor([truth[m] - 1 for m in range(1, n + 1)]),
        classes=tuple(run_index * n + k for k in range(n)),
    )
