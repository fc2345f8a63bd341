"""The in-memory image dataset every course dataset builds on.

Images are held once as a uint8 tensor [N, C, H, W] (a quarter of the float32 memory) and turned
into float32 in [0, 1] only when read, one image (``__getitem__``) or a whole episode
(``images_at``) at a time. The gather runs in NumPy: torch would split such small copies over
threads, which costs more than the copy itself on a busy machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class ImageDataset(Dataset):
    """Labelled images in memory, with the protocol the episode sampler and the plots read.

    Args:
        images: [N, C, H, W] uint8 (0..255) or float (0..1) images.
        labels: [N] class id of each image, in 0..len(class_names)-1.
        class_names: one readable name per class.
        class_alphabets: optional, the alphabet (script) of each class; gives ``.alphabets``.
        class_groups: optional, one group id per class; classes of one group (the four rotations
            of one character) stay together when ``split_classes`` splits by character.

    Attributes:
        labels: [N] LongTensor of per-image class ids.
        class_names: list of class names (class id -> name).
        class_alphabets: list of per-class alphabet names (only where the data has alphabets).
        alphabets: the distinct alphabet names, in order of first appearance (only where the data
            has alphabets; ``hasattr(dataset, "alphabets")`` tells).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | Sequence[int],
                 class_names: Sequence[str], class_alphabets: Sequence[str] | None = None,
                 class_groups: Sequence[int] | None = None) -> None:
        labels = torch.as_tensor(labels, dtype=torch.long)
        if images.ndim != 4 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"images must be [N, C, H, W] with N = len(labels) = "
                             f"{labels.shape[0]}; got {tuple(images.shape)}")
        if class_alphabets is not None and len(class_alphabets) != len(class_names):
            raise ValueError(f"{len(class_alphabets)} class alphabets for "
                             f"{len(class_names)} classes")
        self._images = images.contiguous()
        self._array = self._images.numpy()  # the same memory, for fast single-threaded gathers
        self.labels = labels
        self.class_names = list(class_names)
        self.class_groups = list(class_groups) if class_groups is not None else list(
            range(len(self.class_names)))
        if class_alphabets is not None:
            self.class_alphabets = list(class_alphabets)
            self.alphabets = list(dict.fromkeys(self.class_alphabets))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(self._images.shape[1:])

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """(image [C, H, W] float32 in [0, 1], class id)."""
        return self.images_at([index])[0], int(self.labels[index])

    def images_at(self, indices: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
        """The images at ``indices`` as one float32 tensor [len(indices), C, H, W] in [0, 1]."""
        return to_float(np.take(self._array, as_index(indices), axis=0))

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        alphabets = f", {len(self.alphabets)} alphabets" if hasattr(self, "alphabets") else ""
        return (f"{type(self).__name__}({len(self)} images of {c}x{h}x{w}, "
                f"{self.num_classes} classes{alphabets})")


def as_index(indices) -> np.ndarray:
    if isinstance(indices, torch.Tensor):
        return indices.detach().cpu().numpy().astype(np.int64, copy=False)
    return np.asarray(indices, dtype=np.int64)


def to_float(images: np.ndarray) -> torch.Tensor:
    if images.dtype == np.uint8:
        images = images.astype(np.float32)
        images /= np.float32(255.0)
        return torch.from_numpy(images)
    return torch.from_numpy(images.astype(np.float32, copy=False))


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8 0..255 (rounded), the storage format of ``ImageDataset``."""
    return images.clamp(0, 1).mul(255).round().to(torch.uint8)
