"""What a sync of one fork ends with: :class:`SyncOutcome` and :class:`SyncResult`."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..sources.delta import DeltaSummary
from .release import SyncTarget


class SyncOutcome(enum.Enum):
    """How a sync of one fork ended."""

    SYNCED = "synced"
    """The fork moved to the new release."""
    UP_TO_DATE = "up-to-date"
    """No newer release is allowed by the fork's constraint."""
    PINNED = "pinned"
    """The fork is pinned; it is never synced."""
    CONFLICT = "conflict"
    """A patch did not merge; the sync is paused (continue or abort)."""
    DRY_RUN = "dry-run"
    """Nothing changed: what a sync would do was reported."""
    DECLINED = "declined"
    """The review was not confirmed; nothing changed."""
    ABORTED = "aborted"
    """A paused sync was undone."""
    FAILED = "failed"
    """An error stopped this fork's sync (a sync of several forks goes on with the others)."""


@dataclass(frozen=True)
class ConflictInfo:
    """Where a paused sync stopped."""

    number: int
    """The patch's position in the series (1-based)."""
    file: str
    """Its patch file."""
    subject: str
    """Its description's first line."""
    files: tuple[str, ...]
    """Conflicted files, relative to the project root."""
    unmarked: tuple[str, ...] = ()
    """Conflicted files git could not mark (binary, or deleted on one side): decide by hand."""


@dataclass(frozen=True)
class SyncResult:
    """The outcome of syncing one fork."""

    name: str
    """The fork."""
    outcome: SyncOutcome
    """How it ended."""
    old_version: str
    """The version before."""
    new_version: str | None = None
    """The version moved (or that would be moved) to."""
    message: str = ""
    """One line for humans."""
    delta: DeltaSummary | None = None
    """What upstream changed (when a new release was looked at)."""
    carried: tuple[str, ...] = ()
    """Subjects of the patches carried onto the new release."""
    dropped: tuple[str, ...] = ()
    """Subjects of the patches dropped because upstream already has them."""
    conflict: ConflictInfo | None = None
    """Where the sync stopped (conflict only)."""
    risks: tuple[Any, ...] = ()
    """Risky changes the upstream delta makes (:class:`forkman.audit.review.Finding`)."""


Confirm = Callable[[SyncTarget, DeltaSummary], bool]
"""Asked before a release is taken: True takes it."""
