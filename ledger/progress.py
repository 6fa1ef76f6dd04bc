"""Progress bars for the long commands (export, verify, replay, shipment imports).

Drawn with rich on stderr, and only when stderr is a terminal: in a pipe, a log
or CI the commands print exactly what they printed before. The bar is transient
(erased when the work ends), so a terminal keeps only the command's own lines.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Update(Protocol):
    """update(completed, total=None): units done so far (not an increment); a total
    learned only once the work started may be given too."""

    def __call__(self, completed: int, total: int | None = None) -> None: ...


def _ignore(completed: int, total: int | None = None) -> None:
    return None


@contextmanager
def progress_bar(description: str, total: int | None, unit: str = "entries",
                 console: Any = None) -> Iterator[Update]:
    """Yields `update(completed)`. Draws nothing unless stderr is a terminal (or a
    rich `console` is given, as tests do)."""
    if console is None and not sys.stderr.isatty():
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)

        def update(completed: int, total: int | None = None) -> None:
            bar.update(task, completed=completed, total=total)

        yield update
