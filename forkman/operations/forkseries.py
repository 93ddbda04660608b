"""A fork's patch series in the project: the checks before it changes, and committing
a rebuilt series with the lock.

The series lives in three places that always change together (one
:class:`~forkman.store.txn.ForkTransaction`): the patch files, the ``patched``
branch of the fork's history and the lock. Reading and staging the series is
:mod:`forkman.series.store`; this module checks the project is fit for a change
(nothing unrecorded, no sync paused) and commits a staged series.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..core.errors import BadInput
from ..core.observer import NullObserver, Observer
from ..gate.check import (
    FindingKind,
    fork_tree_findings,
    leftover_hint,
    members_of,
    save_manifest,
    scan_fork,
)
from ..layouts.wiring import refresh_archive
from ..model.lock import Layout, LockEntry
from ..model.project import Project
from ..series.patchfile import PatchHeader
from ..series.store import BuiltSeries, SeriesItem, load_headers, series_commits, stage_series
from ..store.history import ForkHistory
from ..store.treehash import file_digest, hash_manifest
from ..store.txn import ForkTransaction, fault_point, paused_state, recover
from .consumer import keep_ignored
from .forks import require_fork
from .rebuild import rebuild_history
from .worktree import place_tree, with_members


def history_of(project: Project, entry: LockEntry) -> ForkHistory:
    """The fork's history, rebuilt from the lock when `.forkman/` lost it."""
    history = ForkHistory(project.fork_git_dir(entry.name))
    if not history.exists():
        # .forkman/ is a cache (a fresh clone has none): rebuild it from the lock
        return rebuild_history(project, entry)
    return history


def require_no_pause(project: Project, name: str) -> None:
    """Refuse while a sync of `name` waits at a conflict."""
    if paused_state(project, name) is not None:
        raise BadInput(
            f"{name} has a sync waiting at a conflict",
            hint=f"resolve the conflict and run `forkman sync {name} --continue`, "
            f"or undo the sync with `forkman sync {name} --abort`",
        )


def vendored_manifest(project: Project, entry: LockEntry) -> str:
    """The tree hash of the fork's vendored tree as it is on disk."""
    manifest, _ = scan_fork(project.root, entry, None)
    return hash_manifest(manifest.values())


def require_clean(project: Project, entry: LockEntry, doing: str) -> None:
    """Refuse when the vendored tree or the patch files differ from the lock.

    Installer leftovers (``build/``, ``*.egg-info``) are not edits: the refusal
    says to remove them, never to record them.
    """
    name = entry.name
    if vendored_manifest(project, entry) != entry.vendored_tree:
        findings = fork_tree_findings(project.root, project.state_dir, entry)
        left = [f.path for f in findings if f.kind is FindingKind.LEFTOVER]
        edits = [f for f in findings if f.kind is not FindingKind.LEFTOVER]
        hint = (
            f"record them as a patch with `forkman patch {name} -m MESSAGE`, or discard "
            f"them with `forkman restore {name}` (`forkman check {name}` lists them)"
        )
        if not edits and left:
            raise BadInput(
                f"{entry.path} holds installer leftovers; refusing to {doing}",
                hint=leftover_hint(left),
            )
        raise BadInput(
            f"{entry.path} has edits that are not recorded; refusing to {doing}",
            hint=hint + ("; " + leftover_hint(left) if left else ""),
        )
    for record in entry.patches:
        path = project.root / record.file
        if not path.is_file() or file_digest(path) != record.sha256:
            raise BadInput(
                f"{record.file} differs from the lock; refusing to {doing}",
                hint="restore the patch file from git (git checkout -- PATH)",
            )


def require_no_leftovers(project: Project, entry: LockEntry, doing: str) -> None:
    """Refuse while installer leftovers lie in the fork's folder (they are never recorded)."""
    if members_of(entry) is not None:
        return
    findings = fork_tree_findings(project.root, project.state_dir, entry)
    left = [f.path for f in findings if f.kind is FindingKind.LEFTOVER]
    if left:
        raise BadInput(
            f"{entry.path} holds installer leftovers; refusing to {doing}",
            hint=leftover_hint(left),
        )


