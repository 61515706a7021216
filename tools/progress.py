"""Progress bars of the command-line tools (``tools.replay verify``, ``tools.bench``, ``tools.soak``), drawn by rich.

A ``Bar`` draws on a terminal's stderr only (never into a pipe or a file,
where the tools' output is read by programs), and is wiped when it closes.
``Bar.for_stderr(...)`` decides that; ``enabled`` forces it either way.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn


class Bar:
    """One progress bar: ``advance``/``update`` it, then ``close`` it (or use it as a context manager).

    Args:
        description: what it measures ("verifying").
        total: the count at 100% (ticks, seconds).
        stream: where to draw it (stderr).
        enabled: draw it at all (False: every call does nothing).
        unit: what ``total`` counts, shown after the count.
    """

    def __init__(self, description: str, total: float, stream: TextIO, *, enabled: bool = True, unit: str = "") -> None:
        self.enabled = enabled
        self.total = max(total, 1)
        self.count = 0.0
        self._progress: Progress | None = None
        if enabled:
            console = Console(file=stream, force_terminal=True, stderr=stream is sys.stderr)
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), MofNCompleteColumn(),
                TextColumn(unit), TimeRemainingColumn(), console=console, transient=True)
            self._task = self._progress.add_task(description, total=self.total)
            self._progress.start()

    @classmethod
    def for_stderr(cls, description: str, total: float, *, quiet: bool = False, unit: str = "") -> Bar:
        """A bar on stderr when it is a terminal and not ``quiet``; else one that draws nothing."""
        return cls(description, total, sys.stderr, enabled=sys.stderr.isatty() and not quiet, unit=unit)

    def advance(self, amount: float = 1) -> None:
        self.update(self.count + amount)

    def update(self, completed: float, description: str | None = None) -> None:
        self.count = completed
        if self._progress is not None:
            self._progress.update(self._task, completed=min(completed, self.total), description=description)

    def close(self) -> None:
        """Stop drawing and wipe the bar (idempotent)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
