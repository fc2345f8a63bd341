"""Shared fixtures: where the real Omniglot zips are, and a scratch cache for built datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def omniglot_dir() -> Path:
    """The official Omniglot zips: $FEWSHOT_OMNIGLOT_DIR, else ../shared/data/omniglot."""
    return Path(os.environ.get("FEWSHOT_OMNIGLOT_DIR",
                               REPO_ROOT.parent / "shared" / "data" / "omniglot"))


@pytest.fixture(scope="session")
def real_omniglot() -> Path:
    """The real small background zips (read-only); the test is skipped, saying why, without them."""
    root = omniglot_dir()
    if not (root / "images_background_small1.zip").exists():
        pytest.skip(f"real Omniglot zips not found in {root} (set FEWSHOT_OMNIGLOT_DIR)")
    return root
