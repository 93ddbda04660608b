"""Recovery of fork transactions: finish or undo what a dead process left.

:func:`recover` (run at the start of every write command) finds the journals
under ``.forkman/txn/`` whose owner died: when the lock already holds the new
entry the change committed and only the clean-up is finished; otherwise every
step is undone from the backups, in reverse order. A paused transaction is
kept (:func:`abort_paused` undoes it). See :mod:`forkman.store.txn`.

Also the mutexes transactions share: the owner lock of a fork's transaction
(:class:`Owner`) and the mutex of ``forkman.lock`` (:func:`lock_file_mutex`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core.errors import Busy
from ..core.fs import atomic_write_bytes, fsync_dir
from ..core.mutex import FileMutex
from ..model.lock import Lock, LockEntry, dump_lock, load_lock
from ..model.project import Project
from .journal import ABSENT, load_journal, read_journal

_LOCK_MUTEX = threading.Lock()

# Fault injection for tests: FORKMAN_FAULT=<step name> raises at that step.
_FAULT_ENV = "FORKMAN_FAULT"


class InjectedFault(RuntimeError):
    """Raised by :func:`fault_point` when a test asks for it."""


def fault_point(step: str) -> None:
    """Die here if the test environment asks for it (``FORKMAN_FAULT=step`` or ``step:kill``)."""
    want = os.environ.get(_FAULT_ENV)
    if not want:
        return
    name, _, how = want.partition(":")
    if name != step:
        return
    if how == "kill":
        os.kill(os.getpid(), 9)
    raise InjectedFault(f"injected fault at {step}")


def entry_digest(entry: LockEntry | None) -> str:
    """A digest of one lock entry's serialization ('absent' for no entry)."""
    if entry is None:
        return ABSENT
    return hashlib.sha256(dump_lock(Lock({entry.name: entry})).encode()).hexdigest()


@contextlib.contextmanager
def lock_file_mutex(project: Project) -> Iterator[None]:
    """Serialize read-modify-write of forkman.lock across threads and processes."""
    project.ensure_state_dir()
    with FileMutex(project.state_dir / "lock.mutex", local=_LOCK_MUTEX):
        yield


class Owner:
    """The lock a live transaction of one fork holds (``.forkman/txn/<fork>.owner``).

    A journal whose owner lock is free belongs to a process that died: recovery
    may finish or undo it. A journal whose owner lock is held belongs to a live
    transaction (another thread or process) and is left alone. ``flock`` locks of
    separate opens conflict across threads too, and the kernel drops them when
    the process dies.
    """

    def __init__(self, project: Project, fork: str) -> None:
        self.path = project.state_dir / "txn" / f"{fork}.owner"
        self._mutex = FileMutex(self.path)

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when a live transaction holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self._mutex.try_acquire()

    def release(self) -> None:
        """Let go of the lock."""
        self._mutex.release()


def rollback(project: Project, steps: list[dict[str, Any]]) -> None:
    """Undo journalled `steps` (validated), last first."""
    from .history import ForkHistory

    cleared: set[str] = set()
    for step in reversed(steps):
        if "ref" in step:
            history = ForkHistory(project.root / step["git_dir"])
            if history.exists():
                if step["git_dir"] not in cleared:
                    # a git killed while moving a ref leaves its lock file behind
                    history.remove_stale_ref_locks()
                    cleared.add(step["git_dir"])
                history.update_ref(step["ref"], step["old"])
            continue
        _restore_path(project, step)


def _restore_path(project: Project, step: dict[str, Any]) -> None:
    target = project.root / step["target"]
    backup = step.get("backup")
    if (
        backup is not None
        and not (project.root / backup).exists()
        and (target.exists() or target.is_symlink())
    ):
        # The backup was never taken (crash before the rename): nothing to undo.
        return
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    if backup is not None and (project.root / backup).exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(project.root / backup, target)
    fsync_dir(target.parent)


