"""`forkman audit`: known vulnerabilities of every fork, never a false clean.

The forks in the lock are audited through pip-audit (see :mod:`._pipaudit`)
against the local OSV database and, on request, pip-audit's online services.
A fork that some requested source could not audit is UNAUDITED, which fails
the audit unless the user allows it. Local patches that declare the advisory
they fix, and ignores with a reason and an expiry, change the answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.version import Version

from ..core.observer import NullObserver, Observer
from ..model.lock import LockEntry
from ..model.project import Project, cache_root
from ..store.txn import record_section
from ._settings import AuditSettings, Ignore, load_settings
from .osvdb import DatabaseError, OsvDatabase, parse_version
from .render import render, render_sarif, report_dict
from .report import (
    AuditFormat,
    AuditReport,
    ForkAudit,
    ForkStatus,
    Vulnerability,
    VulnState,
    database_from_json,
    database_json,
    fork_audit_from_json,
    fork_audit_json,
    lock_section,
    now_rfc3339,
)

__all__ = [
    "AuditFormat",
    "AuditReport",
    "ForkAudit",
    "ForkStatus",
    "VulnState",
    "Vulnerability",
    "audit_forks",
    "audit_project",
    "database_from_json",
    "database_json",
    "fork_audit_from_json",
    "fork_audit_json",
    "lock_section",
    "now_rfc3339",
    "render",
    "render_sarif",
    "report_dict",
]

_NULL_OBSERVER = NullObserver()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _classify(
    fork: LockEntry, ids: frozenset[str], ignores: Sequence[Ignore], today: dt.date
) -> tuple[VulnState, str]:
    for patch in fork.patches:
        if ids & {f.upper() for f in patch.fixes}:
            return VulnState.PATCHED, f"patched locally by {patch.file}"
    expired: Ignore | None = None
    for ignore in ignores:
        if ignore.id.upper() not in ids or (ignore.forks and fork.name not in ignore.forks):
            continue
        if not ignore.expired(today):
            return VulnState.IGNORED, f"ignored until {ignore.expires}: {ignore.reason}"
        expired = ignore
    if expired is not None:
        return (
            VulnState.IGNORE_EXPIRED,
            f"ignore expired on {expired.expires} (was: {expired.reason}); review it again",
        )
    return VulnState.OPEN, ""


def audit_forks(
    forks: Sequence[LockEntry],
    *,
    settings: AuditSettings,
    online: bool = False,
    online_services: Sequence[tuple[str, Any]] | None = None,
    today: dt.date | None = None,
    observer: Observer = _NULL_OBSERVER,
) -> AuditReport:
    """Audit `forks` against the local database (and online services when `online`).

    `online_services` replaces pip-audit's PyPI and OSV services (for tests or
    private OSV servers); it implies `online`.
    """
    from . import _pipaudit

    now = _now()
    today = today or now.date()
    services: list[tuple[str, Any]] = []
    database, missing_db = _open_database(settings)
    try:
        if database is not None:
            services.append(("local OSV database", _pipaudit.LocalOsvService(database)))
        if online_services is not None:
            services.extend(online_services)
        elif online:
            services.extend(_pipaudit.online_services(cache_root() / "pip-audit"))
        pins, bad_version = _pins(forks)
        observer.step("audit", f"auditing {len(pins)} forks with {len(services)} sources")
        answers = _pipaudit.audit_pins(pins, services) if services else {}
        results = []
        for fork in forks:
            reasons = [r for r in (missing_db, bad_version.get(fork.name)) if r is not None]
            answer = answers.get(fork.name)
            if answer is not None:
                reasons.extend(answer.skipped)
            vulns = _vulnerabilities(fork, answer, settings, today)
            open_ids = [v.id for v in vulns if v.state.fails]
            fix = None
            if open_ids and services and fork.name not in bad_version:
                fix = _fix_version(fork, services[0], open_ids, observer)
            results.append(
                ForkAudit(
                    name=fork.name,
                    version=fork.version,
                    status=_status(open_ids, reasons, vulns),
                    vulnerabilities=tuple(vulns),
                    unaudited=tuple(reasons),
                    fix_version=fix,
                    path=fork.path,
                )
            )
    finally:
        if database is not None:
            database.close()
    return AuditReport(
        when=now.isoformat().replace("+00:00", "Z"),
        database=database.info if database is not None else None,
        sources=tuple(label for label, _ in services),
        forks=tuple(results),
    )


def _open_database(settings: AuditSettings) -> tuple[OsvDatabase | None, str | None]:
    """The local database, or None and why it is missing (a corrupt one is an error)."""
    try:
        return OsvDatabase(settings.database), None
    except DatabaseError as exc:
        if settings.database.exists():
            raise  # corrupt: an error, not a finding
        return None, f"{exc.message} ({exc.hint})"


def _pins(forks: Sequence[LockEntry]) -> tuple[list[tuple[str, Version]], dict[str, str]]:
    """(name, version) of the forks with a PEP 440 version; why the others cannot match."""
    pins: list[tuple[str, Version]] = []
    bad_version: dict[str, str] = {}
    for fork in forks:
        parsed = parse_version(fork.version)
        if parsed is None:
            bad_version[fork.name] = (
                f"version {fork.version!r} is not a PEP 440 version; advisories cannot match it"
            )
        else:
            pins.append((fork.name, parsed))
    return pins, bad_version


def _vulnerabilities(
    fork: LockEntry, answer: Any, settings: AuditSettings, today: dt.date
) -> list[Vulnerability]:
    """The vulnerabilities pip-audit's `answer` names for `fork`, classified, sorted by id."""
    vulns: list[Vulnerability] = []
    for r in answer.results if answer is not None else ():
        aliases = tuple(sorted(str(a) for a in r.aliases))
        ids = frozenset(i.upper() for i in (r.id, *aliases))
        state, note = _classify(fork, ids, settings.ignores, today)
        vulns.append(
            Vulnerability(
                id=str(r.id),
                aliases=aliases,
                summary=r.description.strip().split("\n")[0],
                fix_versions=tuple(str(v) for v in r.fix_versions),
                state=state,
                note=note,
            )
        )
    vulns.sort(key=lambda v: v.id)
    return vulns


