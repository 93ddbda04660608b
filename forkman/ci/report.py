"""What a `forkman ci` run reports: each stage's result and findings, and the whole run's.

These are the typed results :meth:`forkman.Project.ci` returns; the formats
(:mod:`forkman.ci.formats`) render them as JSON, SARIF, JUnit or Markdown.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ..model.project import Project


class StageStatus(enum.Enum):
    """How a stage ended."""

    OK = "ok"
    """The stage ran and found nothing wrong."""
    FAILED = "failed"
    """The stage ran and found something wrong (findings)."""
    SKIPPED = "skipped"
    """There was nothing for the stage to do (e.g. no fork changed)."""
    ERROR = "error"
    """The stage could not do its work; CI fails closed."""


class Level(enum.Enum):
    """How serious a finding is (the SARIF levels)."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True)
class CiFinding:
    """One thing a stage found wrong."""

    stage: str
    """The stage that found it."""
    rule: str
    """A stable identifier of the kind of finding (e.g. ``modified``, ``rebuild``)."""
    message: str
    """One line for humans."""
    fork: str | None = None
    """The fork concerned, if any."""
    path: str | None = None
    """The file concerned, relative to the project root, if any."""
    level: Level = Level.ERROR
    """How serious it is."""
    hint: str = ""
    """What to run to fix or record it."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "stage": self.stage,
            "rule": self.rule,
            "level": self.level.value,
            "fork": self.fork,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class StageResult:
    """The outcome of one stage."""

    name: str
    """The stage's name."""
    status: StageStatus
    """How it ended."""
    summary: str
    """One line for the summary table."""
    findings: tuple[CiFinding, ...] = ()
    """What it found wrong (or why it could not run)."""
    duration: float = 0.0
    """Seconds it took."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "name": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "duration": round(self.duration, 3),
            "findings": [f.as_dict() for f in self.findings],
        }


class Stage(Protocol):
    """One step of a CI run."""

    name: str

    def run(self, project: Project) -> StageResult:
        """Do the work; never raise for findings (return them), only for bugs."""
        ...


@dataclass(frozen=True)
class CiReport:
    """The outcome of a CI run."""

    stages: tuple[StageResult, ...]
    """Every stage, in the order they ran."""
    base: str | None = None
    """The merge base the changed forks were computed against (None: all forks)."""
    changed: tuple[str, ...] | None = None
    """The forks that changed against the base (None: all forks were tested)."""
    policy: str = "working tree"
    """Where the security settings came from: ``base REV (COMMIT)`` or ``working tree``."""

    @property
    def ok(self) -> bool:
        """True when no stage failed or errored."""
        return all(s.status in (StageStatus.OK, StageStatus.SKIPPED) for s in self.stages)

    @property
    def exit_code(self) -> int:
        """0 ok, 1 findings, 2 a stage could not run."""
        statuses = {s.status for s in self.stages}
        if StageStatus.ERROR in statuses:
            return 2
        if StageStatus.FAILED in statuses:
            return 1
        return 0

    def findings(self) -> list[CiFinding]:
        """Every finding of every stage."""
        return [f for s in self.stages for f in s.findings]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the ``--format json`` document)."""
        from ..core.version import __version__

        return {
            "tool": "forkman",
            "version": __version__,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "base": self.base,
            "changed_forks": list(self.changed) if self.changed is not None else None,
            "policy": self.policy,
            "stages": [s.as_dict() for s in self.stages],
        }


def timed(
    name: str, started: float, status: StageStatus, summary: str, findings: Iterable[CiFinding]
) -> StageResult:
    """The result of stage `name`, which started at ``time.monotonic()`` `started`."""
    return StageResult(name, status, summary, tuple(findings), time.monotonic() - started)
