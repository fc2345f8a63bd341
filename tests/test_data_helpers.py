"""Writers of small files in the exact layouts of the Omniglot release and Lake's benchmark.

(Helpers only, no tests: the data tests import them.)
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def drawing(seed: int, size: int = 105) -> Image.Image:
    """A 1-bit black-on-white "drawing": a black bar and a block whose places depend on ``seed``."""
    rng = np.random.default_rng(seed)
    ink = np.zeros((size, size), dtype=bool)
    row, column = rng.integers(10, size - 40, 2)
    ink[row:row + 30, column:column + 6] = True
    ink[row + 10:row + 16, column:column + 30] = True
    ink[rng.integers(5, size - 20), rng.integers(5, size - 20):][:12] = True
    return Image.fromarray(~ink).convert("1")  # True = white paper


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def omniglot_files(stem: str, alphabets: dict[str, int], drawings: int = 20) -> dict[str, bytes]:
    """``{stem}/<Alphabet>/characterNN/<id>_<drawer>.png`` -> PNG bytes; drawing j of character
    (alphabet a, character c) is ``drawing(1000 * a + 20 * c + j)``."""
    files = {}
    for a, (alphabet, n_characters) in enumerate(alphabets.items()):
        for c in range(1, n_characters + 1):
            for j in range(1, drawings + 1):
                name = f"{stem}/{alphabet}/character{c:02d}/{(a * 50 + c):04d}_{j:02d}.png"
                files[name] = png_bytes(drawing(1000 * a + 20 * c + j))
    return files


def write_omniglot_zip(folder: Path, stem: str, alphabets: dict[str, int],
                       drawings: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in omniglot_files(stem, alphabets, drawings).items():
            archive.writestr(name, data)
    return path


def write_tree(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def lake_files(prefix: str = "", runs: int = 20, seed: int = 0) -> tuple[dict[str, bytes], list]:
    """Lake's layout: runNN/{training/classKK.png, test/itemMM.png, class_labels.txt}.

    Returns the files and, per run, the true class (1-based) of item01..item20. Class k's
    training drawing is ``drawing(100 * run + k)``; its test item is a different drawing of the
    same seed family (``drawing(100 * run + k + 5000)``), so tests can tell them apart.
    """
    rng = np.random.default_rng(seed)
    files, truths = {}, []
    for run in range(1, runs + 1):
        truth = (rng.permutation(20) + 1).tolist()  # item m shows class truth[m-1]
        truths.append(truth)
        lines = []
        for k in range(1, 21):
            files[f"{prefix}run{run:02d}/training/class{k:02d}.png"] = png_bytes(
                drawing(100 * run + k))
        for m, k in enumerate(truth, start=1):
            files[f"{prefix}run{run:02d}/test/item{m:02d}.png"] = png_bytes(
                drawing(100 * run + k + 5000))
            lines.append(f"run{run:02d}/test/item{m:02d}.png "
                         f"run{run:02d}/training/class{k:02d}.png")
        order = rng.permutation(20)  # the file's lines need not follow item order
        files[f"{prefix}run{run:02d}/class_labels.txt"] = (
            "\n".join(lines[i] for i in order) + "\n").encode()
    return files, truths


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path
