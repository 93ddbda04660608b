"""The rules of the risk review (:mod:`forkman.audit.review`) and what they find."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._settings import Severity

__all__ = ["RULES", "Finding", "Hit", "Rule", "Severity"]


@dataclass(frozen=True)
class Rule:
    """A kind of risky change."""

    id: str
    """Stable identifier (used in reports and SARIF-like tooling)."""
    severity: Severity
    """Default severity."""
    why: str
    """Why it matters, for the reviewer."""


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "install-hook-pth",
            Severity.CRITICAL,
            "a .pth file with an import line runs code in every Python process of the "
            "environment, at interpreter start",
        ),
        Rule(
            "install-hook-pth-file",
            Severity.MEDIUM,
            ".pth files change sys.path for every process of the environment",
        ),
        Rule(
            "install-hook-sitecustomize",
            Severity.HIGH,
            "sitecustomize/usercustomize modules run at every interpreter start",
        ),
        Rule(
            "install-time-code",
            Severity.MEDIUM,
            "setup.py runs with the installing user's rights when the sdist is built",
        ),
        Rule(
            "build-backend-changed",
            Severity.HIGH,
            "the build backend runs arbitrary code at install; a changed or in-tree backend "
            "is a way to run it",
        ),
        Rule(
            "entry-point-added",
            Severity.MEDIUM,
            "entry points in plugin groups are imported automatically by other tools "
            "(pytest, setuptools, ...)",
        ),
        Rule(
            "exec-decoded",
            Severity.CRITICAL,
            "executing decoded, decompressed or downloaded data is how droppers hide payloads",
        ),
        Rule(
            "exec-dynamic",
            Severity.LOW,
            "exec/eval/compile of computed strings makes code review unreliable",
        ),
        Rule(
            "download-and-run",
            Severity.CRITICAL,
            "fetching a script and piping it to a shell runs whatever the server sends",
        ),
        Rule(
            "network-added",
            Severity.MEDIUM,
            "a file that had no network access now has some: a way to exfiltrate or to "
            "fetch a payload",
        ),
        Rule(
            "process-added",
            Severity.MEDIUM,
            "a file that spawned no processes now does: a way to run arbitrary commands",
        ),
        Rule(
            "credential-read",
            Severity.HIGH,
            "reading credential files or the whole environment is what stealers do",
        ),
        Rule(
            "binary-added",
            Severity.MEDIUM,
            "binary files cannot be reviewed as source and may carry compiled code",
        ),
        Rule(
            "obfuscated-blob",
            Severity.HIGH,
            "long high-entropy strings usually hide encoded payloads",
        ),
        Rule(
            "long-line",
            Severity.LOW,
            "very long lines in source hide code from reviewers and diff viewers",
        ),
        Rule(
            "new-dependency",
            Severity.MEDIUM,
            "a new dependency is new code from new people, installed with the fork",
        ),
    )
}


@dataclass(frozen=True)
class Finding:
    """One risky change."""

    rule: str
    """The rule id (see RULES)."""
    severity: Severity
    """How much it matters."""
    file: str
    """The file, relative to the tree root."""
    line: int
    """1-based line, 0 when it concerns the whole file."""
    message: str
    """What was found."""
    why: str
    """Why it matters."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON and the lock."""
        return {
            "rule": self.rule,
            "severity": self.severity.name.lower(),
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "why": self.why,
        }


@dataclass(frozen=True)
class Hit:
    """One match of a rule in one file (before the delta filter)."""

    rule: str
    line: int
    detail: str
    severity: Severity | None = None
