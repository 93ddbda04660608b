"""A fork's patch series: record, list, drop, reorder, edit; restore; diff.

(Importing patch files is :mod:`forkman.operations.patchimport`.)

The series lives in three places that always change together (one
:class:`~forkman.store.txn.ForkTransaction`): the patch files
(``patches/<fork>/0001-<slug>.patch``), the ``patched`` branch of the fork's
history (one commit per patch on top of the base commit) and the lock
(:class:`~forkman.model.lock.PatchRecord` per patch, the vendored tree hash).

Both layouts carry a series. The base commit is the vendored tree as forkman
made it: the upstream tree itself (project layout), or its transformation into
the namespace (namespace layout), whose patches are relative to the namespace
folder and touch only the fork's own members there (:mod:`forkman.operations.worktree`).

Rewriting the series (drop, move, edit, import) replays the commits with
real three-way merges (:mod:`forkman.series.rebase`) onto the base; a patch that no
longer applies after the change refuses the whole operation, nothing changed.
"""

from __future__ import annotations

import enum
import hashlib
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.errors import BadInput, ForkmanError
from ..core.observer import NullObserver, Observer
from ..gate.check import members_of, save_manifest, scan_fork
from ..layouts.wiring import refresh_archive
from ..model.lock import LockEntry, PatchRecord
from ..model.project import Project
from ..series.patchfile import PatchHeader, parse_patch, render_patch, today
from ..series.rebase import PickKind, SeriesRebase, commit_info
from ..series.store import SeriesItem, patch_path
from ..series.store import series_commits as series_commits
from ..store.history import ForkHistory, HistoryError
from ..store.treehash import file_digest, hash_manifest, scan_tree
from ..store.txn import ForkTransaction, fault_point
from .consumer import default_author, keep_ignored
from .forks import require_fork
from .forkseries import (
    history_of,
    items_of,
    prepare,
    remember_tree,
    require_clean,
    require_no_leftovers,
    scratch_dir,
    shared,
    write_series,
)
from .patchimport import import_patches as import_patches
from .release import fetch_release_tree
from .worktree import fork_root, place_tree, snapshot_worktree, tree_members, with_members


class PatchStatus(enum.Enum):
    """The state of one patch file against the lock."""

    OK = "ok"
    """The file exists and has its recorded hash."""
    EDITED = "edited"
    """The file was changed outside forkman."""
    MISSING = "missing"
    """The file is gone."""


@dataclass(frozen=True)
class PatchInfo:
    """One row of `forkman patches`."""

    number: int
    """1-based position in the series."""
    file: str
    """The patch file, relative to the project root."""
    subject: str
    """First line of its description."""
    status: PatchStatus
    """Whether the file matches the lock."""
    applied: bool
    """Whether the fork's history has it applied on the patched branch."""
    fixes: tuple[str, ...]
    """Vulnerability ids it fixes."""


# -- record ---------------------------------------------------------------------------


def record_patch(
    project: Project,
    name: str,
    message: str,
    *,
    fixes: Sequence[str] = (),
    origin: str = "",
    forwarded: str = "no",
    author: str | None = None,
    observer: Observer = NullObserver(),
) -> PatchRecord:
    """Turn the unrecorded edits of fork `name` into the next patch of its series."""
    if not message.strip():
        raise BadInput("the patch needs a description", hint="pass -m MESSAGE")
    entry, history = prepare(project, name, "record a patch")
    for record in entry.patches:
        path = project.root / record.file
        if not path.is_file() or file_digest(path) != record.sha256:
            raise BadInput(
                f"{record.file} differs from the lock",
                hint="restore the patch file from git (git checkout -- PATH) first",
            )
    require_no_leftovers(project, entry, "record a patch")
    tip = history.rev("refs/heads/patched")
    assert tip is not None
    tree = snapshot_worktree(history, project, entry)
    if tree == history.tree_of(tip):
        raise BadInput(
            f"{entry.path} has no unrecorded edits of {entry.name}",
            hint=f"edit files under {entry.path} first; `forkman patches {name}` lists the series",
        )
    who = author or default_author(project)
    header = PatchHeader(
        description=message.strip(),
        author=who,
        origin=origin,
        forwarded=forwarded or "no",
        last_update=today(),
        fixes=tuple(fixes),
    )
    commit = history.commit(tree, [tip], header.commit_message(), author=who)
    number = len(entry.patches) + 1
    target = patch_path(project, entry.name, number, header.subject)
    data = render_patch(header, history.diff(tip, commit)).encode()
    record = PatchRecord(project.relpath(target), hashlib.sha256(data).hexdigest(), header.fixes)
    # a namespace fork's patch may delete members; it cannot add top-level names
    members = tree_members(history, commit) if members_of(entry) is not None else None
    new = with_members(replace(entry, patches=(*entry.patches, record)), members)
    manifest, _ = scan_fork(project.root, new, None)
    new = replace(new, vendored_tree=hash_manifest(manifest.values()))
    with ForkTransaction(
        project, entry.name, "patch", namespace=shared(entry), archive=refresh_archive
    ) as txn:
        txn.write_file(target, data)
        fault_point("patch-file")
        txn.set_ref(project.fork_git_dir(entry.name), "refs/heads/patched", commit)
        fault_point("patch-ref")
        txn.commit(lambda lock: lock.with_entry(new))
    save_manifest(project.state_dir, entry.name, manifest)
    keep_ignored(project, new, manifest, observer)
    observer.step(entry.name, f"recorded {record.file}")
    return record


