"""Where a fork's vendored tree lives in the project, in both layouts.

A project-layout fork owns a folder of its own (``vendor/NAME``). A
namespace-layout fork owns only its *members*, the top-level names it wrote
into the namespace folder it shares with the project's other namespace forks
(``six.py``, ``six.pyi``, ``certifi/``) and with the project's protected
files. Every command that reads or replaces a fork's tree on disk (patch,
restore, sync and its ``--continue``) goes through here, so none of them
ever touches a file another fork or the project owns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..gate.check import members_of
from ..model.lock import LockEntry
from ..model.project import Project
from ..model.vendoring import vendoring_config
from ..store.history import ForkHistory
from ..store.txn import ForkTransaction
from .vendor import namespace_owners


def fork_root(project: Project, entry: LockEntry) -> Path:
    """The fork's folder (for the namespace layout, the shared namespace folder)."""
    return project.root / entry.path


def present_members(root: Path, members: Iterable[str]) -> list[str]:
    """The `members` that exist under `root` (a patch may have deleted some)."""
    return [m for m in members if (root / m).exists() or (root / m).is_symlink()]


def snapshot_worktree(
    history: ForkHistory,
    project: Project,
    entry: LockEntry,
    members: Sequence[str] | None = None,
) -> str:
    """The git tree id of the fork's tree as it is on disk.

    For the namespace layout only the fork's members count (`members`, default
    the lock's): files of other forks and of the project are never read.
    """
    root = fork_root(project, entry)
    owned = members if members is not None else members_of(entry)
    if owned is None:
        return history.snapshot(root)
    return history.snapshot(root, present_members(root, owned))


def tree_members(history: ForkHistory, rev: str) -> list[str]:
    """The top-level names of commit `rev`'s tree."""
    out = history.git("ls-tree", "--name-only", "-z", rev)
    return sorted(name for name in out.split("\0") if name)


def staged_members(tree: Path) -> list[str]:
    """The top-level names of a staged tree."""
    return sorted(p.name for p in tree.iterdir())


def place_tree(
    txn: ForkTransaction,
    project: Project,
    entry: LockEntry,
    staged: Path,
    *,
    also_previous: Iterable[str] = (),
) -> list[str] | None:
    """Within `txn`, make the staged tree the fork's tree on disk (moved, not copied).

    Project layout: the fork's folder is replaced. Namespace layout: the
    fork's previous members (the lock's, plus `also_previous`, e.g. the
    members a paused sync put in place) are removed and the staged tree's
    top-level names put in their place; a name another fork owns, a protected
    name, or a name that exists and belongs to no fork is refused before
    anything moves. Returns the new members (None for the project layout).
    """
    previous = members_of(entry)
    root = fork_root(project, entry)
    if previous is None:
        txn.replace_path(root, staged)
        return None
    from ..layouts.transform import member_moves

    members = staged_members(staged)
    owners, _ = namespace_owners(project, entry.name)
    moves = member_moves(
        staged,
        root,
        members=members,
        previous=sorted({*previous, *also_previous}),
        owned_by_others=owners,
        protected=vendoring_config(project.config).protected_files,
    )
    for target, source in moves:
        txn.replace_path(target, source)
    return members


def with_members(entry: LockEntry, members: Sequence[str] | None) -> LockEntry:
    """`entry` with its namespace section's members set (unchanged for the project layout)."""
    if members is None:
        return entry
    ns = entry.sections.get("namespace")
    if not isinstance(ns, Mapping):
        return entry
    section: dict[str, Any] = {**ns, "members": sorted(members)}
    return replace(entry, sections={**entry.sections, "namespace": section})