def commit_series(
    txn: ForkTransaction,
    project: Project,
    entry: LockEntry,
    built: BuiltSeries,
    more_refs: dict[str, str] | None = None,
    *,
    also_previous: Sequence[str] = (),
    consumed: Sequence[Path] = (),
) -> list[str] | None:
    """Within `txn`: put the staged tree and patch files in place and move the refs.

    Returns the fork's new members (namespace layout; None for the project
    layout). `also_previous`: members a paused sync put in place besides the
    lock's; `consumed`: files of the series folder that became patches of the
    series (imported from there), which are not kept beside it.
    """
    members = place_tree(txn, project, entry, built.vendored, also_previous=also_previous)
    fault_point("series-tree")
    series_dir = project.patches_path(entry.name)
    used = {path.resolve() for path in consumed}
    keep = [p for p in _unrelated_files(project, entry, series_dir) if p.resolve() not in used]
    for path in keep:  # notes or other files beside the series stay
        target = built.patches_dir / path.name
        if not target.exists():
            shutil.copy2(path, target)
    if built.records or keep:
        txn.replace_path(series_dir, built.patches_dir)
    elif series_dir.exists():
        txn.replace_path(series_dir, None)
    fault_point("series-patches")
    refs = {"refs/heads/patched": built.tip, **(more_refs or {})}
    txn.set_refs(project.fork_git_dir(entry.name), refs)
    fault_point("series-ref")
    return members


def _unrelated_files(project: Project, entry: LockEntry, series_dir: Path) -> list[Path]:
    """Files in the series folder that are not patches of the series."""
    if not series_dir.is_dir():
        return []
    recorded = {record.file for record in entry.patches}
    return [
        path
        for path in sorted(series_dir.iterdir())
        if path.is_file() and project.relpath(path) not in recorded
    ]


def remember_tree(project: Project, entry: LockEntry, observer: Observer = NullObserver()) -> None:
    """Cache the manifest of `entry`'s recorded tree (for `forkman check`'s per-file report)
    and stage its files the consumer's git ignores (see
    :func:`forkman.operations.consumer.keep_ignored`)."""
    manifest, _ = scan_fork(project.root, entry, None)
    save_manifest(project.state_dir, entry.name, manifest)
    keep_ignored(project, entry, manifest, observer)


def scratch_dir(project: Project, name: str, what: str) -> Path:
    """A new scratch folder under ``.forkman/tmp/`` for `what` on fork `name`."""
    project.ensure_state_dir()
    parent = project.state_dir / "tmp"
    parent.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{what}-{name}-", dir=parent))


def prepare(project: Project, name: str, doing: str) -> tuple[LockEntry, ForkHistory]:
    """Before changing the series of `name`: its entry and history (no sync may be paused)."""
    project.require_git()
    recover(project)
    entry = require_fork(project, name)
    require_no_pause(project, entry.name)
    history = history_of(project, entry)
    return entry, history


def shared(entry: LockEntry) -> bool:
    """Whether the fork's transactions take the namespace mutex (its folder is shared)."""
    return entry.layout is Layout.NAMESPACE


def write_series(
    project: Project,
    history: ForkHistory,
    entry: LockEntry,
    built_items: Sequence[tuple[PatchHeader, str]],
    tip: str,
    staging: Path,
    operation: str,
    consumed: Sequence[Path] = (),
) -> LockEntry:
    """Stage a rewritten series, commit it with the lock in one transaction; the new entry."""
    built = stage_series(project, history, entry.name, built_items, tip, staging / "out")
    new = replace(entry, patches=built.records, vendored_tree=built.vendored_tree)
    with ForkTransaction(
        project, entry.name, operation, namespace=shared(entry), archive=refresh_archive
    ) as txn:
        new = with_members(new, commit_series(txn, project, entry, built, consumed=consumed))
        txn.commit(lambda lock: lock.with_entry(new))
    remember_tree(project, new)
    return new


def items_of(
    project: Project, entry: LockEntry, history: ForkHistory
) -> tuple[str, list[SeriesItem]]:
    """The base commit and the items (header and commit) of the fork's series."""
    base, commits = series_commits(history, entry)
    headers = load_headers(project, entry)
    return base, [SeriesItem(h, c) for h, c in zip(headers, commits, strict=True)]
