"""The one place that touches pip-audit's (private) library API, pip-audit 2.10.x.

pip-audit keeps its library surface private on purpose, so everything forkman
needs from it goes through this module: a :class:`VulnerabilityService` over the
local OSV database, the :class:`Auditor` that runs services over a dependency
source, :func:`resolve_fix_versions`, and the output formats. If pip-audit
changes, only this file changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from packaging.version import Version
from pip_audit._audit import Auditor
from pip_audit._dependency_source import DependencySource
from pip_audit._fix import ResolvedFixVersion, resolve_fix_versions
from pip_audit._format import ColumnsFormat, CycloneDxFormat, JsonFormat, MarkdownFormat
from pip_audit._service.interface import (
    Dependency,
    ResolvedDependency,
    ServiceError,
    SkippedDependency,
    VulnerabilityID,
    VulnerabilityResult,
    VulnerabilityService,
)

from .osvdb import Advisory, OsvDatabase, parse_version

__all__ = [
    "GuardedService",
    "LocalOsvService",
    "ServiceAnswer",
    "audit_pins",
    "fix_version",
    "online_services",
    "render_pip_audit",
]


def _published(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def to_result(advisory: Advisory) -> VulnerabilityResult:
    """An advisory in pip-audit's result shape."""
    fixes = [v for v in (parse_version(f) for f in advisory.fixed) if v is not None]
    return VulnerabilityResult(
        id=VulnerabilityID(advisory.id),
        description=advisory.summary or advisory.details,
        fix_versions=sorted(fixes),
        aliases={VulnerabilityID(a) for a in advisory.aliases if a != advisory.id},
        published=_published(advisory.published),
    )


class LocalOsvService(VulnerabilityService):  # type: ignore[misc]
    """pip-audit's vulnerability-service interface over forkman's local OSV database."""

    def __init__(self, database: OsvDatabase) -> None:
        self.database = database

    def query(self, spec: Dependency) -> tuple[Dependency, list[VulnerabilityResult]]:
        if spec.is_skipped():
            return spec, []
        resolved = cast(ResolvedDependency, spec)
        advisories = self.database.affecting(resolved.canonical_name, resolved.version)
        return spec, [to_result(a) for a in advisories]


class GuardedService(VulnerabilityService):  # type: ignore[misc]
    """Wraps a service so that a failure skips the dependency (with the reason) instead
    of ending the audit: a skipped dependency is reported as unaudited, never as clean."""

    def __init__(self, label: str, inner: VulnerabilityService) -> None:
        self.label = label
        self.inner = inner

    def query(self, spec: Dependency) -> tuple[Dependency, list[VulnerabilityResult]]:
        import requests

        try:
            answer: tuple[Dependency, list[VulnerabilityResult]] = self.inner.query(spec)
            return answer
        except (ServiceError, requests.RequestException, OSError, ValueError) as exc:
            detail = str(exc) or type(exc).__name__
            if exc.__cause__ is not None and str(exc.__cause__):
                detail += f" ({exc.__cause__})"
            reason = f"{self.label} could not be queried: {detail}"
            return SkippedDependency(name=spec.name, skip_reason=reason), []


def online_services(cache_dir: Path, timeout: int = 15) -> list[tuple[str, VulnerabilityService]]:
    """pip-audit's own online services: PyPI's JSON API and OSV's API."""
    from pip_audit._service import OsvService, PyPIService

    return [
        ("PyPI", PyPIService(cache_dir=cache_dir / "pypi", timeout=timeout)),
        ("OSV", OsvService(cache_dir=cache_dir / "osv", timeout=timeout)),
    ]


class _PinSource(DependencySource):  # type: ignore[misc]
    """A fixed list of name==version pins (the forks in the lock)."""

    def __init__(self, pins: Sequence[tuple[str, Version]]) -> None:
        self.pins = pins

    def collect(self) -> Iterator[Dependency]:
        for name, version in self.pins:
            yield ResolvedDependency(name=name, version=version)

    def fix(self, fix_version: ResolvedFixVersion) -> None:  # pragma: no cover - never called
        raise NotImplementedError("forkman never upgrades a fork from an audit")


