"""Showing fork actors at work: a live table on a terminal, plain lines otherwise.

Both are :class:`~forkman.core.observer.Observer` implementations that also take
actors' state changes (:class:`~forkman.actors.interface.ActorObserver`), so
the CLI passes one to :func:`~forkman.actors.run_for_forks` and the engine
keeps it current.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import IO

from rich.table import Table

from .interface import ActorState


@dataclass
class _Row:
    state: ActorState
    step: str
    started: float
    finished: float | None = None


class PlainProgress:
    """One line per operation started or step: ``attrs: syncing (merging 24.1.0)``.

    The end of an operation is not a line: the command reports its outcome.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stderr
        self._guard = threading.Lock()

    def _line(self, text: str) -> None:
        with self._guard:
            self._stream.write(text + "\n")
            self._stream.flush()

    def actor_state(self, subject: str, state: ActorState, step: str) -> None:
        # Only work starting is news: how it ended (done, failed and why, a conflict)
        # is the command's own output, printed once.
        if state.busy:
            self._line(f"{subject}: {state.value}" + (f" ({step})" if step else ""))

    def step(self, subject: str, text: str) -> None:
        self._line(f"{subject}: {text}")

    def progress(self, subject: str, done: int, total: int | None) -> None:
        pass

    def warning(self, text: str) -> None:
        self._line(f"warning: {text}")

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass


class LiveProgress:
    """A rich live table: per fork, its state, step and elapsed time."""

    def __init__(self, stream: IO[str] | None = None, *, title: str = "forks") -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=stream or sys.stderr)
        self._rows: dict[str, _Row] = {}
        self._guard = threading.Lock()
        self._title = title
        self._live = Live(
            console=self._console,
            get_renderable=self._render,
            refresh_per_second=8,
            transient=False,
        )

    def _render(self) -> Table:
        table = Table(title=self._title, expand=False)
        table.add_column("fork")
        table.add_column("state")
        table.add_column("step")
        table.add_column("elapsed", justify="right")
        now = time.monotonic()
        with self._guard:
            rows = sorted(self._rows.items())
        for name, row in rows:
            end = row.finished if row.finished is not None else now
            style = {"failed": "red", "conflict": "yellow", "idle": "green"}.get(row.state.value)
            table.add_row(name, row.state.value, row.step, f"{end - row.started:.1f}s", style=style)
        return table

    def actor_state(self, subject: str, state: ActorState, step: str) -> None:
        with self._guard:
            row = self._rows.get(subject)
            if row is None or (row.finished is not None and state.busy):
                row = self._rows[subject] = _Row(state, step, time.monotonic())
            row.state = state
            row.step = step
            row.finished = None if state.busy else time.monotonic()

    def step(self, subject: str, text: str) -> None:
        with self._guard:
            row = self._rows.setdefault(subject, _Row(ActorState.WORKING, "", time.monotonic()))
            row.step = text

    def progress(self, subject: str, done: int, total: int | None) -> None:
        pass

    def warning(self, text: str) -> None:
        self._console.print(f"warning: {text}", markup=False, highlight=False)

    def __enter__(self) -> LiveProgress:
        self._live.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.stop()


def progress_for(stream: IO[str] | None = None) -> LiveProgress | PlainProgress:
    """The live view when `stream` (stderr by default) is a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    if stream.isatty():
        return LiveProgress(stream)
    return PlainProgress(stream)
