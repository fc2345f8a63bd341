"""Omniglot (Lake, Salakhutdinov & Tenenbaum, 2015), read straight from the official zips.

1623 handwritten characters from 50 alphabets, each drawn by 20 people: the "transpose of MNIST"
that few-shot learning grew up on. The release has a ``background`` set (30 alphabets, 964
characters, for meta-training) and an ``evaluation`` set (20 other alphabets, 659 characters),
plus two small background subsets of 5 alphabets each. Layout inside a zip:
``images_background/<Alphabet>/characterNN/<id>_<drawer>.png``, 105x105 1-bit PNGs, black on white.

Images are inverted (strokes high) and reduced to ``image_size`` with area averaging, optionally
after cropping each drawing to a square around its ink. The decoded tensors of a zip are cached in
``cache_dir()`` (never next to the data, which may be read-only); an extracted folder is decoded
afresh each time.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fewshot_course.data.base import ImageDataset, as_index, to_float
from fewshot_course.data.cache import cache_dir, load_or_none, save_atomic
from fewshot_course.data.download import check_md5, ensure_file
from fewshot_course.progress import progress

__all__ = ["Omniglot", "OMNIGLOT_BASE_URL", "OMNIGLOT_FILES", "handwriting_image", "omniglot_root",
           "available_splits"]

OMNIGLOT_BASE_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
# split -> (release file, md5)
OMNIGLOT_FILES = {
    "background": ("images_background.zip", "68d2efa1b9178cc56df9314c21c6e718"),
    "evaluation": ("images_evaluation.zip", "6b91aef0f799c5bb55b94e3f2daec811"),
    "background_small1": ("images_background_small1.zip", "e704a628b5459e08445c13499850abc4"),
    "background_small2": ("images_background_small2.zip", "b75a71a51d3b13f821f212756fe481fd"),
}
CACHE_VERSION = 1
# crop_to_ink: the square around a drawing's ink is this many times its longer side, and at least
# this fraction of the scan's side, so that a dot or a short stroke is not blown up to fill the
# image.
INK_MARGIN = 1.15
MIN_CROP_FRACTION = 48 / 105
_IMAGE_PATH = re.compile(r"(?:^|/)([^/]+)/([^/]+)/([^/]+\.png)$", re.IGNORECASE)


def omniglot_root() -> Path:
    """Where the course keeps the official Omniglot zips.

    ``$FEWSHOT_OMNIGLOT_DIR`` if set, else ``<cache_dir()>/omniglot``, which is where
    ``Omniglot(omniglot_root(), split, download=True)`` puts them.
    """
    configured = os.environ.get("FEWSHOT_OMNIGLOT_DIR")
    return Path(configured).expanduser() if configured else cache_dir() / "omniglot"


def available_splits(root: str | Path | None = None) -> list[str]:
    """The splits whose official zip (or extracted folder) is in ``root``.

    ``root`` defaults to ``omniglot_root()``; the splits come in the order of ``OMNIGLOT_FILES``,
    and the list is empty when there are none.
    """
    root = Path(root) if root is not None else omniglot_root()
    return [split for split, (filename, _) in OMNIGLOT_FILES.items()
            if (root / filename).exists() or (root / filename.removesuffix(".zip")).is_dir()]


def handwriting_image(png: bytes, image_size: int, *, crop_to_ink: bool = False) -> np.ndarray:
    """A black-on-white scan (PNG bytes) -> [image_size, image_size] uint8, strokes high.

    The image is inverted and resized with box (area) averaging, so thin strokes stay visible
    as grey instead of vanishing or aliasing.

    With ``crop_to_ink``, the square cut out first is centred on the bounding box of the ink,
    ``INK_MARGIN`` times its longer side (at least ``MIN_CROP_FRACTION`` of the scan's side),
    with blank paper wherever it overhangs the scan. Every character then fills the image
    whatever its size and place on the page, so a drawing's strokes get more pixels; its size
    relative to the page is lost. The square is sampled bilinearly at 8 times ``image_size``,
    then box-averaged.
    """
    with Image.open(io.BytesIO(png)) as image:
        grey = image.convert("L")
    if crop_to_ink:
        return _cropped_to_ink(255 - np.asarray(grey, dtype=np.float32), image_size)
    if grey.size != (image_size, image_size):
        grey = grey.resize((image_size, image_size), Image.Resampling.BOX)
    return 255 - np.asarray(grey, dtype=np.uint8)  # box averaging commutes with inversion


def _cropped_to_ink(ink: np.ndarray, image_size: int) -> np.ndarray:
    """ink [H, W] float32 in [0, 255], strokes high -> [image_size, image_size] uint8."""
    rows, cols = np.nonzero(ink > 127)
    if len(rows) == 0:  # a blank page: nothing to centre on
        return np.zeros((image_size, image_size), dtype=np.uint8)
    centre_y, centre_x = (rows.min() + rows.max() + 1) / 2, (cols.min() + cols.max() + 1) / 2
    extent = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    side = max(INK_MARGIN * extent, MIN_CROP_FRACTION * max(ink.shape))
    box = (centre_x - side / 2, centre_y - side / 2, centre_x + side / 2, centre_y + side / 2)
    fine = Image.fromarray(ink).transform((8 * image_size, 8 * image_size),
                                          Image.Transform.EXTENT, box,
                                          Image.Resampling.BILINEAR, fillcolor=0)
    reduced = np.asarray(fine.resize((image_size, image_size), Image.Resampling.BOX))
    return np.clip(reduced, 0, 255).round().astype(np.uint8)


def _png_files(source: Path) -> Iterator[tuple[str, bytes]]:
    """(path inside the release, bytes) of every PNG in a zip or an extracted folder, sorted."""
    if source.is_dir():
        for path in sorted(source.rglob("*.png")):
            yield path.relative_to(source).as_posix(), path.read_bytes()
        return
    with zipfile.ZipFile(source) as archive:
        for name in sorted(n for n in archive.namelist() if n.lower().endswith(".png")):
            yield name, archive.read(name)


def _decode(source: Path, image_size: int, crop_to_ink: bool) -> dict:
    """Every drawing: images [N, 1, S, S] uint8, labels [N], alphabet and character per class."""
    entries = []
    for name, png in progress(_png_files(source), desc=f"decoding {source.name}"):
        match = _IMAGE_PATH.search(name)
        if match:
            entries.append((match.group(1), match.group(2), match.group(3), png))
    if not entries:
        raise ValueError(f"no Omniglot drawings (<Alphabet>/<character>/<drawing>.png) in {source}")
    entries.sort(key=lambda entry: entry[:3])
    classes = list(dict.fromkeys((alphabet, character) for alphabet, character, _, _ in entries))
    class_of = {key: label for label, key in enumerate(classes)}
    images = np.stack([handwriting_image(png, image_size, crop_to_ink=crop_to_ink)
                       for *_, png in entries])
    return {"version": CACHE_VERSION,
            "images": torch.from_numpy(images)[:, None],
            "labels": torch.tensor([class_of[(a, c)] for a, c, _, _ in entries]),
            "alphabets": [a for a, _ in classes], "characters": [c for _, c in classes]}


class Omniglot(ImageDataset):
    """Real Omniglot characters, from the official release zips.

    Args:
        root: folder holding the zip (``images_background.zip`` etc.) or its extracted folder.
        split: ``background`` (964 characters, 30 alphabets), ``evaluation`` (659, 20),
            ``background_small1`` (136, 5) or ``background_small2`` (156, 5).
        download: fetch the official zip into ``root`` when it is missing (md5-verified).
        image_size: side of the square images (28 as in most few-shot work; 105 is the original).
        rotations: add every character rotated by 90, 180 and 270 degrees (counter-clockwise) as
            three new classes, the standard augmentation protocol. Class ``c + r * C`` is class
            ``c`` rotated by ``90 * r`` degrees (C = the number of characters), so classes
            0..C-1 are the unrotated characters either way; image ``i + r * N`` likewise.
        mirrors: also add every class mirrored left to right as a new class (with rotations,
            the eight symmetries of the square; a mirrored character is as new to the network as
            a rotated one). Mirrored classes follow the others: with V = 4 rotations (or 1),
            class ``c + (r + V) * C`` is character ``c`` mirrored, then rotated by ``90 * r``.
        crop_to_ink: crop every drawing to a square around its ink before resizing
            (``handwriting_image``), so characters fill the image whatever their size.

    Items are (image [1, image_size, image_size] float32 in [0, 1], strokes high; class id).
    Attributes: ``labels``, ``class_names`` ("Greek/character01", rotated ones "... rot90"),
    ``class_alphabets`` and ``alphabets``, ``class_angles`` (degrees per class) and
    ``class_mirrored`` (per class), ``class_groups`` (the untransformed character of each class;
    ``split_classes`` keeps a group together).

    Raises:
        FileNotFoundError: the zip is missing and download=False (names the URL, md5 and path).
        DownloadError: the download failed (no partial file is left).
        ValueError: a zip in ``root`` that is not the release file (wrong md5).
    """

    def __init__(self, root: str | Path, split: str, *, download: bool = False,
                 image_size: int = 28, rotations: bool = False, mirrors: bool = False,
                 crop_to_ink: bool = False) -> None:
        if split not in OMNIGLOT_FILES:
            raise ValueError(f"split = {split!r}; use one of {list(OMNIGLOT_FILES)}")
        root = Path(root).expanduser()
        filename, md5 = OMNIGLOT_FILES[split]
        url = OMNIGLOT_BASE_URL + filename
        folder = root / filename.removesuffix(".zip")
        if folder.is_dir() and not (root / filename).exists():
            data = _decode(folder, image_size, crop_to_ink)
        else:
            source = ensure_file(root / filename, url, md5, download=download)
            data = self._cached(source, url, md5, image_size, crop_to_ink)
        self.root, self.split, self.image_size = root, split, image_size
        self.crop_to_ink = crop_to_ink
        self.rotations, self.mirrors = rotations, mirrors
        names = [f"{a}/{c}" for a, c in zip(data["alphabets"], data["characters"], strict=True)]
        super().__init__(data["images"], data["labels"], names, data["alphabets"])
        self._base_count, n_classes = len(self.labels), len(names)
        self._turns = 4 if rotations else 1
        # Variant v = r + turns * m: mirrored (m = 1) or not, then rotated r quarter turns.
        variants = [(90 * r, m) for m in range(2 if mirrors else 1) for r in range(self._turns)]
        self.labels = torch.cat([self.labels + v * n_classes for v in range(len(variants))])
        self.class_names = [n + (" mirrored" if m else "") + (f" rot{angle}" if angle else "")
                            for angle, m in variants for n in names]
        self.class_alphabets = self.class_alphabets * len(variants)
        self.class_angles = [angle for angle, _ in variants for _ in names]
        self.class_mirrored = [bool(m) for _, m in variants for _ in names]
        self.class_groups = list(range(n_classes)) * len(variants)

    @staticmethod
    def _cached(source: Path, url: str, md5: str, image_size: int, crop_to_ink: bool) -> dict:
        stat = source.stat()
        stamp = [md5, stat.st_size, stat.st_mtime_ns]
        where = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:10]
        cropped = "_ink" if crop_to_ink else ""
        path = cache_dir() / f"omniglot_{source.stem}_{image_size}px{cropped}_{where}.pt"
        data = load_or_none(path)
        if data is None or data.get("stamp") != stamp or data.get("version") != CACHE_VERSION:
            check_md5(source, url, md5)
            data = _decode(source, image_size, crop_to_ink)
            data["stamp"] = stamp
            try:
                save_atomic(data, path)
            except OSError:  # a read-only cache is only slower, never an error
                pass
        return data

    def images_at(self, indices) -> torch.Tensor:
        """Images [n, 1, S, S] float32 at ``indices`` (mirrored ones flipped left to right, then
        rotated ones turned counter-clockwise)."""
        if not (self.rotations or self.mirrors):
            return super().images_at(indices)
        indices = as_index(indices)
        images = np.take(self._array, indices % self._base_count, axis=0)  # uint8, then transform
        variants = indices // self._base_count
        mirrored = np.flatnonzero(variants >= self._turns)
        if len(mirrored):
            images[mirrored] = images[mirrored, ..., ::-1]
        turns = variants % self._turns
        for r in (1, 2, 3):
            chosen = np.flatnonzero(turns == r)
            if len(chosen):
                images[chosen] = np.rot90(images[chosen], r, axes=(2, 3))
        return to_float(images)


def omniglot_url(split: str) -> str:
    """Where the official zip of ``split`` is downloaded from."""
    return OMNIGLOT_BASE_URL + OMNIGLOT_FILES[split][0]
