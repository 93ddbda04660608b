"""Carrying a fork's series onto a new base, for sync and for vendoring again: commit it
in one transaction, or pause at the first conflict until continue or abort.

commit   vendored tree, refreshed patch files, history refs and lock, in one
         transaction -- or, on a conflict, a pause: the conflicted tree in place
         and the transaction *paused* (see :mod:`forkman.store.txn`) with a
         :class:`PausedSync` in its journal, until :func:`continue_sync` or
         :func:`abort_sync`.
"""

from __future__ import annotations

import enum
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core.errors import BadInput
from ..core.observer import NullObserver, Observer
from ..layouts.wiring import refresh_archive
from ..model.lock import Layout, LockEntry, PatchRecord, Source, _parse_source, _source_table
from ..model.project import Project
from ..series.conflicts import has_markers, label_markers
from ..series.patchfile import PatchHeader, today
from ..series.rebase import RebaseProgress, commit_info, rebase_series
from ..series.store import load_headers, stage_series
from ..store.history import ForkHistory
from ..store.txn import ForkTransaction, abort_paused, fault_point, paused_state, recover, resume
from .forks import require_fork
from .forkseries import commit_series, history_of, remember_tree, scratch_dir
from .syncresult import ConflictInfo, SyncOutcome, SyncResult
from .worktree import place_tree, snapshot_worktree, with_members


class PauseKind(enum.Enum):
    """Which operation carries the series."""

    SYNC = "sync"
    """A sync to a new upstream release."""
    REVENDOR = "revendor"
    """The same release vendored again (:func:`forkman.operations.revendor.revendor_fork`)."""


@dataclass(frozen=True)
class PausedSync:
    """What a sync (or a vendoring again) carries until it commits, through a pause too.

    Kept in the paused transaction's journal as JSON (:meth:`to_json`); a
    sync's journal has no ``kind`` key, vendoring again's says ``"revendor"``.
    """

    kind: PauseKind
    """Sync or vendoring again."""
    old_version: str
    """The fork's version before."""
    version: str
    """The version it moves to (vendoring again: the same)."""
    source: Source
    """Where that release comes from."""
    upstream_commit: str
    """Its commit on the history's upstream line."""
    upstream_tree: str
    """Its pristine tree hash."""
    sections: Mapping[str, Any]
    """Lock sections the new release brings (provenance, namespace, review)."""
    delta: Mapping[str, Any]
    """What upstream changed, as the lock's ``sync`` section records it."""
    date: str
    """When the release was fetched (RFC 3339)."""
    why: str = ""
    """Vendoring again: what changed in the namespace."""
    members: tuple[str, ...] | None = None
    """Namespace layout, once paused: the members the paused tree put in place."""

    @property
    def revendor(self) -> bool:
        """Whether this is vendoring the same release again."""
        return self.kind is PauseKind.REVENDOR

    def to_json(self, progress: RebaseProgress | None = None) -> dict[str, Any]:
        """The journal's data (with `progress`, where the carrying stands)."""
        data: dict[str, Any] = {
            "old_version": self.old_version,
            "version": self.version,
            "source": _source_table(self.source),
            "upstream_commit": self.upstream_commit,
            "upstream_tree": self.upstream_tree,
            "sections": dict(self.sections),
            "delta": dict(self.delta),
            "date": self.date,
        }
        if self.revendor:
            data["kind"] = PauseKind.REVENDOR.value
            data["why"] = self.why
        if self.members is not None:
            data["members"] = list(self.members)
        if progress is not None:
            data["progress"] = progress.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PausedSync:
        """Read what :meth:`to_json` wrote."""
        members = data.get("members")
        return cls(
            kind=PauseKind.REVENDOR
            if data.get("kind") == PauseKind.REVENDOR.value
            else PauseKind.SYNC,
            old_version=str(data["old_version"]),
            version=str(data["version"]),
            source=_parse_source(data["source"], "sync"),
            upstream_commit=str(data["upstream_commit"]),
            upstream_tree=str(data["upstream_tree"]),
            sections=dict(data.get("sections", {})),
            delta=dict(data.get("delta", {})),
            date=str(data["date"]),
            why=str(data.get("why", "")),
            members=None if members is None else tuple(str(m) for m in members),
        )


def paused_sync(project: Project, name: str) -> tuple[PausedSync, RebaseProgress] | None:
    """The paused sync of `name` and where its carrying stopped, or None."""
    data = paused_state(project, name)
    if data is None:
        return None
    return PausedSync.from_json(data), RebaseProgress.from_json(data["progress"])


