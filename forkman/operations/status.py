"""`forkman status`: one row per fork, and one per declared fork not made yet.

What a row says must be true now: a test result recorded for another
version or tree of the fork is shown as stale, an error or a timeout is
never shown as "no tests", and a request forkman refused (bad input) is not
the fork's state (the fork actors keep their state then).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.text import shorten
from ..gate.check import FindingKind, check
from ..model.lock import GitSource, IndexSource, LockEntry
from ..model.project import Project

if TYPE_CHECKING:
    from ..actors.fork_actor import ForkActorState

DECLARED = "declared, not forked"
"""The state of a fork the configuration declares and the lock does not have yet."""
DECLARED_HINT = "`forkman sync --all` forks every declared fork"
"""What to do about declared forks."""
MESSAGE_WIDTH = 48
"""Longest error text in a table cell (the whole text is in ``--format json``)."""


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
    """clean, modified, missing, the actor's state (syncing, conflict, ...) or
    ``declared, not forked``."""
    tests: str
    """The last test run, or '-'."""
    audit: str
    """The last audit, or '-'."""
    error: str | None = None
    """The whole error of a failed last operation (the state shows it shortened)."""
    hint: str | None = None
    """What to do next, when the row needs something done."""

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


def _counts(section: Mapping[str, Any]) -> str:
    keys = ("passed", "failed", "errors", "skipped")
    shown = [k for k in keys if isinstance(section.get(k), int) and section[k]]
    return ", ".join(f"{section[k]} {k}" for k in shown)


def _test_result(section: Mapping[str, Any]) -> str:
    """The outcome of a recorded run, by its status: errors and timeouts are not 'no tests'."""
    status = str(section.get("status") or "")
    counts = _counts(section)
    message = shorten(str(section.get("message") or ""), MESSAGE_WIDTH)
    if status == "passed":
        return counts or "passed"
    if status == "failed":
        return "FAILED: " + (counts or message or "tests failed")
    if status == "network-disabled":
        return "network-disabled: " + (counts or "tests needed the network")
    if status == "no-tests":
        return "no tests" + (f" ({message})" if message else "")
    if status == "timeout":
        return "timed out" + (f": {message}" if message else "")
    if status == "error":
        return "error" + (f": {message}" if message else "")
    if not status:  # a section written before statuses were recorded
        return counts or "no tests"
    return status + (f": {message}" if message else "")


def _staleness(section: Mapping[str, Any], entry: LockEntry) -> str | None:
    """Why a recorded run is not about the fork as it is now (None: it is).

    A run records the version and vendored tree it tested. Without a tree
    only the version is compared; a run that recorded neither is stale when
    it happened before the release now vendored was fetched.
    """
    version = section.get("version")
    tree = section.get("tree")
    if isinstance(version, str) and version != entry.version:
        return f"on {version}"
    if isinstance(tree, str) and tree != entry.vendored_tree:
        return "on another tree" + (f" of {version}" if isinstance(version, str) else "")
    if version is None and tree is None:
        when = section.get("when")
        if isinstance(when, str) and entry.fetched and when < entry.fetched:
            return "before the last fetch"
    return None


def summarize_test(section: Any, entry: LockEntry) -> str:
    """The `tests` cell: the last run's outcome, its isolation tier, and whether it is stale."""
    if not isinstance(section, Mapping):
        return "-"
    text = _test_result(section)
    tier = section.get("tier")
    if tier and tier != "-":
        text += f" [{tier}]"
    stale = _staleness(section, entry)
    if stale is not None:
        status = str(section.get("status") or "tested")
        return f"stale: {status} {stale}"
    return text


def _summarize_audit(section: Any) -> str:
    if not isinstance(section, dict):
        return "-"
    status = str(section.get("status", "?"))
    vulns = section.get("vulnerabilities") or []
    return f"{status} ({len(vulns)} vulns)" if vulns else status


def describe_actor(actor: ForkActorState, now: float) -> tuple[str, str | None]:
    """The actor's part of the state cell (shortened) and its whole error, if it failed."""
    from ..actors.interface import ActorState

    if actor.state is ActorState.FAILED and actor.last_result:
        result = actor.last_result.get("result")
        whole = None
        if isinstance(result, Mapping) and result.get("error_message"):
            whole = str(result["error_message"])
        whole = whole or str(actor.last_result.get("error") or "failed")
        return "failed: " + shorten(whole, MESSAGE_WIDTH), whole
    return actor.describe(now), None


def status(
    project: Project,
    actor_states: Mapping[str, ForkActorState] | None = None,
    *,
    now: float | None = None,
) -> list[StatusRow]:
    """The status rows of every fork, then of every declared fork not made yet."""
    from .declared import declared_forks

    now = time.time() if now is None else now
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
        error = None
        actor = (actor_states or {}).get(entry.name)
        if actor is not None:
            shown, error = describe_actor(actor, now)
            if shown != "idle" and shown != state:
                state = f"{state}, {shown}"
        if config.policy(entry.name).pinned:
            state += ", pinned"
        rows.append(
            StatusRow(
                name=entry.name,
                version=entry.version,
                source=describe_source(entry),
                patches=len(entry.patches),
                state=state,
                tests=summarize_test(entry.sections.get("test"), entry),
                audit=_summarize_audit(entry.sections.get("audit")),
                error=error,
            )
        )
    for declared in declared_forks(project):
        waiting = project.patches_path(declared.name)
        rows.append(
            StatusRow(
                name=declared.name,
                version="-",
                source=declared.spec,
                patches=len(list(waiting.glob("*.patch"))) if waiting.is_dir() else 0,
                state=DECLARED,
                tests="-",
                audit="-",
                hint=DECLARED_HINT,
            )
        )
    return rows