def recover(project: Project, *, _owned: str | None = None) -> list[str]:
    """Finish or undo interrupted transactions; a line per fork recovered.

    Only journals whose owner died are touched: a live transaction (another
    thread or process holding the fork's owner lock) is left alone. A paused
    transaction is kept: only steps taken after its pause point (by an
    interrupted resume) are undone, which brings it back to the pause.
    `_owned` names the fork whose owner lock the caller already holds.
    """
    txn_dir = project.state_dir / "txn"
    if not txn_dir.is_dir():
        return []
    done: list[str] = []
    keep: set[str] = set()
    dead: list[tuple[Path, Owner]] = []
    try:
        for journal in sorted(txn_dir.glob("*.json")):
            fork_name = journal.name.removesuffix(".json")
            owner = Owner(project, fork_name)
            if fork_name != _owned and not owner.try_acquire():
                # a live transaction: its files and its temporary folder are its own
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    keep.add(str(json.loads(journal.read_text())["dir"]))
                continue
            dead.append((journal, owner))
        # every journal is validated before any of them is acted on
        checked = []
        for journal, _owner in dead:
            try:
                checked.append((load_journal(project, journal), journal))
            except FileNotFoundError:
                continue
        for data, journal in checked:
            line = _recover_one(project, journal, data, keep)
            if line:
                done.append(line)
    finally:
        for _journal, owner in dead:
            owner.release()
    _remove_leftovers(project, txn_dir, keep, _owned)
    return done


def _remove_leftovers(project: Project, txn_dir: Path, keep: set[str], owned: str | None) -> None:
    for leftover in txn_dir.iterdir():
        if leftover.is_symlink() or not leftover.is_dir() or project.relpath(leftover) in keep:
            continue
        # `<fork>.<id>`: a live transaction may have made it since the journals were read
        # (its folder comes before its journal): only a dead owner's folder goes
        fork_name = leftover.name.rsplit(".", 1)[0]
        owner = Owner(project, fork_name)
        if fork_name != owned and not owner.try_acquire():
            continue
        try:
            shutil.rmtree(leftover, ignore_errors=True)
        finally:
            owner.release()


def _recover_one(
    project: Project, journal: Path, data: dict[str, Any], keep: set[str]
) -> str | None:
    """Finish or undo one dead transaction (its owner lock is held by the caller;
    `data`: its journal, validated)."""
    fork = data["fork"]
    with lock_file_mutex(project):
        current = entry_digest(load_lock(project.lock_path).get(fork))
    line: str | None
    if data.get("after") is not None and current == data["after"]:
        line = f"{fork}: completed the interrupted {data['operation']}"
    elif data.get("paused") is not None:
        point = int(data.get("pause_point", len(data["steps"])))
        line = None
        if len(data["steps"]) > point or data.get("after") is not None:
            rollback(project, data["steps"][point:])
            data["steps"] = data["steps"][:point]
            data["after"] = None
            atomic_write_bytes(journal, json.dumps(data, indent=1).encode())
            line = f"{fork}: back to the paused {data['operation']} (resume interrupted)"
        keep.add(data["dir"])
        return line
    else:
        rollback(project, data["steps"])
        line = f"{fork}: rolled back the interrupted {data['operation']}"
    shutil.rmtree(project.root / data["dir"], ignore_errors=True)
    journal.unlink()
    return line


def paused_state(project: Project, fork: str) -> dict[str, Any] | None:
    """The state a paused transaction of `fork` recorded, or None."""
    data = read_journal(project, fork)
    paused = None if data is None else data.get("paused")
    return paused if isinstance(paused, dict) else None


def abort_paused(project: Project, fork: str) -> bool:
    """Undo the paused transaction of `fork` entirely; False when there is none."""
    recover(project)
    journal = project.state_dir / "txn" / f"{fork}.json"
    data = read_journal(project, fork)
    if data is None or data.get("paused") is None:
        return False
    owner = Owner(project, fork)
    if not owner.try_acquire():
        raise Busy(f"another forkman command is changing {fork} right now")
    try:
        fault_point("abort-rollback")
        rollback(project, data["steps"])
        shutil.rmtree(project.root / data["dir"], ignore_errors=True)
        journal.unlink()
        fsync_dir(journal.parent)
    finally:
        owner.release()
    return True
