"""The embedded glyph set: an Omniglot-like dataset rendered from the fonts matplotlib ships.

Omniglot has 1623 characters from 50 alphabets, each drawn 20 times by different people. This
set imitates it without a download: every letter that matplotlib's DejaVu and STIX fonts can draw
becomes a character, grouped into alphabets by Unicode script, and each character gets 20
"drawings", each from a different font face with its own random affine change, elastic distortion
and stroke width. How it is built, step by step:

1. Candidates: the letters (Unicode categories Lu, Ll, Lo) that DejaVu Sans maps to a real glyph
   (checked in the font's cmap with fontTools, so no missing-glyph boxes), whose script is not
   "Common" or "Inherited".
2. Accent variants go: letters whose compatibility decomposition (NFKD) without combining marks is
   the same base letter (e, é, ê, ë ...) count as one; the base letter is kept.
3. Look-alikes go: every candidate is rendered once in DejaVu Sans, centred and scaled to fit; a
   candidate whose bitmap is nearly equal (cosine similarity above ``DUPLICATE_SIMILARITY``) to
   one already kept is dropped (o and O, Latin A and Greek Alpha, ...). Latin goes first, then the
   smaller alphabets, so small scripts keep their letters.
4. Alphabets larger than ``MAX_PER_ALPHABET`` keep their most distinct characters (farthest-point
   selection), so no single script dominates the episodes.
5. Drawings: each character is rendered in every face that has it, centred with its aspect
   kept; each of its 20 drawings takes one face (cycling through a seeded order) and a random
   rotation, shear, scale and shift, a smooth elastic displacement field and a stroke-width change
   (blur, then a random threshold), then is reduced to ``image_size`` with area averaging.

``background`` and ``evaluation`` use disjoint alphabets, as in Omniglot. The whole set is built
once per (image_size, seed), in well under a minute, and cached on disk (see ``cache_dir``).
"""

from __future__ import annotations

import collections
import time
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from fontTools import unicodedata as font_unicodedata
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

from fewshot_course.data.augment import warp
from fewshot_course.data.base import ImageDataset, to_uint8
from fewshot_course.data.cache import cache_dir, load_or_none, save_atomic
from fewshot_course.progress import progress

__all__ = ["Glyphs", "build_glyphs", "glyph_candidates", "EVALUATION_ALPHABETS"]

FORMAT_VERSION = 3
DRAWINGS_PER_CHARACTER = 20
DUPLICATE_SIMILARITY = 0.92
MAX_PER_ALPHABET = 130
MIN_EXTENT = 0.3  # letters whose ink spans less of the font size are marks, not characters
FULL_SIZE_EXTENT = 0.55
CANONICAL_FACE = "DejaVuSans.ttf"
FACES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf", "STIXGeneral.ttf",
    "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
)
# Alphabets never seen in meta-training (Omniglot's "evaluation" alphabets play the same role).
EVALUATION_ALPHABETS = (
    "Arabic", "Armenian", "Hebrew", "Tifinagh", "N'Ko", "Lao", "Ogham", "Old Italic",
    "Georgian (Nuskhuri)",
)
_SCRIPT_NAMES = {"Canadian Aboriginal": "Canadian syllabics", "Nko": "N'Ko"}
_SPLITS = ("background", "evaluation")


def font_folder() -> Path:
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def alphabet_of(codepoint: int) -> str:
    """The alphabet a letter belongs to: its Unicode script, with a few scripts split into the
    separate writing systems their Unicode blocks hold (Georgian's three alphabets, IPA)."""
    script = font_unicodedata.script_name(font_unicodedata.script(codepoint))
    if script == "Latin":
        basic = codepoint < 0x250 or 0x1E00 <= codepoint < 0x1F00
        return "Latin" if basic else "Latin (IPA and extensions)"
    if script == "Cyrillic":
        return "Cyrillic" if codepoint < 0x500 else "Cyrillic (extended)"
    if script == "Georgian":
        if 0x10A0 <= codepoint < 0x10D0:
            return "Georgian (Asomtavruli)"
        if 0x2D00 <= codepoint < 0x2D30:
            return "Georgian (Nuskhuri)"
        return "Georgian (Mkhedruli)"
    return _SCRIPT_NAMES.get(script, script)


