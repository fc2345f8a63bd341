"""Where built datasets are cached, and how a cache file is written safely."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def cache_dir() -> Path:
    """``$FEWSHOT_CACHE`` if set, else ``~/.cache/fewshot_course`` (created on demand)."""
    path = Path(os.environ.get("FEWSHOT_CACHE") or Path.home() / ".cache" / "fewshot_course")
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_atomic(obj, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename it into place.

    Readers never see a half-written file, and two processes building the same cache at once
    (parallel test workers) both end with a complete file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(obj, file)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_or_none(path: Path):
    """The object saved at ``path``, or None when it is missing or unreadable (then rebuilt)."""
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception:  # a cache from another version or a damaged file: rebuild it
        return None