def sync_state(project: Project, name: str) -> str | None:
    """``"conflict"`` while a sync of `name` waits at a conflict, else None."""
    return "conflict" if paused_state(project, name) is not None else None


def new_entry(
    entry: LockEntry,
    state: PausedSync,
    records: Sequence[PatchRecord],
    vendored_tree: str,
    dropped: list[str],
) -> LockEntry:
    """The fork's lock entry once the series is carried onto the release of `state`."""
    sections = dict(entry.sections)
    if state.revendor:
        # the same release, transformed again: only the namespace section changes
        sections.update(state.sections)
        return replace(
            entry, vendored_tree=vendored_tree, patches=tuple(records), sections=sections
        )
    # provenance belongs to a release file: the new release's (verified) or none at all
    sections.pop("provenance", None)
    sections.update(state.sections)
    sections["sync"] = {
        "from": state.old_version,
        "to": state.version,
        "date": state.date,
        **state.delta,
        "carried-patches": len(records),
        "dropped-patches": dropped,
    }
    return replace(
        entry,
        version=state.version,
        source=state.source,
        upstream_tree=state.upstream_tree,
        vendored_tree=vendored_tree,
        fetched=state.date,
        patches=tuple(records),
        sections=sections,
    )


def _pause(
    project: Project,
    entry: LockEntry,
    txn: ForkTransaction,
    state: PausedSync,
    progress: RebaseProgress,
    headers: Sequence[PatchHeader],
    staging: Path,
    observer: Observer,
) -> SyncResult:
    """Within `txn`: put the conflicted tree in place and pause at patch ``progress.next``."""
    name = entry.name
    conflicted = staging / "conflicted"
    unmarked = tuple(
        f"{entry.path}/{p}" for p in progress.conflicts if not has_markers(conflicted / p)
    )
    index = progress.next
    ours = (
        f"{state.version} vendored again" if state.revendor else f"upstream {state.version}"
    ) + (" + earlier patches" if progress.done else "")
    theirs = f"patch {index + 1}: {headers[index].subject}"
    for rel in progress.conflicts:
        label_markers(conflicted / rel, ours, theirs)
    members = place_tree(txn, project, entry, conflicted, also_previous=state.members or ())
    fault_point("sync-pause-tree")
    if members is not None:
        state = replace(state, members=tuple(members))
    txn.pause(state.to_json(progress))
    info = ConflictInfo(
        number=index + 1,
        file=entry.patches[index].file,
        subject=headers[index].subject,
        files=tuple(f"{entry.path}/{p}" for p in progress.conflicts),
        unmarked=unmarked,
    )
    observer.step(name, f"conflict in patch {index + 1} ({headers[index].subject})")
    into = f"{state.version} vendored again" if state.revendor else state.version
    return SyncResult(
        name,
        SyncOutcome.CONFLICT,
        state.old_version,
        state.version,
        f"patch {index + 1} ({entry.patches[index].file}) does not merge into {into}",
        dropped=tuple(headers[i].subject for i in progress.dropped),
        conflict=info,
    )


def finish_or_pause(
    project: Project,
    entry: LockEntry,
    history: ForkHistory,
    txn: ForkTransaction,
    state: PausedSync,
    progress: RebaseProgress,
    headers: Sequence[PatchHeader],
    staging: Path,
    observer: Observer,
) -> SyncResult:
    """Within `txn`: commit the sync, or pause it at the conflict in `progress`."""
    if progress.conflicts:
        return _pause(project, entry, txn, state, progress, headers, staging, observer)
    name = entry.name
    dropped = [headers[i].subject for i in progress.dropped]
    day = today()
    items = [(headers[i].with_update(day), commit) for i, commit in progress.done]
    built = stage_series(
        project, history, name, items, progress.onto, staging / "out", vendored=staging / "final"
    )
    new = new_entry(entry, state, built.records, built.vendored_tree, dropped)
    fault_point("sync-staged")
    refs = {}
    if not state.revendor:
        refs = {
            "refs/heads/upstream": state.upstream_commit,
            f"refs/tags/upstream/{state.version}": state.upstream_commit,
        }
    members = commit_series(txn, project, entry, built, refs, also_previous=state.members or ())
    new = with_members(new, members)
    fault_point("sync-refs")
    txn.commit(lambda lock: lock.with_entry(new))
    remember_tree(project, new, observer)
    carried = f"{len(items)} patch(es) carried" + (
        f", {len(dropped)} dropped (already upstream)" if dropped else ""
    )
    if state.revendor:
        observer.step(name, f"vendored {state.version} again")
        message = f"{name} {state.version}: vendored again ({state.why}), {carried}"
    else:
        observer.step(name, f"synced {state.old_version} -> {state.version}")
        message = f"{name}: {state.old_version} -> {state.version}, {carried}"
    return SyncResult(
        name,
        SyncOutcome.SYNCED,
        state.old_version,
        state.version,
        message,
        carried=tuple(h.subject for h, _ in items),
        dropped=tuple(dropped),
    )


