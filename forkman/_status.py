"""`forkman status`: one row per fork."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._check import FindingKind, check
from ._lock import GitSource, IndexSource, LockEntry
from ._project import Project


@dataclass(frozen=True)
class StatusRow:
    """What `forkman status` shows for one fork."""

    name: str
    """The fork."""
    version: str
    """The upstream version."""
    source: str
    """A short description of the source."""
    patches: int
    """Number of patches in the series."""
    state: str
    """clean, modified, missing, or the actor's state (syncing, conflict, ...)."""
    tests: str
    """The last test run, or '-'."""
    audit: str
    """The last audit, or '-'."""

    def as_dict(self) -> dict[str, Any]:
        """For JSON output."""
        return dict(self.__dict__)


def describe_source(entry: LockEntry) -> str:
    """`attrs-23.1.0.tar.gz` or `github.com/org/repo@1a2b3c4d5e6f`."""
    src = entry.source
    if isinstance(src, IndexSource):
        return src.filename
    assert isinstance(src, GitSource)
    url = src.url.split("://", 1)[-1].removesuffix(".git")
    return f"{url}@{src.commit[:12]}"


def _summarize_test(section: Any) -> str:
    if not isinstance(section, dict):
        return "-"
    counts = [f"{section.get(k, 0)} {k}" for k in ("passed", "failed", "errors") if section.get(k)]
    tier = section.get("tier", "?")
    return (", ".join(counts) or "no tests") + f" [{tier}]"


def _summarize_audit(section: Any) -> str:
    if not isinstance(section, dict):
        return "-"
    status = str(section.get("status", "?"))
    vulns = section.get("vulnerabilities") or []
    return f"{status} ({len(vulns)} vulns)" if vulns else status


def status(project: Project, actor_states: dict[str, str] | None = None) -> list[StatusRow]:
    """The status rows of every fork."""
    lock = project.load_lock()
    config = project.config
    report = check(project.root, vendor_dir=config.vendor_dir, patches_dir=config.patches_dir)
    dirty: dict[str, str] = {}
    for finding in report.findings:
        if finding.fork is None:
            continue
        state = "missing" if finding.kind is FindingKind.MISSING_FORK else "modified"
        if finding.kind is FindingKind.SYNC_PAUSED:
            state = "conflict"
        dirty.setdefault(finding.fork, state)
    rows = []
    for entry in lock:
        state = dirty.get(entry.name, "clean")
        actor = (actor_states or {}).get(entry.name)
        if actor and actor != "idle" and actor != state:
            state = f"{state}, {actor}"
        if config.policy(entry.name).pinned:
            state += ", pinned"
        rows.append(
            StatusRow(
                name=entry.name,
                version=entry.version,
                source=describe_source(entry),
                patches=len(entry.patches),
                state=state,
                tests=_summarize_test(entry.sections.get("test")),
                audit=_summarize_audit(entry.sections.get("audit")),
            )
        )
    return rows
