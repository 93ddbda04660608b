"""Progress reporting: the core never prints, it tells an observer.

The CLI passes an observer that renders to stderr (rich on a terminal, plain
lines otherwise); library users and tests pass :class:`NullObserver` or their
own implementation.
"""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    """Receives progress from long-running work."""

    def step(self, subject: str, text: str) -> None:
        """`subject` (usually a fork name) started or finished a step."""

    def progress(self, subject: str, done: int, total: int | None) -> None:
        """`done` of `total` units (bytes, files) of the current step."""

    def warning(self, text: str) -> None:
        """Something the user should know that does not stop the work."""


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
