"""Plots of the tools, with matplotlib (an optional dependency: ``pip install 'tickserver[plots]'``).

Where a curve says more than a table (the soak's memory and tick time over
time; a benchmark's figures over a sweep of players), a tool draws
``Panel``s sharing one x axis into a PNG with ``save_panels``. matplotlib is
imported only then, with its file-only backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attrs import frozen


class PlotError(Exception):
    """A plot cannot be drawn (matplotlib missing, the file not writable): the message says why."""


@frozen
class Series:
    """One curve: its legend label and its points."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]


@frozen
class Panel:
    """One chart of a figure: its y axis label and its curves."""

    ylabel: str
    series: Sequence[Series]


def require() -> None:
    """Raise ``PlotError`` now (before a long run) if plots cannot be drawn."""
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError("plots need matplotlib: pip install 'tickserver[plots]'") from None
    return plt


def save_panels(path: Path, panels: Sequence[Panel], *, title: str, xlabel: str) -> None:
    """Draw ``panels`` one above the other, sharing the x axis (``xlabel``), into the PNG ``path``."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(9, 3 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        for s in panel.series:
            ax.plot(list(s.xs), list(s.ys), marker="." if len(s.xs) < 200 else None, label=s.label)
        ax.set_ylabel(panel.ylabel)
        ax.grid(alpha=0.3)
        if panel.series:
            ax.legend()
    axes[-1, 0].set_xlabel(xlabel)
    fig.suptitle(title)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        raise PlotError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
