"""`forkman audit`: known vulnerabilities of every fork, never a false clean.

The forks in the lock are audited through pip-audit (see :mod:`._pipaudit`)
against the local OSV database and, on request, pip-audit's online services.
A fork that some requested source could not audit is UNAUDITED, which fails
the audit unless the user allows it. Local patches that declare the advisory
they fix, and ignores with a reason and an expiry, change the answer.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, assert_never

from packaging.utils import canonicalize_name
from packaging.version import Version

from ..core.errors import NotFound
from ..core.observer import NullObserver, Observer
from ..model.lock import Lock, LockEntry
from ..model.project import Project, cache_root
from ._settings import AuditSettings, Ignore, load_settings
from .osvdb import DatabaseError, DatabaseInfo, OsvDatabase, parse_version

_NULL_OBSERVER = NullObserver()


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
    database: OsvDatabase | None = None
    missing_db: str | None = None
    try:
        database = OsvDatabase(settings.database)
    except DatabaseError as exc:
        if settings.database.exists():
            raise  # corrupt: an error, not a finding
        missing_db = f"{exc.message} ({exc.hint})"
    try:
        if database is not None:
            services.append(("local OSV database", _pipaudit.LocalOsvService(database)))
        if online_services is not None:
            services.extend(online_services)
        elif online:
            services.extend(_pipaudit.online_services(cache_root() / "pip-audit"))
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
        observer.step("audit", f"auditing {len(pins)} forks with {len(services)} sources")
        answers = _pipaudit.audit_pins(pins, services) if services else {}
        results = []
        for fork in forks:
            reasons: list[str] = []
            if missing_db is not None:
                reasons.append(missing_db)
            if fork.name in bad_version:
                reasons.append(bad_version[fork.name])
            vulns: list[Vulnerability] = []
            answer = answers.get(fork.name)
            if answer is not None:
                reasons.extend(answer.skipped)
                for r in answer.results:
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
            open_ids = [v.id for v in vulns if v.state.fails]
            fix = None
            if open_ids and services and fork.name not in bad_version:
                fix, why = _pipaudit.fix_version(
                    _pipaudit.GuardedService(*services[0]),
                    fork.name,
                    Version(fork.version),
                    open_ids,
                )
                if why:
                    observer.warning(f"{fork.name}: {why}")
            if open_ids:
                status = ForkStatus.VULNERABLE
            elif reasons:
                status = ForkStatus.UNAUDITED
            elif vulns:
                status = ForkStatus.PATCHED
            else:
                status = ForkStatus.CLEAN
            results.append(
                ForkAudit(
                    name=fork.name,
                    version=fork.version,
                    status=status,
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
    if names:
        wanted = []
        for name in names:
            entry = lock.get(name) or lock.get(canonicalize_name(name))
            if entry is None:
                raise NotFound(
                    f"no fork named {name!r} in {project.lock_path.name}",
                    hint="`forkman status` lists the forks",
                )
            wanted.append(entry)
    else:
        wanted = list(lock)
    report = audit_forks(
        wanted,
        settings=settings,
        online=online,
        online_services=online_services,
        today=today,
        observer=observer,
    )
    if record and report.forks:
        from ..store.txn import update_lock

        def record_results(lock: Lock) -> Lock:
            # Only a changed outcome is written: re-running an audit with the same
            # answer must not churn the lock with a new timestamp.
            for fork in report.forks:
                entry = lock.get(fork.name)
                if entry is None:
                    continue
                new = lock_section(report, fork)
                old = entry.sections.get("audit")
                if isinstance(old, Mapping) and _without_when(old) == _without_when(new):
                    continue
                lock = lock.with_entry(entry.with_section("audit", new))
            return lock

        update_lock(project, record_results)
    return report


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


def _without_when(section: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k != "when"}


# -- rendering --------------------------------------------------------------------------


def _summary_lines(report: AuditReport) -> list[str]:
    lines = []
    for fork in report.forks:
        head = f"{fork.name} {fork.version}: {fork.status.value}"
        if fork.fix_version:
            head += f" (upgrade to {fork.fix_version} clears every open one)"
        lines.append(head)
        for v in fork.vulnerabilities:
            text = f"  {v.id} {v.state.value}"
            if v.note:
                text += f": {v.note}"
            lines.append(text)
        for reason in fork.unaudited:
            lines.append(f"  NOT AUDITED: {reason}")
    return lines


def render(report: AuditReport, fmt: AuditFormat) -> str:
    """The report as text in `fmt` (pip-audit's formats, plus SARIF)."""
    from pip_audit._service.interface import VulnerabilityID, VulnerabilityResult

    from . import _pipaudit

    if fmt is AuditFormat.SARIF:
        return render_sarif(report)
    entries = []
    for fork in report.forks:
        open_results = [
            VulnerabilityResult(
                id=VulnerabilityID(v.id),
                description=v.summary,
                fix_versions=[Version(f) for f in v.fix_versions],
                aliases={VulnerabilityID(a) for a in v.aliases},
            )
            for v in fork.vulnerabilities
            if v.state.fails
        ]
        unaudited = "; ".join(fork.unaudited) if fork.unaudited else None
        entries.append((fork.name, fork.version, open_results, unaudited))
    text = _pipaudit.render_pip_audit(fmt.value, entries)
    match fmt:
        case AuditFormat.JSON:
            data = json.loads(text)
            data["forkman"] = report_dict(report)
            return json.dumps(data, indent=2)
        case AuditFormat.COLUMNS:
            parts = [text.rstrip()] if text.strip() else []
            parts.append("\n".join(_summary_lines(report)))
            return "\n\n".join(parts)
        case AuditFormat.MARKDOWN:
            parts = [text.rstrip()] if text.strip() else []
            items = [
                f"  - {line.strip()}" if line.startswith("  ") else f"- {line}"
                for line in _summary_lines(report)
            ]
            parts.append("## forkman\n\n" + "\n".join(items))
            return "\n\n".join(parts)
        case AuditFormat.CYCLONEDX:
            return text
        case AuditFormat.SARIF:  # pragma: no cover - handled above
            raise AssertionError
        case _:
            assert_never(fmt)


def report_dict(report: AuditReport) -> dict[str, Any]:
    """The report as plain data (forkman's part of the JSON output)."""
    return {
        "when": report.when,
        "database": (
            {
                "path": str(report.database.path),
                "source": report.database.source,
                "imported_at": report.database.imported_at,
                "advisories": report.database.advisories,
            }
            if report.database
            else None
        ),
        "sources": list(report.sources),
        "forks": [
            {
                "name": f.name,
                "version": f.version,
                "status": f.status.value,
                "fix_version": f.fix_version,
                "unaudited": list(f.unaudited),
                "vulnerabilities": [
                    {
                        "id": v.id,
                        "aliases": list(v.aliases),
                        "state": v.state.value,
                        "note": v.note,
                        "fix_versions": list(v.fix_versions),
                        "summary": v.summary,
                    }
                    for v in f.vulnerabilities
                ],
            }
            for f in report.forks
        ],
    }


def render_sarif(report: AuditReport) -> str:
    """SARIF 2.1.0: one rule per advisory, one result per (fork, advisory)."""
    from ..core.version import __version__
    from ..model.lock import LOCK_NAME

    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for fork in report.forks:
        location = {
            "physicalLocation": {"artifactLocation": {"uri": LOCK_NAME}},
            "logicalLocations": [{"name": fork.name, "kind": "package"}],
        }
        for v in fork.vulnerabilities:
            rules.setdefault(
                v.id,
                {
                    "id": v.id,
                    "name": v.id,
                    "shortDescription": {"text": v.summary or v.id},
                    "helpUri": f"https://osv.dev/vulnerability/{v.id}",
                    "properties": {"aliases": list(v.aliases), "tags": ["security"]},
                },
            )
            fixed = ", ".join(v.fix_versions) or "no fixed version known"
            result: dict[str, Any] = {
                "ruleId": v.id,
                "level": "error" if v.state.fails else "note",
                "message": {
                    "text": f"{fork.name} {fork.version} is affected by {v.id} "
                    f"(fixed in: {fixed}). {v.note}".strip()
                },
                "locations": [location],
                "properties": {"state": v.state.value},
            }
            if not v.state.fails:
                result["suppressions"] = [
                    {
                        "kind": "external" if v.state is VulnState.IGNORED else "inSource",
                        "justification": v.note,
                    }
                ]
            results.append(result)
        for reason in fork.unaudited:
            rules.setdefault(
                "forkman/unaudited",
                {
                    "id": "forkman/unaudited",
                    "name": "unaudited",
                    "shortDescription": {"text": "The fork could not be audited"},
                },
            )
            results.append(
                {
                    "ruleId": "forkman/unaudited",
                    "level": "error",
                    "message": {"text": f"{fork.name} {fork.version} was not audited: {reason}"},
                    "locations": [location],
                }
            )
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "forkman-audit",
                        "version": __version__,
                        "rules": [rules[k] for k in sorted(rules)],
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2)
