"""Plots go to a PNG, or fail in one line that says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.plots import Panel, PlotError, Series, save_panels


def test_panels_are_saved_as_one_png(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    save_panels(path, [Panel("MiB", [Series("rss", [0, 1, 2], [50, 52, 51])]), Panel("ms", [])],
                title="t", xlabel="seconds")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_path_that_cannot_be_written_is_a_plot_error(tmp_path: Path) -> None:
    with pytest.raises(PlotError, match="cannot write"):
        save_panels(tmp_path / "no" / "such" / "dir.png", [Panel("x", [])], title="t", xlabel="x")