@cache
def _cmap(face: str) -> dict[int, str]:
    """codepoint -> glyph name of a font face (empty when the face is not installed)."""
    path = font_folder() / face
    if not path.exists():
        return {}
    with TTFont(path, lazy=True) as font:
        return {cp: name for cp, name in font.getBestCmap().items() if name != ".notdef"}


@cache
def _font(face: str, size: int) -> ImageFont.FreeTypeFont:
    # The basic layout engine draws one codepoint as its cmap glyph, identically on every machine.
    return ImageFont.truetype(str(font_folder() / face), size, layout_engine=ImageFont.Layout.BASIC)


def render_centred(character: str, face: str, canvas: int, fill: float = 0.7) -> np.ndarray | None:
    """One character drawn white on black, centred, aspect kept, its longer side ``fill * canvas``.

    Glyphs shorter than ``FULL_SIZE_EXTENT`` of the font size (small letters such as Hebrew yod)
    are enlarged only as much as a glyph of that extent, so they keep their stroke width and stay
    small instead of becoming blobs.

    Returns:
        [canvas, canvas] float32 in [0, 1], or None when the face draws nothing for it.
    """
    font_size = int(canvas * 1.5)
    ink = _ink(character, face, font_size)
    if ink is None:
        return None
    width, height = ink.size
    scale = fill * canvas / max(width, height, FULL_SIZE_EXTENT * font_size)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = ink.resize(size, Image.Resampling.LANCZOS)
    out = Image.new("L", (canvas, canvas), 0)
    out.paste(image, ((canvas - size[0]) // 2, (canvas - size[1]) // 2))
    return np.asarray(out, dtype=np.float32) / 255.0


def _ink(character: str, face: str, font_size: int) -> Image.Image | None:
    """The character drawn white on black at ``font_size``, cropped to its ink (None if blank)."""
    font = _font(face, font_size)
    left, top, right, bottom = font.getbbox(character)
    if right <= left or bottom <= top:
        return None
    image = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(image).text((-left, -top), character, font=font, fill=255)
    box = image.getbbox()
    return None if box is None else image.crop(box)


def _base_letter(character: str) -> str:
    decomposed = unicodedata.normalize("NFKD", character)
    return "".join(c for c in decomposed if not unicodedata.category(c).startswith("M"))


def _similarity(bitmaps: torch.Tensor) -> torch.Tensor:
    """Cosine similarity [n, n] of lightly blurred, mean-centred bitmaps [n, S, S]."""
    blurred = F.avg_pool2d(F.pad(bitmaps[:, None], (1, 1, 1, 1)), 3, stride=1).flatten(1)
    centred = blurred - blurred.mean(dim=1, keepdim=True)
    unit = centred / centred.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return unit @ unit.T


@dataclass(frozen=True)
class GlyphCharacter:
    codepoint: int
    alphabet: str

    @property
    def character(self) -> str:
        return chr(self.codepoint)

    @property
    def name(self) -> str:
        return f"U+{self.codepoint:04X} {self.character}"


@lru_cache(maxsize=1)
def glyph_candidates() -> tuple[GlyphCharacter, ...]:
    """The characters of the glyph set (steps 1 to 4 of the module docstring), in alphabet order."""
    cmap = _cmap(CANONICAL_FACE)
    if not cmap:
        raise FileNotFoundError(f"{CANONICAL_FACE} not found in {font_folder()}: the glyph set is "
                                "rendered from the fonts matplotlib ships; reinstall matplotlib")
    letters = {}
    for codepoint in sorted(cmap):
        character = chr(codepoint)
        if unicodedata.category(character) not in ("Lu", "Ll", "Lo"):
            continue
        if font_unicodedata.script(codepoint) in ("Zyyy", "Zinh", "Zzzz"):
            continue
        letters[codepoint] = character
    # Step 2: one letter per base letter (accent variants, presentation forms, ...).
    variants = collections.defaultdict(list)
    for codepoint, character in letters.items():
        base = _base_letter(character)
        if len(base) == 1:
            variants[base].append(codepoint)
    chosen = sorted(ord(base) if ord(base) in letters else min(group)
                    for base, group in variants.items())
    bitmaps, kept = [], []
    for codepoint in chosen:
        ink = _ink(chr(codepoint), CANONICAL_FACE, 100)
        if ink is None or max(ink.size) < MIN_EXTENT * 100:
            continue
        bitmap = render_centred(chr(codepoint), CANONICAL_FACE, 32, fill=0.875)
        if bitmap is not None and bitmap.sum() > 3.0:
            bitmaps.append(bitmap)
            kept.append(codepoint)
    similarity = _similarity(torch.from_numpy(np.stack(bitmaps))).numpy()
    alphabets = [alphabet_of(cp) for cp in kept]
    sizes = collections.Counter(alphabets)
    # Step 3: greedy removal of look-alikes, Latin first, then the smallest alphabets first.
    order = sorted(range(len(kept)), key=lambda i: (alphabets[i] != "Latin", sizes[alphabets[i]],
                                                    alphabets[i], kept[i]))
    keep = np.zeros(len(kept), dtype=bool)
    for i in order:
        if keep.any() and similarity[i, keep].max() > DUPLICATE_SIMILARITY:
            continue
        keep[i] = True
    # Step 4: large alphabets keep their most distinct characters.
    by_alphabet = collections.defaultdict(list)
    for i in np.flatnonzero(keep):
        by_alphabet[alphabets[i]].append(int(i))
    characters = []
    for alphabet in sorted(by_alphabet, key=lambda a: (a != "Latin", a)):
        members = _most_distinct(by_alphabet[alphabet], similarity, MAX_PER_ALPHABET)
        characters += [GlyphCharacter(kept[i], alphabet) for i in sorted(members)]
    return tuple(characters)


def _most_distinct(members: list[int], similarity: np.ndarray, limit: int) -> list[int]:
    """Farthest-point selection: start from the first member, then repeatedly add the member
    least similar to everything chosen so far."""
    if len(members) <= limit:
        return members
    sub = similarity[np.ix_(members, members)]
    chosen = [0]
    closest = sub[0].copy()
    for _ in range(limit - 1):
        closest[chosen] = np.inf
        pick = int(np.argmin(closest))
        chosen.append(pick)
        closest = np.maximum(closest, sub[pick])
    return [members[i] for i in chosen]


def _faces_for(character: GlyphCharacter, canvas: int) -> list[np.ndarray]:
    """The character centred in every face that draws it like the canonical face does.

    A face whose drawing is unlike DejaVu Sans's (cosine similarity below 0.5) is skipped: it draws
    a different glyph under that codepoint.
    """
    drawings = []
    for face in FACES:
        if character.codepoint not in _cmap(face):
            continue
        bitmap = render_centred(character.character, face, canvas)
        if bitmap is not None and bitmap.sum() > 0.5:
            drawings.append(bitmap)
    if len(drawings) > 1:
        flat = np.stack(drawings).reshape(len(drawings), -1)
        flat = flat - flat.mean(axis=1, keepdims=True)
        flat /= np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-8)
        similarity = flat @ flat[0]
        drawings = [d for d, s in zip(drawings, similarity, strict=True) if s >= 0.5]
    return drawings


def _distort(base: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random affine + elastic + stroke-width change of a batch [m, 1, S, S] (white on black)."""
    m = base.shape[0]
    angle = np.deg2rad(rng.uniform(-15, 15, m))
    shear = rng.uniform(-0.25, 0.25, m)
    scale = rng.uniform(0.85, 1.05, m)
    aspect = np.exp(rng.uniform(-0.1, 0.1, m))
    shift = rng.uniform(-0.12, 0.12, (m, 2))  # in half-widths: about +-1.7 pixels at 28
    elastic = rng.normal(0.0, 0.05, (m, 2, 4, 4))
    stroke = rng.uniform(-0.5, 0.5, m)
    return warp(base, angle=angle, shear=shear, scale=scale, aspect=aspect, shift=shift,
                elastic=elastic, stroke=stroke)


def build_glyphs(image_size: int = 28, seed: int = 0,
                 alphabets: tuple[str, ...] | None = None) -> dict:
    """Render the glyph set (every alphabet, or only ``alphabets``) without touching the cache.

    Returns:
        A dict with ``images`` [N, 1, image_size, image_size] uint8 (strokes high), ``labels`` [N],
        ``codepoints`` and ``alphabets`` (one per class), ``seconds`` (build time) and ``version``.
    """
    start = time.perf_counter()
    characters = [c for c in glyph_candidates() if alphabets is None or c.alphabet in alphabets]
    canvas = image_size
    rng = np.random.default_rng(seed)
    base, labels = [], []
    for label, character in enumerate(progress(characters, desc="rendering glyphs")):
        faces = _faces_for(character, canvas)
        order = rng.permutation(len(faces))
        base += [faces[order[j % len(faces)]] for j in range(DRAWINGS_PER_CHARACTER)]
        labels += [label] * DRAWINGS_PER_CHARACTER
    images = torch.empty(len(base), 1, image_size, image_size, dtype=torch.uint8)
    chunk = 4096
    for first in range(0, len(base), chunk):
        batch = torch.from_numpy(np.stack(base[first:first + chunk]))[:, None]
        images[first:first + chunk] = to_uint8(_distort(batch, rng))
    return {"version": FORMAT_VERSION, "matplotlib": matplotlib.__version__,
            "images": images, "labels": torch.tensor(labels),
            "codepoints": [c.codepoint for c in characters],
            "alphabets": [c.alphabet for c in characters],
            "seconds": time.perf_counter() - start}


def load_glyphs(image_size: int = 28, seed: int = 0) -> dict:
    """The full glyph set for (image_size, seed): from the disk cache, else built and cached."""
    path = cache_dir() / f"glyphs_v{FORMAT_VERSION}_{image_size}px_seed{seed}.pt"
    data = load_or_none(path)
    if (data is None or data.get("version") != FORMAT_VERSION
            or data.get("matplotlib") != matplotlib.__version__):
        data = build_glyphs(image_size, seed)
        save_atomic(data, path)
    return data


class Glyphs(ImageDataset):
    """The embedded Omniglot-like set (no download): letters of many scripts, 20 drawings each.

    Args:
        split: ``"background"`` (meta-training alphabets) or ``"evaluation"`` (disjoint alphabets,
            listed in ``EVALUATION_ALPHABETS``).
        image_size: side of the square images (28 as in most Omniglot work).
        seed: seed of the drawings (faces, distortions); the characters do not depend on it.

    Items are (image [1, image_size, image_size] float32 in [0, 1], strokes high; class id).
    Attributes: ``labels``, ``class_names`` ("U+0041 A"), ``characters`` (the letters),
    ``class_alphabets`` and ``alphabets``. The first use per (image_size, seed) renders the set
    (about 10 to 30 seconds) and caches it under ``$FEWSHOT_CACHE`` or ``~/.cache/fewshot_course``.
    """

    def __init__(self, split: str = "background", *, image_size: int = 28, seed: int = 0) -> None:
        if split not in _SPLITS:
            raise ValueError(f"split = {split!r}; use one of {_SPLITS}")
        if image_size < 8:
            raise ValueError(f"image_size = {image_size} is too small to draw a letter; use >= 8")
        data = load_glyphs(image_size, seed)
        in_split = [(a in EVALUATION_ALPHABETS) == (split == "evaluation")
                    for a in data["alphabets"]]
        classes = [c for c, keep in enumerate(in_split) if keep]
        new_label = torch.full((len(in_split),), -1, dtype=torch.long)
        new_label[classes] = torch.arange(len(classes))
        mask = new_label[data["labels"]] >= 0
        self.split, self.image_size, self.seed = split, image_size, seed
        self.codepoints = [data["codepoints"][c] for c in classes]
        self.characters = [chr(cp) for cp in self.codepoints]
        super().__init__(data["images"][mask], new_label[data["labels"][mask]],
                         class_names=[f"U+{cp:04X} {chr(cp)}" for cp in self.codepoints],
                         class_alphabets=[data["alphabets"][c] for c in classes])
