"""Progress bars shared by every long loop of the course (notebook-aware, quiet in CI logs)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None,
             desc: str | None = None, disable: bool | None = None, **kwargs) -> tqdm:
    """A tqdm bar that renders as a widget in Jupyter and as text elsewhere.

    Set ``FEWSHOT_PROGRESS=0`` to silence every bar (for example in benchmark logs).
    """
    if disable is None:
        disable = os.environ.get("FEWSHOT_PROGRESS", "1") == "0"
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True,
                mininterval=0.5, **kwargs)
