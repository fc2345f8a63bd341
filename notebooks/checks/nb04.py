"""Checks for 04_applications: a paired comparison of two methods, and scans brought into the
course's image convention."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from checks import passed
from fewshot_course.data import Digits, EpisodeSampler
from fewshot_course.evaluation import Result, evaluate
from fewshot_course.methods import NearestNeighbour, ProtoNet


def _paired_reference(a: Result, b: Result) -> tuple[float, float]:
    differences = torch.tensor(a.accuracies, dtype=torch.float64) - torch.tensor(
        b.accuracies, dtype=torch.float64)
    return (float(differences.mean()),
            float(1.96 * differences.std(correction=1) / math.sqrt(len(differences))))


def _as_pair(value, where: str) -> tuple[float, float]:
    assert isinstance(value, tuple | list) and len(value) == 2, (
        f"{where}: return a pair (mean, ci95), got {value!r}")
    mean, ci95 = (float(v) for v in value)
    return mean, ci95


def check_1(answer: Callable) -> None:
    """answer(result_a, result_b) -> (mean, ci95) of the paired per-episode differences."""
    # A case with a known answer: b is a exactly 0.1 worse on every episode.
    a = Result.from_accuracies([0.5, 0.7, 0.9, 0.6, 0.8])
    b = Result.from_accuracies([x - 0.1 for x in a.accuracies])
    mean, ci95 = _as_pair(answer(a, b), "constant difference")
    assert abs(mean - 0.1) < 1e-9 and abs(ci95) < 1e-9, (
        f"when b is exactly 0.1 below a on every episode the answer is (0.1, 0.0); got "
        f"({mean:.6f}, {ci95:.6f}). Subtract episode by episode, then take mean and CI.")

    # Two real methods on the same 40 digit episodes: 1-NN and nearest class mean on pixels.
    digits = Digits()
    results = [evaluate(method, EpisodeSampler(digits, 5, 2, 5, seed=3), episodes=40,
                        device="cpu", desc="check")
               for method in (NearestNeighbour(), ProtoNet(torch.nn.Flatten()))]
    expected = _paired_reference(*results)
    mean, ci95 = _as_pair(answer(*results), "1-NN vs nearest class mean on digits")
    assert abs(mean - expected[0]) < 1e-9, (
        f"mean difference {mean:.6f}, expected {expected[0]:.6f}")
    unpaired = 1.96 * math.sqrt(sum(r.ci95 ** 2 / 1.96 ** 2 for r in results))
    assert abs(ci95 - expected[1]) < 1e-9, (
        f"ci95 {ci95:.6f}, expected {expected[1]:.6f} = 1.96 * std(differences, n - 1) / sqrt(n)"
        + (" (that looks like the unpaired interval)" if abs(ci95 - unpaired) < 1e-6 else ""))
    passed(f"paired difference {100 * mean:+.1f} ± {100 * ci95:.1f} points, as expected "
           f"(separate CIs ±{100 * results[0].ci95:.1f} and ±{100 * results[1].ci95:.1f})")


def check_2(answer: Callable) -> None:
    """answer(images [B, 1, H, W], dark ink on light paper) -> strokes high, stretched to [0, 1]."""
    digits = Digits()
    clean = digits.images_at(torch.arange(0, 1797, 90))  # [20, 1, 28, 28], strokes high
    generator = torch.Generator().manual_seed(0)
    paper = 0.75 + 0.2 * torch.rand(len(clean), 1, 1, 1, generator=generator)
    ink = 0.05 + 0.3 * torch.rand(len(clean), 1, 1, 1, generator=generator)
    scans = paper - (paper - ink) * clean  # light paper, dark ink, different per image
    result = answer(scans.clone())
    assert isinstance(result, torch.Tensor) and result.shape == clean.shape, (
        f"expected a tensor of shape {tuple(clean.shape)}, got "
        f"{type(result).__name__} {tuple(getattr(result, 'shape', ()))}")
    low = clean.amin(dim=(1, 2, 3), keepdim=True)
    high = clean.amax(dim=(1, 2, 3), keepdim=True)
    expected = (clean - low) / (high - low)
    assert float(result.amin()) >= -1e-6 and float(result.amax()) <= 1 + 1e-6, (
        f"values must lie in [0, 1], got {float(result.amin()):.3f}..{float(result.amax()):.3f}")
    if torch.allclose(result, 1 - scans, atol=1e-5):
        raise AssertionError("inverted, but not stretched: the paper must become exactly 0 and "
                             "the darkest ink exactly 1, image by image")
    error = float((result - expected).abs().max())
    assert error < 1e-5, (f"the images differ from the original digits by up to {error:.3f}; "
                          "invert (1 - x), then map each image's min to 0 and max to 1")
    passed(f"{len(clean)} scans with grey paper and grey ink turned back into the digits "
           f"(max error {error:.1e})")
