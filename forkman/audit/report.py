"""The outcome of `forkman audit`: per-fork results, their lock table and plain-data forms.

:mod:`forkman.audit.vulnerabilities` produces these; :mod:`forkman.audit.render`
renders them.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .osvdb import DatabaseInfo


class AuditFormat(enum.Enum):
    """Output formats of `forkman audit`."""

    COLUMNS = "columns"
    JSON = "json"
    MARKDOWN = "markdown"
    CYCLONEDX = "cyclonedx"
    SARIF = "sarif"


class VulnState(enum.Enum):
    """What the project does about one vulnerability of a fork."""

    OPEN = "open"
    """Affects the fork and nothing covers it: fails the audit."""
    PATCHED = "patched-locally"
    """A patch of the fork declares that it fixes it."""
    IGNORED = "ignored"
    """An unexpired ignore with a reason covers it."""
    IGNORE_EXPIRED = "ignore-expired"
    """An ignore covered it but has expired: fails the audit again."""

    @property
    def fails(self) -> bool:
        """Whether this state fails the audit."""
        return self in (VulnState.OPEN, VulnState.IGNORE_EXPIRED)


class ForkStatus(enum.Enum):
    """The audit outcome of one fork."""

    CLEAN = "clean"
    VULNERABLE = "vulnerable"
    PATCHED = "patched"
    """Every known vulnerability is patched locally or ignored."""
    UNAUDITED = "unaudited"
    """At least one requested source could not audit it."""


@dataclass(frozen=True)
class Vulnerability:
    """One known vulnerability of a fork."""

    id: str
    """The advisory id (pip-audit's preferred one: PYSEC first)."""
    aliases: tuple[str, ...]
    """Other ids of the same vulnerability."""
    summary: str
    """A short description."""
    fix_versions: tuple[str, ...]
    """Upstream versions that fix it, ascending."""
    state: VulnState
    """What covers it, if anything."""
    note: str = ""
    """Which patch or ignore covers it, and why."""

    @property
    def ids(self) -> frozenset[str]:
        """The id and all aliases, upper-cased."""
        return frozenset(i.upper() for i in (self.id, *self.aliases))


@dataclass(frozen=True)
class ForkAudit:
    """The audit of one fork."""

    name: str
    """The fork's name."""
    version: str
    """The audited upstream version."""
    status: ForkStatus
    """The outcome."""
    vulnerabilities: tuple[Vulnerability, ...] = ()
    """Known vulnerabilities, whatever their state."""
    unaudited: tuple[str, ...] = ()
    """Why a source could not audit the fork."""
    fix_version: str | None = None
    """The lowest version pip-audit's fix resolution finds clear of all open ones."""
    path: str = ""
    """The vendored tree (for locations in reports)."""


@dataclass(frozen=True)
class AuditReport:
    """The outcome of one `forkman audit` run."""

    when: str
    """When it ran (UTC, RFC 3339)."""
    database: DatabaseInfo | None
    """The local database used (None when absent)."""
    sources: tuple[str, ...]
    """The services asked (``local OSV database``, ``PyPI``, ``OSV``)."""
    forks: tuple[ForkAudit, ...]
    """One result per audited fork."""

    def exit_code(self, *, allow_unaudited: bool) -> int:
        """1 when a vulnerability is open or (unless allowed) a fork is unaudited."""
        for fork in self.forks:
            if any(v.state.fails for v in fork.vulnerabilities):
                return 1
            if fork.status is ForkStatus.UNAUDITED and not allow_unaudited:
                return 1
        return 0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def now_rfc3339() -> str:
    """Now, as a report's ``when`` (UTC, RFC 3339)."""
    return _now().isoformat().replace("+00:00", "Z")


def lock_section(report: AuditReport, fork: ForkAudit) -> dict[str, Any]:
    """The ``audit`` table stored for `fork` in forkman.lock."""
    db = report.database
    section: dict[str, Any] = {
        "when": report.when,
        "status": fork.status.value,
        "database": f"{db.source} (imported {db.imported_at})" if db else "none",
        "sources": list(report.sources),
        "vulnerabilities": [v.id for v in fork.vulnerabilities if v.state.fails],
    }
    patched = [v.id for v in fork.vulnerabilities if v.state is VulnState.PATCHED]
    ignored = [v.id for v in fork.vulnerabilities if v.state is VulnState.IGNORED]
    if patched:
        section["patched"] = patched
    if ignored:
        section["ignored"] = ignored
    if fork.unaudited:
        section["unaudited"] = list(fork.unaudited)
    return section


def fork_audit_json(fork: ForkAudit) -> dict[str, Any]:
    """One fork's audit as plain data (a fork actor's reply)."""
    return {
        "name": fork.name,
        "version": fork.version,
        "status": fork.status.value,
        "vulnerabilities": [
            {
                "id": v.id,
                "aliases": list(v.aliases),
                "summary": v.summary,
                "fix_versions": list(v.fix_versions),
                "state": v.state.value,
                "note": v.note,
            }
            for v in fork.vulnerabilities
        ],
        "unaudited": list(fork.unaudited),
        "fix_version": fork.fix_version,
        "path": fork.path,
    }


def fork_audit_from_json(data: Mapping[str, Any]) -> ForkAudit:
    """The inverse of :func:`fork_audit_json`."""
    return ForkAudit(
        name=str(data["name"]),
        version=str(data["version"]),
        status=ForkStatus(data["status"]),
        vulnerabilities=tuple(
            Vulnerability(
                id=str(v["id"]),
                aliases=tuple(v["aliases"]),
                summary=str(v["summary"]),
                fix_versions=tuple(v["fix_versions"]),
                state=VulnState(v["state"]),
                note=str(v.get("note", "")),
            )
            for v in data["vulnerabilities"]
        ),
        unaudited=tuple(data["unaudited"]),
        fix_version=data.get("fix_version"),
        path=str(data.get("path", "")),
    )


def database_json(info: DatabaseInfo | None) -> dict[str, Any] | None:
    """A database's description as plain data."""
    if info is None:
        return None
    return {
        "path": str(info.path),
        "source": info.source,
        "imported_at": info.imported_at,
        "advisories": info.advisories,
        "packages": info.packages,
        "withdrawn": info.withdrawn,
        "skipped": info.skipped,
    }


def database_from_json(data: Mapping[str, Any] | None) -> DatabaseInfo | None:
    """The inverse of :func:`database_json`."""
    if data is None:
        return None
    return DatabaseInfo(**{**data, "path": Path(data["path"])})
