"""Crash-safe changes to one fork: its files and its lock entry commit together.

A write command changes several things: the vendored tree, patch files,
pyproject.toml, the fork's history refs, and forkman.lock. A
:class:`ForkTransaction` makes them one unit:

1. a journal (``.forkman/txn/<fork>.json``) is written and fsynced before each
   destructive step, naming the backup of what the step replaces;
2. replaced trees and files are *renamed* into the transaction's backup folder
   (cheap, and atomic on one filesystem), never deleted;
3. the lock is the commit point: the journal records a digest of the fork's
   new lock entry, then the lock is written atomically;
4. afterwards the backups and the journal are removed.

If the process dies anywhere, :func:`recover` (run at the start of every
write command, see :mod:`forkman.store.recovery`) finds the journal: when the
lock already holds the new entry the change committed and only the clean-up is
finished; otherwise every step is undone from the backups, in reverse order.
Either way the fork is entirely old or entirely new.

A transaction can also *pause* (:meth:`ForkTransaction.pause`): a sync that
stops at a conflict records its resumable state in the journal and leaves
its steps in place. :func:`recover` leaves a paused journal alone (it only
undoes steps taken after the pause point by an interrupted ``--continue``);
:func:`resume` reopens it to go on and commit, :func:`abort_paused` rolls
every step back, byte for byte. So a fork is entirely old, entirely new, or
in a resumable paused state.

A journal is never trusted because it exists: :mod:`forkman.store.journal`
validates every journal before recovery, resume or abort touches anything
(:mod:`forkman.store.recovery` finishes or undoes them).

Lock writes from concurrent transactions (different forks in parallel) are
serialized by a process-wide mutex plus an ``fcntl`` lock on
``.forkman/lock.mutex``, and are read-modify-write of only the fork's own
entry.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..core.errors import Busy
from ..core.fs import atomic_write_bytes, fsync_dir
from ..core.mutex import FileMutex
from ..model.lock import Layout, Lock, LockEntry, load_lock, write_lock
from ..model.project import Project
from .journal import JournalError, load_journal, read_journal
from .recovery import (
    InjectedFault,
    abort_paused,
    entry_digest,
    fault_point,
    lock_file_mutex,
    paused_state,
    recover,
    rollback,
)
from .recovery import Owner as _Owner

__all__ = [
    "ArchiveRefresh",
    "ForkTransaction",
    "InjectedFault",
    "JournalError",
    "abort_paused",
    "entry_digest",
    "fault_point",
    "load_journal",
    "lock_file_mutex",
    "paused_state",
    "record_section",
    "recover",
    "resume",
    "update_lock",
]

_NAMESPACE_MUTEX = threading.Lock()

ArchiveRefresh = Callable[[Project, str, LockEntry | None], str | None]
"""Makes a fork's installable archive again after a commit (given its new lock entry,
None when the fork is gone); a message when it could not be made
(:func:`forkman.layouts.wiring.refresh_archive`)."""


def update_lock(project: Project, change: Callable[[Lock], Lock]) -> Lock:
    """Apply `change` to the current lock under the mutex and write it atomically."""
    with lock_file_mutex(project):
        lock = change(load_lock(project.lock_path))
        write_lock(project.lock_path, lock)
        return lock


def record_section(
    project: Project, name: str, section: str, value: Mapping[str, Any] | None
) -> Lock:
    """Record (or, with None, drop) lock section `section` of fork `name`, atomically.

    The one writer of a fork's ``audit``, ``provenance``, ``review`` and ``test``
    sections. A fork unforked meanwhile is left alone.
    """

    def change(lock: Lock) -> Lock:
        entry = lock.get(name)
        return lock if entry is None else lock.with_entry(entry.with_section(section, value))

    return update_lock(project, change)


class ForkTransaction:
    """One atomic change to one fork (see the module docstring).

    A namespace-layout fork shares its folder with the project's other
    namespace forks: its transactions hold the project's namespace mutex
    (``.forkman/namespace.mutex``) from start to commit, so which fork owns a
    name there is read and changed by one of them at a time. `namespace`:
    whether the fork is one (None: as the lock says).

    `archive` makes the fork's installable archive again once the change
    committed (not for a namespace fork, which has none): the wiring's
    :func:`~forkman.layouts.wiring.refresh_archive`; None when the change needs
    no archive. Its message, if any, is :attr:`archive_problem`.
    """

    def __init__(
        self,
        project: Project,
        fork: str,
        operation: str,
        *,
        namespace: bool | None = None,
        archive: ArchiveRefresh | None = None,
    ) -> None:
        self.project = project
        self.namespace = namespace
        self.archive = archive
        self._namespace_mutex: FileMutex | None = None
        self.fork = fork
        self.operation = operation
        self.id = uuid.uuid4().hex[:12]
        self.dir = project.state_dir / "txn" / f"{fork}.{self.id}"
        self.journal_path = project.state_dir / "txn" / f"{fork}.json"
        self.steps: list[dict[str, Any]] = []
        self.after: str | None = None
        self.paused: dict[str, Any] | None = None
        self.pause_point = 0
        self._done = False
        self._committed = False
        self._detached = False
        self._resumed = False
        self._owner = _Owner(project, fork)
        self.archive_problem: str | None = None
        """Set by :meth:`commit` when the fork's installable archive could not be made."""

    # -- journal ------------------------------------------------------------------
    def _write_journal(self) -> None:
        data: dict[str, Any] = {
            "fork": self.fork,
            "operation": self.operation,
            "id": self.id,
            "dir": self.project.relpath(self.dir),
            "steps": self.steps,
            "after": self.after,
        }
        if self.paused is not None:
            data["paused"] = self.paused
            data["pause_point"] = self.pause_point
        atomic_write_bytes(self.journal_path, json.dumps(data, indent=1).encode())

    def _own(self) -> None:
        if not self._owner.try_acquire():
            raise Busy(
                f"another forkman command is changing {self.fork} right now",
                hint="wait for it to finish, then try again",
            )

    def __enter__(self) -> ForkTransaction:
        self.project.ensure_state_dir()
        self._own()
        try:
            return self._enter()
        except BaseException:
            self._release()
            raise

    def _enter(self) -> ForkTransaction:
        namespace = self.namespace
        if namespace is None:
            entry = load_lock(self.project.lock_path).get(self.fork)
            namespace = entry is not None and entry.layout is Layout.NAMESPACE
        if namespace:
            self._namespace_mutex = FileMutex(
                self.project.state_dir / "namespace.mutex", local=_NAMESPACE_MUTEX
            )
            self._namespace_mutex.acquire()
        if self._resumed:
            self._detached = False
            self._done = False
            return self
        if self.journal_path.exists():
            recover(self.project, _owned=self.fork)
            if paused_state(self.project, self.fork) is not None:
                raise Busy(
                    f"{self.fork} has a paused {self.operation_in_progress()} "
                    "waiting for a conflict resolution",
                    hint=f"finish it with `forkman sync {self.fork} --continue`, "
                    f"or undo it with `forkman sync {self.fork} --abort`",
                )
        self.dir.mkdir(parents=True)
        self._write_journal()
        return self

    def operation_in_progress(self) -> str:
        """The operation of the journal on disk for this fork."""
        try:
            return str(json.loads(self.journal_path.read_text()).get("operation", "operation"))
        except (OSError, ValueError):
            return "operation"

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._finish()
        finally:
            self._release()

    def _release(self) -> None:
        if self._namespace_mutex is not None:
            self._namespace_mutex.release()
            self._namespace_mutex = None
        self._owner.release()

    def _finish(self) -> None:
        if self._detached:
            return
        if not self._done:
            if self.paused is not None and not self._committed:
                # Back to the pause point: the paused state stays resumable.
                rollback(self.project, self.steps[self.pause_point :])
                del self.steps[self.pause_point :]
                self._write_journal()
                self._done = True
                return
            if not self._committed:  # past the commit point, only clean-up is left
                rollback(self.project, self.steps)
            self._cleanup()

    # -- pausing -------------------------------------------------------------------
    def pause(self, state: dict[str, Any]) -> None:
        """Stop here, keeping every step, with `state` to resume from (JSON data).

        The journal is the record: it survives the process, :func:`recover`
        leaves it alone, :func:`resume` picks it up, :func:`abort_paused` undoes it.
        """
        self.paused = dict(state)
        self.pause_point = len(self.steps)
        self._write_journal()
        self._detached = True
        self._done = True

    def _cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.journal_path.unlink()
        self._done = True

    # -- steps ---------------------------------------------------------------------
    def _backup(self, target: Path) -> str | None:
        """Move `target` into the backup folder; its backup path (None if absent)."""
        if not (target.exists() or target.is_symlink()):
            return None
        backup = self.dir / f"b{len(self.steps)}"
        return self.project.relpath(backup)

    def replace_path(self, target: Path, new: Path | None) -> None:
        """Put `new` (a file or directory, moved) at `target`; None removes `target`."""
        backup = self._backup(target)
        step = {"target": self.project.relpath(target), "backup": backup}
        self.steps.append(step)
        self._write_journal()
        if backup is not None:
            os.replace(target, self.project.root / backup)
        if new is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(new, target)
        fsync_dir(target.parent)

    def write_file(self, target: Path, data: bytes) -> None:
        """Replace the file `target` with `data`."""
        tmp = self.dir / f"n{len(self.steps)}"
        tmp.write_bytes(data)
        if target.exists():
            os.chmod(tmp, os.stat(target).st_mode & 0o777)
        self.replace_path(target, tmp)

    def set_ref(self, git_dir: Path, ref: str, new: str | None) -> None:
        """Move a ref of the fork's history; rolled back with the rest."""
        from .history import ForkHistory

        history = ForkHistory(git_dir)
        old = history.rev(ref) if history.exists() else None
        self.steps.append({"ref": ref, "git_dir": self.project.relpath(git_dir), "old": old})
        self._write_journal()
        history.update_ref(ref, new)

    def set_refs(self, git_dir: Path, refs: dict[str, str]) -> None:
        """Move several refs of the fork's history (one journal write); rolled back together."""
        from .history import ForkHistory

        history = ForkHistory(git_dir)
        out = history.git("for-each-ref", "--format=%(refname) %(objectname)", *refs)
        old = dict(line.split(" ", 1) for line in out.splitlines() if line)
        for ref in refs:
            self.steps.append(
                {"ref": ref, "git_dir": self.project.relpath(git_dir), "old": old.get(ref)}
            )
        self._write_journal()
        history.update_refs(refs)

    def commit(self, change: Callable[[Lock], Lock]) -> Lock:
        """Write the lock (the commit point) and finish; returns the new lock."""
        with lock_file_mutex(self.project):
            lock = change(load_lock(self.project.lock_path))
            self.after = entry_digest(lock.get(self.fork))
            self._write_journal()
            fault_point("before-lock-write")
            write_lock(self.project.lock_path, lock)
            self._committed = True
        fault_point("after-lock-write")
        self._cleanup()
        if self.namespace is not True and self.archive is not None:
            self.archive_problem = self.archive(self.project, self.fork, lock.get(self.fork))
        return lock


def resume(
    project: Project, fork: str, *, archive: ArchiveRefresh | None = None
) -> ForkTransaction:
    """Reopen the paused transaction of `fork` (use it as a context manager);
    `archive` as for :class:`ForkTransaction`."""
    for _line in recover(project):
        pass
    data = read_journal(project, fork)
    if data is None or data.get("paused") is None:
        raise Busy(f"{fork} has no paused operation")
    txn = ForkTransaction(project, fork, data["operation"], archive=archive)
    txn.id = data["id"]
    txn.dir = project.root / data["dir"]
    txn.steps = list(data["steps"])
    txn.paused = data["paused"]
    txn.pause_point = int(data.get("pause_point", len(txn.steps)))
    txn._resumed = True
    return txn
