"""A figure as PNG bytes, for an ``ipywidgets.Image`` that a slider redraws."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def figure_png(figure: Figure, *, dpi: int = 72) -> bytes:
    """``figure`` rendered as PNG bytes, then closed, so the notebook does not also show it."""
    try:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()
    finally:
        plt.close(figure)
