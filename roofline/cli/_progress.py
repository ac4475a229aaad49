"""A progress bar on stderr that appears with the first progress report, so that errors found
before it (a bad file, a refused output folder, unreachable storage) stay one line."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["LazyProgress"]


class LazyProgress:
    """Call it with (done, total); ``close()`` it at the end (safe when it never appeared).

    Args:
        label: text before the bar.
        unit: what is counted ("configs", "trials").
        remaining: show the estimated time remaining (else the time elapsed).
        preamble: a line printed on stderr just before the bar appears (for example the run's
            size), so that it too follows every early one-line error.
    """

    def __init__(self, label: str, unit: str, *, remaining: bool = False, preamble: str = "") -> None:
        self.label, self.unit, self.remaining, self.preamble = label, unit, remaining, preamble
        self.bar: Any = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            if self.preamble:
                print(self.preamble, file=sys.stderr)
            clock = TimeRemainingColumn() if self.remaining else TimeElapsedColumn()
            self.bar = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TextColumn(self.unit),
                                clock, console=Console(stderr=True))
            self.bar.start()
            self.task = self.bar.add_task(self.unit, total=total)
        self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