def carry(
    project: Project,
    entry: LockEntry,
    history: ForkHistory,
    state: PausedSync,
    onto: str,
    originals: list[str],
    headers: Sequence[PatchHeader],
    staging: Path,
    observer: Observer,
    operation: str,
) -> SyncResult:
    """Carry the series onto `onto`, then commit it, or pause at a conflict: one transaction."""
    progress = rebase_series(
        history,
        RebaseProgress(onto, originals),
        headers,
        staging,
        export_to=staging / "conflicted",
        final_to=staging / "final",
        observer=observer,
        name=entry.name,
    )
    fault_point(f"{operation}-rebased")
    namespace = entry.layout is Layout.NAMESPACE
    with ForkTransaction(
        project, entry.name, operation, namespace=namespace, archive=refresh_archive
    ) as txn:
        return finish_or_pause(
            project, entry, history, txn, state, progress, headers, staging, observer
        )


def _unresolved(project: Project, entry: LockEntry, paths: Sequence[str]) -> list[str]:
    return [f"{entry.path}/{rel}" for rel in paths if has_markers(project.root / entry.path / rel)]


def _record_resolution(
    project: Project,
    entry: LockEntry,
    history: ForkHistory,
    state: PausedSync,
    progress: RebaseProgress,
    headers: Sequence[PatchHeader],
    observer: Observer,
) -> None:
    """Commit the resolved tree of the paused patch (or drop it when it resolved to nothing)."""
    name = entry.name
    index = progress.next
    tree = snapshot_worktree(history, project, entry, state.members)
    if tree == history.tree_of(progress.onto):
        observer.step(
            name, f"patch {index + 1} ({headers[index].subject}) resolved to nothing: dropped"
        )
        progress.dropped.append(index)
    else:
        info = commit_info(history, progress.originals[index])
        commit = history.commit(
            tree, [progress.onto], info.message, author=info.author, date=info.date
        )
        progress.done.append((index, commit))
        progress.onto = commit
        observer.step(name, f"patch {index + 1} ({headers[index].subject}) resolved")
    progress.next += 1
    progress.conflicts = []


def continue_sync(
    project: Project, name: str, *, observer: Observer = NullObserver()
) -> SyncResult:
    """Record the resolution of the paused patch and carry the rest of the series."""
    project.require_git()
    for line in recover(project):
        observer.warning(line)
    entry = require_fork(project, name)
    name = entry.name
    paused = paused_sync(project, name)
    if paused is None:
        raise BadInput(f"no sync of {name} is waiting at a conflict")
    state, progress = paused
    left = _unresolved(project, entry, progress.conflicts)
    if left:
        raise BadInput(
            f"conflict markers remain in {', '.join(left)}",
            hint="edit the files to resolve every <<<<<<< ... >>>>>>> block, then run "
            f"`forkman sync {name} --continue` again (or `--abort`)",
        )
    history = history_of(project, entry)
    headers = load_headers(project, entry)
    _record_resolution(project, entry, history, state, progress, headers, observer)
    fault_point("continue-recorded")
    staging = scratch_dir(project, name, "sync")
    try:
        progress = rebase_series(
            history,
            progress,
            headers,
            staging,
            export_to=staging / "conflicted",
            final_to=staging / "final",
            observer=observer,
            name=name,
        )
        with resume(project, name, archive=refresh_archive) as txn:
            fault_point("continue-resumed")
            result = finish_or_pause(
                project, entry, history, txn, state, progress, headers, staging, observer
            )
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def abort_sync(project: Project, name: str, *, observer: Observer = NullObserver()) -> SyncResult:
    """Undo a paused sync of `name`: every file, ref and the lock as before it."""
    project.require_git()
    entry = require_fork(project, name)
    data = paused_state(project, entry.name)
    if data is None:
        raise BadInput(f"no sync of {entry.name} is waiting at a conflict")
    state = PausedSync.from_json(data)
    abort_paused(project, entry.name)
    what = f"vendoring {state.version} again" if state.revendor else f"sync to {state.version}"
    observer.step(entry.name, f"{what} aborted")
    return SyncResult(
        entry.name,
        SyncOutcome.ABORTED,
        entry.version,
        state.version,
        f"{entry.name}: {what} aborted; back at {entry.version}",
    )
