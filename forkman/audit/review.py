"""Risky upstream changes: what a new release adds that a release rarely should.

:func:`review_delta` compares two upstream trees and reports what the new one
adds or changes: code that runs at install or interpreter start, execution of
decoded or downloaded data, network access and process spawning in files that
had none, reads of credentials and of the whole environment, binaries and
obfuscated blobs, and new dependencies. Python files are read with :mod:`ast`
(so comments and strings that merely mention ``exec`` do not count); other text
files and unparsable Python fall back to patterns.

A finding present in the old version of the same file (same rule, same
detail) is not reported again: the review is about the delta.
"""

from __future__ import annotations

import datetime as dt
import io
import tarfile
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from ..core import git
from ..core.errors import BadInput, ForkmanError, GitError, NotFound
from ..core.fs import remove_tree
from ..model.lock import LockEntry
from ..model.project import Project
from ..sources.dependencies import is_dependency_file
from ..store.txn import record_section
from ._review_meta import metadata_hits
from ._review_rules import RULES, Finding, Hit, Rule
from ._review_scan import hits_for, tree_files
from ._settings import Severity

__all__ = [
    "RULES",
    "FetchRelease",
    "Finding",
    "ReviewReport",
    "Rule",
    "Severity",
    "export_tree",
    "review_delta",
    "review_fork",
    "upstream_versions",
]

FetchRelease = Callable[[Project, LockEntry, str, Path], Path]
"""Fetches upstream `version` of a fork into a staging folder and returns the tree
(``forkman.operations.sync.fetch_release_tree``: the caller passes it in)."""


# -- the review -------------------------------------------------------------------------

# Rules about capabilities: a file that already had the capability is not reported
# again for another call of the same kind.
_CAPABILITY_RULES = {"network-added", "process-added", "exec-dynamic", "long-line"}


def _key(hit: Hit) -> tuple[str, str]:
    return (hit.rule, "" if hit.rule in _CAPABILITY_RULES else hit.detail)


def _counterparts(old_files: Mapping[str, Path]) -> Callable[[str], Path | None]:
    """Find a new file's old version, also across moves (``pkg/x.py`` -> ``src/pkg/x.py``)."""
    by_suffix: dict[str, list[str]] = {}
    for rel in old_files:
        parts = rel.split("/")
        for i in range(len(parts)):
            by_suffix.setdefault("/".join(parts[i:]), []).append(rel)

    def find(rel: str) -> Path | None:
        if rel in old_files:
            return old_files[rel]
        parts = rel.split("/")
        for i in range(1, len(parts)):
            candidates = by_suffix.get("/".join(parts[i:]), [])
            # a unique match on at least two path parts, or on a unique file name
            if len(candidates) == 1 and (len(parts) - i >= 2 or i == len(parts) - 1):
                return old_files[candidates[0]]
            if len(candidates) > 1:
                return None
        return None

    return find


def _install_time(rel: str) -> bool:
    return rel.rsplit("/", 1)[-1] in {"setup.py", "conftest.py"} or rel.endswith(".pth")


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


def review_delta(old: Path | None, new: Path) -> list[Finding]:
    """Risky additions and changes from tree `old` (None: nothing) to tree `new`."""
    if not new.is_dir():
        raise NotFound(f"{new} is not a directory")
    if old is not None and not old.is_dir():
        raise NotFound(f"{old} is not a directory")
    old_files = tree_files(old) if old is not None else {}
    new_files = tree_files(new)
    counterpart = _counterparts(old_files)
    findings: list[Finding] = []
    for rel in sorted(new_files):
        data = _read(new_files[rel])
        before = _read(counterpart(rel))
        if data is None or data == before:
            continue
        findings += _file_findings(rel, data, before)
    findings.sort(key=lambda f: (-f.severity, f.file, f.line, f.rule))
    return findings


def _file_findings(rel: str, data: bytes, before: bytes | None) -> list[Finding]:
    """What file `rel` adds (its old version: `before`), less what the old version had."""
    hits = hits_for(rel, data)
    seen_before = {_key(h) for h in hits_for(rel, before)}
    name = rel.rsplit("/", 1)[-1]
    if rel.count("/") <= 1 and is_dependency_file(name):
        old_text = before.decode("utf-8", "replace") if before is not None else None
        hits += metadata_hits(name, old_text, data.decode("utf-8", "replace"))
    findings: list[Finding] = []
    reported: set[tuple[str, str]] = set()
    for hit in hits:
        key = _key(hit)
        if key in seen_before or key in reported:
            continue
        reported.add(key)
        rule = RULES[hit.rule]
        severity = hit.severity or rule.severity
        if _install_time(rel) and hit.rule in {"network-added", "process-added"}:
            severity = max(severity, Severity.HIGH)
        findings.append(Finding(hit.rule, severity, rel, hit.line, hit.detail, rule.why))
    return findings


