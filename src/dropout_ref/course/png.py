"""Render a matplotlib figure to PNG bytes without touching the caller's matplotlib backend."""

from __future__ import annotations

import io
from typing import Any


def new_figure(**kwargs: Any) -> Any:
    """Return a ``matplotlib.figure.Figure`` drawn by its own Agg canvas.

    ``matplotlib.use("Agg")`` would switch the caller's global backend (a notebook's,
    say); a Figure with its own FigureCanvasAgg needs no display and changes nothing.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure: Any) -> bytes:
    """Return ``figure`` laid out tightly and rendered as PNG bytes."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
