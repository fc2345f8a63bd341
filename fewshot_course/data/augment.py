"""On-the-fly augmentation of handwriting images: random affine, elastic warp and stroke width.

Omniglot's small background sets hold few characters (136 in ``background_small1``), so a
meta-learner soon memorises them; distorting every image each time it is read, the way a different
hand would draw it, is the main remedy. ``distort`` applies to a batch [n, 1, S, S] at once: one
``grid_sample`` for the affine map plus a smooth elastic field, then a blend towards a one-pixel
dilation or erosion (thicker or thinner strokes), so it costs little next to a network's step.

``warp`` applies given distortion parameters; ``distort`` draws them with magnitudes that scale
with ``strength`` (0 returns the images unchanged). The synthetic glyph set
(``fewshot_course.data.glyphs``) draws its own, fixed, parameters and renders through ``warp`` too.

``Distorted`` wraps a dataset so that ``images_at`` (what the episode sampler reads) returns
freshly distorted images from a seeded generator: a run is repeatable, labels are unchanged.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["distort", "Distorted", "warp"]

# Magnitudes at strength 1 (each is scaled by strength).
MAX_ROTATION_DEGREES = 15.0
MAX_SHEAR = 0.3
MAX_LOG_SCALE = 0.15  # scale in exp(+-0.15): 0.86..1.16
MAX_LOG_ASPECT = 0.1
MAX_SHIFT = 0.15  # in half-widths: about +-2 pixels at 28x28
ELASTIC_STD = 0.04  # of the coarse 4x4 displacement field, in half-widths
MAX_STROKE_CHANGE = 0.6  # fraction of the way towards a 3x3 dilation (or erosion)


@lru_cache(maxsize=8)
def _pixel_coordinates(size: int) -> torch.Tensor:
    """[size*size, 3] rows (x, y, 1) of pixel centres in grid_sample's [-1, 1] coordinates."""
    centres = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1), torch.ones(size * size)], dim=1)


@lru_cache(maxsize=8)
def _upsampling_matrix(coarse: int, size: int) -> torch.Tensor:
    """[size, coarse] bicubic interpolation weights (a smooth field from a coarse grid)."""
    identity = torch.eye(coarse).view(coarse, 1, coarse, 1)
    weights = F.interpolate(identity, size=(size, 1), mode="bicubic", align_corners=True)
    return weights.view(coarse, size).T.contiguous()


def _inverse_2x2(matrices: np.ndarray) -> np.ndarray:
    """Inverses of [n, 2, 2] matrices in closed form.

    ``np.linalg.inv`` calls LAPACK once per matrix; on a busy machine its threads made it cost
    about a quarter of a training step (measured), for arithmetic this small.
    """
    a, b = matrices[:, 0, 0], matrices[:, 0, 1]
    c, d = matrices[:, 1, 0], matrices[:, 1, 1]
    adjugate = np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2)
    return adjugate / (a * d - b * c)[:, None, None]