# -- list -----------------------------------------------------------------------------


def list_patches(project: Project, name: str) -> list[PatchInfo]:
    """The series of fork `name` with each patch's status."""
    entry = require_fork(project, name)
    applied = 0
    history = ForkHistory(project.fork_git_dir(entry.name))
    if history.exists():
        try:
            applied = len(series_commits(history, entry)[1])
        except ForkmanError:
            applied = 0
    rows = []
    for number, record in enumerate(entry.patches, start=1):
        path = project.root / record.file
        subject = ""
        if not path.is_file():
            status = PatchStatus.MISSING
        else:
            status = PatchStatus.OK if file_digest(path) == record.sha256 else PatchStatus.EDITED
            subject = parse_patch(path.read_text(encoding="utf-8", errors="replace"))[0].subject
        rows.append(
            PatchInfo(number, record.file, subject, status, number <= applied, record.fixes)
        )
    return rows


# -- rewrite the series ---------------------------------------------------------------


def _check_number(entry: LockEntry, number: int, what: str = "patch") -> None:
    count = len(entry.patches)
    if not 1 <= number <= count:
        raise BadInput(
            f"{entry.name} has no {what} {number} (its series has {count} "
            f"patch{'es' if count != 1 else ''})",
            hint=f"`forkman patches {entry.name}` lists them",
        )


def rewrite_series(
    project: Project,
    entry: LockEntry,
    history: ForkHistory,
    base: str,
    items: Sequence[SeriesItem],
    operation: str,
    observer: Observer = NullObserver(),
) -> LockEntry:
    """Replay `items` onto `base` and commit the new series (all or nothing)."""
    staging = scratch_dir(project, entry.name, operation)
    try:
        built_items: list[tuple[PatchHeader, str]] = []
        with SeriesRebase(history, staging, base) as rebase:
            for number, item in enumerate(items, start=1):
                outcome = rebase.pick(item.commit, message=item.header.commit_message())
                if outcome.kind is PickKind.CONFLICT:
                    raise BadInput(
                        f"patch {number} ({item.header.subject}) no longer applies after this "
                        f"change (conflicts in {', '.join(outcome.conflicts)}); nothing changed",
                        hint="patches that depend on each other must keep their order",
                    )
                if outcome.kind is PickKind.EMPTY:
                    raise BadInput(
                        f"patch {number} ({item.header.subject}) would become empty after this "
                        "change; nothing changed",
                        hint=f"drop it first with `forkman patch {entry.name} --drop N`",
                    )
                assert outcome.commit is not None
                built_items.append((item.header, outcome.commit))
            tip = rebase.head
        new = write_series(project, history, entry, built_items, tip, staging, operation)
        observer.step(entry.name, f"series rewritten ({len(new.patches)} patches)")
        return new
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def drop_patch(
    project: Project, name: str, number: int, observer: Observer = NullObserver()
) -> LockEntry:
    """Remove patch `number` from the series (the later ones are renumbered)."""
    entry, history = prepare(project, name, "drop a patch")
    _check_number(entry, number)
    require_clean(project, entry, "drop a patch")
    base, items = items_of(project, entry, history)
    del items[number - 1]
    return rewrite_series(project, entry, history, base, items, "patch-drop", observer)


def move_patch(
    project: Project, name: str, number: int, to: int, observer: Observer = NullObserver()
) -> LockEntry:
    """Move patch `number` to position `to`."""
    entry, history = prepare(project, name, "reorder the series")
    _check_number(entry, number)
    _check_number(entry, to, "position")
    require_clean(project, entry, "reorder the series")
    base, items = items_of(project, entry, history)
    items.insert(to - 1, items.pop(number - 1))
    return rewrite_series(project, entry, history, base, items, "patch-move", observer)


