"""Shared fixtures and helpers: where the real Omniglot zips are, a scratch cache for built
datasets, random stroke-like images, and a check that a method ignores how its episode is turned."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fewshot_course.data import omniglot_root
from fewshot_course.methods.symmetric import SYMMETRIES, symmetric_view

REPO_ROOT = Path(__file__).resolve().parents[1]


def omniglot_dir() -> Path:
    """The official Omniglot zips: ``omniglot_root()`` (the root conftest points it at them)."""
    return omniglot_root()


def random_strokes(n: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[n, 1, 28, 28] sparse stroke-like images in {0, 1}, the same for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 28, 28, generator=generator) > 0.85).to(dtype)


def assert_invariant_to_turning(method, support_x: torch.Tensor, support_y: torch.Tensor,
                                query_x: torch.Tensor) -> torch.Tensor:
    """Check that ``method``'s query scores are the same (to 1e-10) for the episode and for each of
    its turned and mirrored copies; returns the scores of the episode as it is."""
    with torch.no_grad():
        original = method.fit(support_x, support_y).predict(query_x)
        for mirrored, turns in SYMMETRIES[1:]:
            turned = method.fit(symmetric_view(support_x, mirrored, turns), support_y).predict(
                symmetric_view(query_x, mirrored, turns))
            torch.testing.assert_close(turned, original, rtol=1e-10, atol=1e-10)
    return original


@pytest.fixture(scope="session")
def real_omniglot() -> Path:
    """The real small background zips (read-only); the test is skipped, saying why, without them."""
    root = omniglot_dir()
    if not (root / "images_background_small1.zip").exists():
        pytest.skip(f"real Omniglot zips not found in {root} (set FEWSHOT_OMNIGLOT_DIR)")
    return root


@pytest.fixture(scope="module")
def one_cpu_thread():
    """One torch thread for a test module (``pytestmark = pytest.mark.usefixtures(...)``): on tiny
    tensors it is fastest, and immune to the stalls of waiting for a second thread on a busy
    machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