@dataclass(frozen=True)
class ServiceAnswer:
    """What all services said about one pin."""

    results: tuple[VulnerabilityResult, ...]
    """Vulnerabilities found, merged across services by alias."""
    skipped: tuple[str, ...]
    """Why a service could not audit the pin (empty: every service answered)."""


def _merge(into: list[VulnerabilityResult], new: Sequence[VulnerabilityResult]) -> None:
    for v in new:
        for i, old in enumerate(into):
            if old.alias_of(v):
                merged = old.merge_aliases(v)
                fixes = sorted(set(old.fix_versions) | set(v.fix_versions))
                into[i] = VulnerabilityResult(
                    merged.id, merged.description, fixes, merged.aliases, merged.published
                )
                break
        else:
            into.append(v)


def audit_pins(
    pins: Sequence[tuple[str, Version]],
    services: Sequence[tuple[str, VulnerabilityService]],
) -> dict[str, ServiceAnswer]:
    """Run pip-audit's Auditor with every service over `pins`; answers by pin name."""
    found: dict[str, list[VulnerabilityResult]] = {name: [] for name, _ in pins}
    skipped: dict[str, list[str]] = {name: [] for name, _ in pins}
    for label, service in services:
        guarded = service if isinstance(service, GuardedService) else GuardedService(label, service)
        for dep, vulns in Auditor(guarded).audit(_PinSource(pins)):
            if dep.is_skipped():
                skipped[dep.name].append(cast(SkippedDependency, dep).skip_reason)
            # Within one service the Auditor already merged by alias (keeping every PYSEC
            # record); across services, a result joins the earlier one it is an alias of.
            if found[dep.name]:
                _merge(found[dep.name], vulns)
            else:
                found[dep.name].extend(vulns)
    return {name: ServiceAnswer(tuple(found[name]), tuple(skipped[name])) for name, _ in pins}


def fix_version(
    service: VulnerabilityService, name: str, version: Version, open_ids: Sequence[str]
) -> tuple[str | None, str | None]:
    """pip-audit's fix resolution for one pin: (version clearing every known
    vulnerability, None) or (None, why none could be found)."""
    if not open_ids:
        return None, None
    dep = ResolvedDependency(name=name, version=version)
    _, vulns = service.query(dep)
    vulns = [v for v in vulns if v.has_any_id(set(open_ids))]
    if not vulns:
        return None, None
    for fix in resolve_fix_versions(service, {dep: vulns}):
        if isinstance(fix, ResolvedFixVersion):
            return str(fix.version), None
        return None, str(getattr(fix, "skip_reason", "no fix version"))
    return None, None


def render_pip_audit(
    fmt: str,
    entries: Sequence[tuple[str, str, Sequence[VulnerabilityResult], str | None]],
) -> str:
    """Render (name, version, open vulnerabilities, unaudited reason) with a pip-audit format.

    Fixes are never passed to the formatters: they would print "Successfully
    upgraded" for them, and an audit upgrades nothing.
    """
    result: dict[Dependency, list[VulnerabilityResult]] = {}
    for name, version, vulns, unaudited in entries:
        parsed = parse_version(version)
        if parsed is not None and (vulns or unaudited is None):
            result[ResolvedDependency(name=name, version=parsed)] = list(vulns)
        if unaudited is not None or parsed is None:
            # Both rows when some source found vulnerabilities and another could not answer.
            reason = unaudited or f"version {version!r} is not a PEP 440 version"
            result[SkippedDependency(name=name, skip_reason=reason)] = []
    formatter: Any
    if fmt == "columns":
        formatter = ColumnsFormat(output_desc=False, output_aliases=True)
    elif fmt == "json":
        formatter = JsonFormat(output_desc=True, output_aliases=True)
    elif fmt == "markdown":
        formatter = MarkdownFormat(output_desc=False, output_aliases=True)
    elif fmt == "cyclonedx":
        formatter = CycloneDxFormat(inner_format=CycloneDxFormat.InnerFormat.Json)
    else:  # pragma: no cover - the caller checks the enum
        raise ValueError(fmt)
    return str(formatter.format(result, []))