def edit_patch(
    project: Project,
    name: str,
    number: int,
    *,
    message: str | None = None,
    fixes: Sequence[str] | None = None,
    origin: str | None = None,
    forwarded: str | None = None,
    author: str | None = None,
    observer: Observer = NullObserver(),
) -> LockEntry:
    """Change the header of patch `number` (its change stays as it is)."""
    entry, history = prepare(project, name, "edit a patch")
    _check_number(entry, number)
    require_clean(project, entry, "edit a patch")
    base, items = items_of(project, entry, history)
    old = items[number - 1].header
    header = replace(
        old,
        description=message.strip() if message else old.description,
        fixes=tuple(fixes) if fixes else old.fixes,
        origin=old.origin if origin is None else origin,
        forwarded=old.forwarded if forwarded is None else forwarded,
        author=old.author if author is None else author,
        last_update=today(),
    )
    if header == old.with_update(today()) and message is None:
        raise BadInput(
            "nothing to change", hint="pass -m MESSAGE, --fixes, --origin or --forwarded"
        )
    items[number - 1] = SeriesItem(header, items[number - 1].commit)
    return rewrite_series(project, entry, history, base, items, "patch-edit", observer)


# -- restore and diff -----------------------------------------------------------------


def restore(project: Project, name: str, observer: Observer = NullObserver()) -> list[str]:
    """Discard unrecorded edits of fork `name`; the paths that were restored."""
    entry, history = prepare(project, name, "restore")
    tip = history.rev("refs/heads/patched")
    assert tip is not None
    changed: list[str] = []
    if fork_root(project, entry).is_dir():
        tree = snapshot_worktree(history, project, entry)
        out = history.git("diff", "--name-only", "-z", "--no-renames", tip, tree)
        changed = [p for p in out.split("\0") if p]
        if not changed:
            return []
    staging = scratch_dir(project, entry.name, "restore")
    try:
        fresh = staging / "tree"
        history.checkout(tip, fresh)
        manifest, _ = scan_tree(fresh)
        if hash_manifest(manifest.values()) != entry.vendored_tree:
            raise HistoryError(
                f"the history of {name} does not match the lock",
                hint=f"`forkman verify {name}` shows what differs",
            )
        with ForkTransaction(
            project, entry.name, "restore", namespace=shared(entry), archive=refresh_archive
        ) as txn:
            place_tree(txn, project, entry, fresh)
            fault_point("restore-tree")
            txn.commit(lambda lock: lock)
        remember_tree(project, entry, observer)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    observer.step(entry.name, f"restored {len(changed) or 'all'} file(s)")
    return changed


def fork_diff(project: Project, name: str) -> str:
    """The whole series as one diff against the tree forkman vendored.

    That is the pristine upstream tree for the project layout, and its
    transformation into the namespace for the namespace layout.
    """
    entry = require_fork(project, name)
    history = history_of(project, entry)
    base, commits = series_commits(history, entry)
    return history.diff(base, commits[-1]) if commits else ""


def upstream_diff(project: Project, name: str, span: str) -> str:
    """What upstream changed between two releases known to the fork (``A..B``)."""
    entry = require_fork(project, name)
    old, sep, new = span.partition("..")
    if not sep or not old or not new:
        raise BadInput(f"{span!r} is not a range", hint="give two versions: --upstream 1.0..1.1")
    history = history_of(project, entry)
    known = history.upstream_versions()
    revs = []
    with tempfile.TemporaryDirectory(prefix="forkman-diff-") as tmp:
        for version in (old, new):
            rev = history.rev(f"refs/tags/upstream/{version}")
            if rev is None:
                # not imported (a refused sync or a dry run only looked at it): fetch it as
                # sync does; its tree is written as loose objects only, no ref records it
                try:
                    tree = fetch_release_tree(project, entry, version, Path(tmp) / version)
                except ForkmanError as exc:
                    raise BadInput(
                        f"{name} has no upstream release {version}: {exc.message}",
                        hint=f"known releases: {', '.join(known) or 'none'}",
                    ) from None
                rev = history.snapshot(tree)
            revs.append(rev)
        return history.diff(revs[0], revs[1])


def patch_commit_info(history: ForkHistory, commit: str) -> str:
    """The author of a patch commit (for messages)."""
    return commit_info(history, commit).author
