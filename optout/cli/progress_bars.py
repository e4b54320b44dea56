"""Progress bars on the terminal (stderr) for the engine's long passes (optout/model/progress.py):
started at the first pass, so a prompt before it (apply's confirmation) is never drawn over,
and gone when the command ends. Nothing is drawn when stderr is not a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from optout.cli.base import console
from optout.model.progress import listening


class Bars:
    """A rich Progress, one bar per running pass."""

    def __init__(self) -> None:
        self.progress: Any = None

    def start(self, description: str, total: int | None) -> object:
        if self.progress is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     console=console(stderr=True), transient=True)
            self.progress.start()
        return self.progress.add_task(description, total=total)

    def advance(self, task: object, description: str | None, done: int) -> None:
        self.progress.update(task, advance=done, **({"description": description}
                                                     if description else {}))

    def end(self, task: object) -> None:
        self.progress.remove_task(task)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@contextlib.contextmanager
def bars(quiet: bool = False) -> Iterator[None]:
    """Show the passes run inside the block (unless quiet, or stderr is no terminal)."""
    if quiet or not sys.stderr.isatty():
        yield
        return
    shown = Bars()
    try:
        with listening(shown):
            yield
    finally:
        shown.close()
