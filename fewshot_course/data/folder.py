"""Your own images as a few-shot dataset: one sub-folder per class (faces, species, scans ...).

    my_photos/
        cat/      img001.jpg  img002.jpg ...
        dog/      ...

Every image is read once, turned upright (EXIF orientation), resized so its shorter side is
``image_size`` and centre-cropped to a square, then kept in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from fewshot_course.data.base import ImageDataset
from fewshot_course.progress import progress

__all__ = ["ImageFolder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _square(path: Path, image_size: int, grayscale: bool) -> np.ndarray:
    """[S, S, C] uint8: upright, shorter side resized to S, centre-cropped."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image = image.convert("L" if grayscale else "RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {error}; delete or replace it") from error
    image = ImageOps.fit(image, (image_size, image_size), Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


class ImageFolder(ImageDataset):
    """Images in ``root/<class name>/<image>``, one sub-folder per class.

    Args:
        root: the folder of class folders (hidden entries and loose files are ignored; within a
            class folder, files with an image extension are read, others ignored).
        image_size: side of the square images (84 as in mini-ImageNet work).
        grayscale: one channel instead of three (photos keep their brightness: dark is 0).
        min_images: every class needs at least this many images; the classes below it are all
            listed in the error, never silently dropped (an episode needs K + Q per class).

    Items are (image [C, image_size, image_size] float32 in [0, 1], class id), C = 1 or 3.
    ``counts`` gives the number of images of each class.

    Raises:
        ValueError: no class folders, a class without images, classes under ``min_images``, or
            an unreadable image (the message names the folder or file).
    """

    def __init__(self, root: str | Path, *, image_size: int = 84, grayscale: bool = False,
                 min_images: int = 2) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise ValueError(f"{root} is not a folder; give a folder with one sub-folder per class")
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise ValueError(f"{root} has no class sub-folders; put each class's images in "
                             f"{root}/<class name>/")
        files = {}
        for folder in class_dirs:
            files[folder.name] = sorted(
                p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files[folder.name]:
                raise ValueError(f"class folder {folder} has no images (extensions "
                                 f"{', '.join(IMAGE_EXTENSIONS)}); add images or remove it")
        self.counts = {name: len(paths) for name, paths in files.items()}
        too_few = {name: n for name, n in self.counts.items() if n < min_images}
        if too_few:
            listed = ", ".join(f"{name!r} ({n})" for name, n in too_few.items())
            raise ValueError(f"{len(too_few)} classes in {root} have fewer than min_images = "
                             f"{min_images} images: {listed}; add images to them, remove them, "
                             "or lower min_images")
        paths = [(label, path) for label, name in enumerate(files) for path in files[name]]
        arrays = [_square(path, image_size, grayscale)
                  for _, path in progress(paths, desc=f"reading {root.name}")]
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        self.root, self.image_size, self.grayscale = root, image_size, grayscale
        self.paths = [path for _, path in paths]
        super().__init__(images, [label for label, _ in paths], list(files))