# -- forks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewReport:
    """The review of one upstream delta of a fork."""

    name: str
    """The fork."""
    old: str | None
    """The older upstream version (None: the first import)."""
    new: str
    """The newer upstream version."""
    findings: tuple[Finding, ...]
    """What was found, most severe first."""
    block_on: Severity
    """The policy threshold."""

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """Findings at or above the threshold."""
        return tuple(f for f in self.findings if f.severity >= self.block_on)

    def lock_section(self) -> dict[str, Any]:
        """The ``review`` table stored in the lock."""
        counts = Counter(f.severity.name.lower() for f in self.findings)
        return {
            "when": dt.datetime.now(dt.UTC)
            .replace(microsecond=0)
            .isoformat()
            .replace("+00:00", "Z"),
            "upstream": f"{self.old or ''}..{self.new}",
            "blocked": bool(self.blocking),
            "block-on": self.block_on.name.lower(),
            "counts": dict(sorted(counts.items())),
            "findings": [
                f"{f.severity.name.lower()} {f.rule} {f.file}:{f.line}" for f in self.findings[:50]
            ],
        }


def _git(git_dir: Path, *args: str) -> str:
    """``git ARGS`` in fork history `git_dir` (a repository forkman keeps)."""
    try:
        return git.output(f"--git-dir={git_dir}", *args, owned=True)
    except GitError as exc:
        raise BadInput(f"git {' '.join(args)} failed in {git_dir}: {exc.stderr.strip()}") from None


def upstream_versions(git_dir: Path) -> list[str]:
    """The upstream versions imported into a fork's history, oldest first."""
    tags = _git(git_dir, "tag", "--list", "upstream/*").split()
    versions = [t.removeprefix("upstream/") for t in tags]

    def key(v: str) -> tuple[int, Any]:
        try:
            return (1, Version(v))
        except InvalidVersion:
            return (0, v)

    return sorted(versions, key=key)


def export_tree(git_dir: Path, version: str, dest: Path) -> Path:
    """Extract ``upstream/<version>`` of `git_dir` into `dest` (safely)."""
    proc = git.run(
        f"--git-dir={git_dir}",
        "archive",
        "--format=tar",
        f"upstream/{version}",
        owned=True,
        check=False,
    )
    if proc.returncode != 0:
        raise NotFound(
            f"no upstream version {version} in {git_dir}: "
            f"{proc.stderr.decode('utf-8', 'replace').strip()}",
            hint="`forkman review NAME` without --upstream reviews the last two imports",
        )
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _parse_range(spec: str | None, versions: list[str]) -> tuple[str | None, str]:
    if spec is None:
        if not versions:
            raise NotFound("no upstream imports recorded for this fork")
        return (versions[-2] if len(versions) > 1 else None), versions[-1]
    if ".." not in spec:
        raise BadInput(
            f"--upstream takes A..B, not {spec!r}", hint="e.g. --upstream 23.1.0..23.2.0"
        )
    a, b = spec.split("..", 1)
    if not b:
        raise BadInput(f"--upstream {spec!r}: missing the newer version")
    return (a or None), b


def _fetched_tree(
    project: Project, entry: LockEntry, version: str, dest: Path, fetch: FetchRelease | None
) -> Path:
    """Upstream `version` of a fork, not imported in its history: fetched as sync does."""
    try:
        if fetch is None:
            raise NotFound("this caller reviews imported releases only")
        return fetch(project, entry, version, dest)
    except ForkmanError as exc:
        raise NotFound(
            f"no upstream version {version} in {entry.name}'s history, and fetching it "
            f"failed: {exc.message}",
            hint=exc.hint or "--upstream A..B takes releases of the fork's own source",
        ) from None


def review_fork(
    project: Project,
    name: str,
    *,
    upstream: str | None = None,
    record: bool = False,
    fetch: FetchRelease | None,
) -> ReviewReport:
    """Review the delta between two upstream releases of fork `name` (default: the last two).

    A release the fork's history has not imported (the one a refused sync or
    a dry run looked at) is fetched with `fetch` (``sync``'s
    ``fetch_release_tree``, passed in by the caller; None: imported releases
    only). With `record` the result is written to the fork's ``review`` table
    in the lock; by default nothing is written.
    """
    from ._settings import load_settings

    settings = load_settings(project)
    entry = project.load_lock().get(name)
    fork_name = entry.name if entry is not None else name
    git_dir = project.fork_git_dir(fork_name)
    if not git_dir.is_dir():
        raise NotFound(
            f"no history for fork {name!r} ({git_dir} is absent)",
            hint="`forkman status` lists the forks",
        )
    known = upstream_versions(git_dir)
    old_v, new_v = _parse_range(upstream, known)
    tmp = Path(tempfile.mkdtemp(prefix="forkman-review-"))
    try:

        def tree(version: str, dest: Path) -> Path:
            if version in known or entry is None:
                return export_tree(git_dir, version, dest)
            return _fetched_tree(project, entry, version, dest, fetch)

        old_dir = tree(old_v, tmp / "old") if old_v else None
        new_dir = tree(new_v, tmp / "new")
        findings = review_delta(old_dir, new_dir)
    finally:
        remove_tree(tmp)
    report = ReviewReport(fork_name, old_v, new_v, tuple(findings), settings.block_on)
    if record and entry is not None:
        record_section(project, fork_name, "review", report.lock_section())
    return report