def _fix_version(
    fork: LockEntry, service: tuple[str, Any], open_ids: list[str], observer: Observer
) -> str | None:
    """The lowest version clear of every open vulnerability (pip-audit's fix resolution)."""
    from . import _pipaudit

    fix, why = _pipaudit.fix_version(
        _pipaudit.GuardedService(*service), fork.name, Version(fork.version), open_ids
    )
    if why:
        observer.warning(f"{fork.name}: {why}")
    return fix


def _status(open_ids: list[str], reasons: list[str], vulns: list[Vulnerability]) -> ForkStatus:
    if open_ids:
        return ForkStatus.VULNERABLE
    if reasons:
        return ForkStatus.UNAUDITED
    if vulns:
        return ForkStatus.PATCHED
    return ForkStatus.CLEAN


def audit_project(
    project: Project,
    names: Sequence[str] = (),
    *,
    online: bool = False,
    database: Path | None = None,
    online_services: Sequence[tuple[str, Any]] | None = None,
    today: dt.date | None = None,
    record: bool = True,
    observer: Observer = _NULL_OBSERVER,
) -> AuditReport:
    """Audit the project's forks (all, or `names`) and record a summary in the lock."""
    settings = load_settings(project, database=database)
    lock = project.load_lock()
    wanted = [lock.require(name) for name in names] if names else list(lock)
    report = audit_forks(
        wanted,
        settings=settings,
        online=online,
        online_services=online_services,
        today=today,
        observer=observer,
    )
    if record and report.forks:
        # Only a changed outcome is written: re-running an audit with the same
        # answer must not churn the lock with a new timestamp.
        current = project.load_lock()
        for fork in report.forks:
            entry = current.get(fork.name)
            if entry is None:
                continue
            new = lock_section(report, fork)
            old = entry.sections.get("audit")
            if not (isinstance(old, Mapping) and _without_when(old) == _without_when(new)):
                record_section(project, fork.name, "audit", new)
    return report


def _without_when(section: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k != "when"}