def warp(images: torch.Tensor, *, angle: np.ndarray, shear: np.ndarray, scale: np.ndarray,
         aspect: np.ndarray, shift: np.ndarray, elastic: np.ndarray,
         stroke: np.ndarray) -> torch.Tensor:
    """Apply given per-image distortions to ``images`` [n, C, S, S] (strokes high) -> same shape.

    Args (one entry per image): ``angle`` [n] radians, ``shear`` [n], ``scale`` [n] and
    ``aspect`` [n] (x is scaled by scale*aspect, y by scale/aspect), ``shift`` [n, 2] in
    half-widths, ``elastic`` [n, 2, 4, 4] a coarse displacement field (half-widths) upsampled
    bicubically, ``stroke`` [n] in [-1, 1]: the fraction of the way towards a 3x3 dilation
    (positive, thicker strokes) or erosion (negative, thinner).
    """
    n, _, size, _ = images.shape
    cos, sin = np.cos(angle), np.sin(angle)
    # forward map (character -> image): rotation @ shear @ anisotropic scale, then the shift;
    # grid_sample needs the inverse, output pixel -> input pixel
    forward = np.stack([np.stack([cos, cos * shear - sin], -1),
                        np.stack([sin, sin * shear + cos], -1)], -2)
    forward = forward * np.stack([scale * aspect, scale / aspect], -1)[:, None, :]
    inverse = _inverse_2x2(forward)
    translation = -(inverse * shift[:, None, :]).sum(axis=2, keepdims=True)  # -inverse @ shift
    theta = torch.from_numpy(np.concatenate([inverse, translation], axis=2))
    grid = _pixel_coordinates(size) @ theta.to(images.dtype).transpose(1, 2)  # [n, S*S, 2]
    up = _upsampling_matrix(elastic.shape[-1], size).to(images.dtype)
    field = torch.einsum("hi,ncij,wj->nhwc", up, torch.from_numpy(elastic).to(images.dtype), up)
    warped = F.grid_sample(images, grid.view(n, size, size, 2) + field, mode="bilinear",
                           padding_mode="zeros", align_corners=False)
    width = torch.from_numpy(stroke).to(images.dtype).view(n, 1, 1, 1)
    dilated = F.max_pool2d(warped, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-warped, 3, stride=1, padding=1)
    towards = torch.where(width > 0, dilated, eroded)
    return (warped + width.abs() * (towards - warped)).clamp(0.0, 1.0)


def distort(images: torch.Tensor, rng: np.random.Generator, strength: float = 1.0) -> torch.Tensor:
    """Randomly distorted copies of ``images`` [n, C, S, S] in [0, 1] (strokes high) -> same shape.

    Each image gets its own rotation, shear, scale, aspect change and shift, a smooth elastic
    displacement, and a stroke-width change (see ``warp``), all drawn from ``rng`` with magnitudes
    proportional to ``strength`` (0: the images unchanged; 1: the defaults above). Output values
    stay in [0, 1].
    """
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must be [n, C, S, S]; got {tuple(images.shape)}")
    if strength < 0:
        raise ValueError(f"strength = {strength}; use strength >= 0")
    n = images.shape[0]
    if n == 0 or strength == 0:
        return images.clone()

    def uniform(bound: float, shape: tuple[int, ...] = ()) -> np.ndarray:
        return rng.uniform(-bound * strength, bound * strength, (n, *shape))

    angle = np.deg2rad(uniform(MAX_ROTATION_DEGREES))
    shear = uniform(MAX_SHEAR)
    scale, aspect = np.exp(uniform(MAX_LOG_SCALE)), np.exp(uniform(MAX_LOG_ASPECT))
    shift = uniform(MAX_SHIFT, (2,))
    elastic = rng.normal(0.0, ELASTIC_STD * strength, (n, 2, 4, 4))
    stroke = uniform(MAX_STROKE_CHANGE)
    return warp(images, angle=angle, shear=shear, scale=scale, aspect=aspect, shift=shift,
                elastic=elastic, stroke=stroke)


class Distorted:
    """A dataset whose images are distorted afresh (``distort``) at every read.

    Args:
        dataset: any course dataset with ``images_at``, ``labels`` and ``class_names`` (and,
            where it has them, ``class_alphabets`` and ``alphabets``, passed through).
        strength: ``distort``'s strength.
        seed: seeds the generator of the distortions, so a run is repeatable.

    ``images_at(indices)`` -> [n, C, S, S] float32 in [0, 1]; ``dataset[i]`` -> (image, label).
    """

    def __init__(self, dataset, *, strength: float = 1.0, seed: int = 0) -> None:
        self.dataset, self.strength = dataset, strength
        self.labels, self.class_names = dataset.labels, dataset.class_names
        for name in ("class_alphabets", "alphabets"):
            if hasattr(dataset, name):
                setattr(self, name, getattr(dataset, name))
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images_at([index])[0], int(self.labels[index])

    def images_at(self, indices) -> torch.Tensor:
        return distort(self.dataset.images_at(indices), self.rng, self.strength)
