"""Progress reporting: the core never prints, it tells an observer.

The CLI passes an observer that renders to stderr (rich on a terminal, plain
lines otherwise); library users and tests pass :class:`NullObserver` or their
own implementation.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable


class Observer(Protocol):
    """Receives progress from long-running work."""

    def step(self, subject: str, text: str) -> None:
        """`subject` (usually a fork name) started or finished a step."""

    def progress(self, subject: str, done: int, total: int | None) -> None:
        """`done` of `total` units (bytes, files) of the current step."""

    def warning(self, text: str) -> None:
        """Something the user should know that does not stop the work."""


@runtime_checkable
class BatchObserver(Protocol):
    """An observer that opens a view for each batch of forks worked on at once.

    The CLI's live progress table is one: :class:`forkman.Project` enters
    :meth:`batch` around every batch of fork operations and reports to the
    observer it yields.
    """

    def step(self, subject: str, text: str) -> None:
        """`subject` (usually a fork name) started or finished a step."""

    def progress(self, subject: str, done: int, total: int | None) -> None:
        """`done` of `total` units (bytes, files) of the current step."""

    def warning(self, text: str) -> None:
        """Something the user should know that does not stop the work."""

    def batch(self) -> AbstractContextManager[Observer]:
        """A view for one batch of fork operations (entered while they run)."""


class NullObserver:
    """An observer that ignores everything."""

    def step(self, subject: str, text: str) -> None:
        pass

    def progress(self, subject: str, done: int, total: int | None) -> None:
        pass

    def warning(self, text: str) -> None:
        pass


class RecordingObserver:
    """An observer that keeps what it is told (for tests and JSON output)."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, str]] = []
        self.warnings: list[str] = []

    def step(self, subject: str, text: str) -> None:
        self.steps.append((subject, text))

    def progress(self, subject: str, done: int, total: int | None) -> None:
        pass

    def warning(self, text: str) -> None:
        self.warnings.append(text)
