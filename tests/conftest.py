"""Shared fixtures: where the real Omniglot zips are, and a scratch cache for built datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fewshot_course.data import omniglot_root

REPO_ROOT = Path(__file__).resolve().parents[1]


def omniglot_dir() -> Path:
    """The official Omniglot zips: ``omniglot_root()`` (the root conftest points it at them)."""
    return omniglot_root()


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
