"""A fork's patch series as it is stored: patch files in the project and one commit
per patch on the ``patched`` branch of the fork's history.

Reading the series (its headers, its commits) and staging a rebuilt one (patch
files and the vendored tree of its tip) touch nothing but the series itself;
committing a staged series with the lock is :mod:`forkman.operations.forkseries`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import IntegrityError
from ..model.lock import LockEntry, PatchRecord
from ..model.project import Project
from ..store.history import ForkHistory, HistoryError
from ..store.treehash import file_digest, hash_manifest, scan_tree
from .patchfile import PatchHeader, parse_patch, render_patch, slugify


@dataclass(frozen=True)
class SeriesItem:
    """A patch to (re)build: its header and the commit that holds its change."""

    header: PatchHeader
    """The patch file's header."""
    commit: str
    """A commit whose diff against its parent is the patch."""


def series_commits(history: ForkHistory, entry: LockEntry) -> tuple[str, list[str]]:
    """(base commit, patch commits oldest first) of the fork's patched branch."""
    count = len(entry.patches)
    out = history.git(
        "rev-list", "--first-parent", f"--max-count={count + 1}", "refs/heads/patched", check=False
    )
    commits = out.split()[::-1]
    if not commits:
        raise HistoryError(f"the history of {entry.name} has no patched branch")
    if len(commits) != count + 1:
        raise HistoryError(
            f"the history of {entry.name} has fewer commits than the lock's {count} patches"
        )
    return commits[0], commits[1:]


def patch_path(project: Project, name: str, number: int, subject: str) -> Path:
    """Where patch `number` of fork `name` lives."""
    return project.patches_path(name) / f"{number:04d}-{slugify(subject)}.patch"


def load_headers(project: Project, entry: LockEntry) -> list[PatchHeader]:
    """The headers of the fork's patch files, in series order."""
    headers = []
    for record in entry.patches:
        try:
            text = (project.root / record.file).read_text(encoding="utf-8")
        except OSError as exc:
            raise IntegrityError(f"cannot read {record.file}: {exc.strerror}") from None
        headers.append(parse_patch(text)[0])
    return headers


@dataclass(frozen=True)
class BuiltSeries:
    """A rebuilt series staged on disk, ready to be committed in a transaction."""

    tip: str
    """The new tip of the patched branch."""
    patches_dir: Path
    """The staged patches folder (every patch file of the series)."""
    records: tuple[PatchRecord, ...]
    """The lock's patch records, in order."""
    vendored: Path
    """The staged vendored tree."""
    vendored_tree: str
    """Its tree hash."""


def stage_series(
    project: Project,
    history: ForkHistory,
    name: str,
    items: Sequence[tuple[PatchHeader, str]],
    tip: str,
    staging: Path,
    *,
    vendored: Path | None = None,
) -> BuiltSeries:
    """Stage patch files (header + diff of each commit) and the vendored tree of `tip`.

    `vendored`: a folder that already holds the tree of `tip` (else it is checked out).
    """
    patches_dir = staging / "patches"
    patches_dir.mkdir(parents=True)
    records = []
    for number, (header, commit) in enumerate(items, start=1):
        body = history.diff(f"{commit}~1", commit)
        target = patch_path(project, name, number, header.subject)
        data = render_patch(header, body).encode()
        (patches_dir / target.name).write_bytes(data)
        records.append(
            PatchRecord(
                file=project.relpath(target),
                sha256=file_digest(patches_dir / target.name),
                fixes=header.fixes,
            )
        )
    if vendored is None or not vendored.is_dir():
        vendored = staging / "vendored"
        history.checkout(tip, vendored)
    manifest, _ = scan_tree(vendored)
    return BuiltSeries(tip, patches_dir, tuple(records), vendored, hash_manifest(manifest.values()))
