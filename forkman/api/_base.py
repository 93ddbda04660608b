"""What every part of :class:`forkman.api.Project` shares: its settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.observer import NullObserver, Observer
from ..model.project import Project as _CoreProject


@dataclass(frozen=True)
class ProjectBase:
    """The settings of a :class:`forkman.api.Project`; the methods are in its parts."""

    core: _CoreProject
    """The project's files (pyproject.toml, forkman.lock, .forkman/)."""
    observer: Observer = field(default_factory=NullObserver)
    """Where progress goes."""
    engine: str = "embedded"
    """Where fork actors run: ``embedded`` (in this process) or ``ray``."""
    jobs: int | None = None
    """Forks worked on at once (None: the number of cores)."""
    wait: float = 0.0
    """Seconds to queue behind another forkman process working on a fork."""
