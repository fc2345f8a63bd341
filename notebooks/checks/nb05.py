"""Checks for 05_beyond_maml: prototypes of imbalanced support sets, calibrating one feature with
the base-class statistics, and the number of test episodes a confidence interval needs."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from checks import passed
from fewshot_course.methods import DistributionCalibration
from fewshot_course.methods.protonet import prototypes


def check_1(answer: Callable) -> None:
    """answer(embeddings [S, D], labels [S], n_way) -> prototypes [n_way, D]."""
    generator = torch.Generator().manual_seed(0)
    cases = {
        "balanced, 5-way 3-shot": torch.arange(5).repeat_interleave(3),
        "imbalanced shots [1, 4, 2, 7]": torch.arange(4).repeat_interleave(
            torch.tensor([1, 4, 2, 7])),
        "imbalanced, labels shuffled": torch.arange(3).repeat_interleave(
            torch.tensor([5, 1, 3]))[torch.randperm(9, generator=generator)],
    }
    for name, labels in cases.items():
        n_way = int(labels.max()) + 1
        embeddings = torch.randn(len(labels), 16, generator=generator, dtype=torch.float64)
        result = answer(embeddings, labels, n_way)
        assert isinstance(result, torch.Tensor) and tuple(result.shape) == (n_way, 16), (
            f"{name}: expected a tensor of shape ({n_way}, 16), got "
            f"{type(result).__name__} {tuple(getattr(result, 'shape', ()))}")
        expected = prototypes(embeddings, labels, n_way)
        error = float((result.double() - expected).abs().max())
        assert error < 1e-10, (f"{name}: prototypes differ from the library's by {error:.2e}; "
                               "average each class's embeddings over its own examples")
    passed("prototypes equal fewshot_course.methods.protonet.prototypes, balanced and imbalanced")


def check_2(answer: Callable) -> None:
    """answer(feature [D], base_means [C, D], base_covariances [C, D, D], k, alpha) -> (mean, cov)

    The calibrated Gaussian of one support feature, as in ``DistributionCalibration.calibrate``.
    """
    generator = torch.Generator().manual_seed(1)
    classes, dim = 12, 6
    means = torch.rand(classes, dim, generator=generator) * 3
    factors = torch.randn(classes, dim, dim, generator=generator)
    covariances = factors @ factors.transpose(1, 2) / dim
    for k, alpha in ((2, 0.21), (4, 0.5)):
        method = DistributionCalibration(torch.nn.Identity(), means, covariances, k=k,
                                         alpha=alpha)
        for trial in range(3):
            feature = torch.rand(dim, generator=generator) * 3
            result = answer(feature, means, covariances, k, alpha)
            assert isinstance(result, tuple | list) and len(result) == 2, (
                f"return a pair (mean, covariance), got {type(result).__name__}")
            mean, covariance = result
            expected_mean, expected_covariance = method.calibrate(feature)
            assert tuple(mean.shape) == (dim,) and tuple(covariance.shape) == (dim, dim), (
                f"shapes: mean {tuple(mean.shape)} (want ({dim},)), covariance "
                f"{tuple(covariance.shape)} (want ({dim}, {dim}))")
            assert torch.allclose(mean, expected_mean, atol=1e-5), (
                f"k={k}, trial {trial}: the calibrated mean differs from the library's by "
                f"{float((mean - expected_mean).abs().max()):.2e}; it is (sum of the k nearest "
                "base means + the feature) / (k + 1)")
            assert torch.allclose(covariance, expected_covariance, atol=1e-5), (
                f"k={k}, trial {trial}: the calibrated covariance differs from the library's by "
                f"{float((covariance - expected_covariance).abs().max()):.2e}; it is the mean "
                "of the k nearest classes' covariances plus alpha on the diagonal")
    passed("calibrated means and covariances equal DistributionCalibration.calibrate "
           "(k = 2 and 4)")


def check_3(answer: Callable) -> None:
    """answer(std, half_width) -> smallest n with 1.96 * std / sqrt(n) <= half_width."""
    cases = [(0.12, 0.01), (0.15, 0.005), (0.1, 0.008), (0.2, 0.2), (0.3, 0.02), (0.05, 0.1)]
    for std, half_width in cases:
        n = answer(std, half_width)
        assert isinstance(n, int) and n >= 1, f"({std}, {half_width}): return a whole number >= 1"
        assert 1.96 * std / math.sqrt(n) <= half_width + 1e-12, (
            f"std {std}, half-width {half_width}: with n = {n} the interval is "
            f"±{1.96 * std / math.sqrt(n):.4f}, still wider than ±{half_width}")
        assert n == 1 or 1.96 * std / math.sqrt(n - 1) > half_width, (
            f"std {std}, half-width {half_width}: n = {n - 1} episodes already suffice; "
            "return the smallest n")
    passed(f"the episode counts are the smallest that reach each half-width ({len(cases)} cases)")
