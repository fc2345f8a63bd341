"""Real handwritten digits that ship with scikit-learn (no download), for cross-domain tests.

1797 scans of digits written by 43 people (UCI "Optical Recognition of Handwritten Digits"),
8x8 pixels of ink counts 0..16: strokes are already high. They are upsampled to ``image_size``
so a model trained on glyphs or Omniglot reads them unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshot_course.data.base import ImageDataset, to_uint8

__all__ = ["Digits"]


class Digits(ImageDataset):
    """scikit-learn's 1797 handwritten digits, 10 classes ("0".."9").

    Args:
        image_size: side of the square images (bilinear upsampling from 8x8 plus a one-pixel
            margin).

    Items are (image [1, image_size, image_size] float32 in [0, 1], strokes high; digit).
    """

    def __init__(self, *, image_size: int = 28) -> None:
        from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import

        digits = load_digits()
        images = torch.from_numpy(digits.images).float().div(16.0)[:, None]
        # a one-pixel margin, so the digit fills the frame about as much as a glyph does
        images = F.pad(images, (1, 1, 1, 1))
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear",
                               align_corners=False)
        self.image_size = image_size
        super().__init__(to_uint8(images), torch.from_numpy(digits.target),
                         [str(d) for d in range(10)])
