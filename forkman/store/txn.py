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
write command) finds the journal: when the lock already holds the new entry
the change committed and only the clean-up is finished; otherwise every step
is undone from the backups, in reverse order. Either way the fork is entirely
old or entirely new.

A transaction can also *pause* (:meth:`ForkTransaction.pause`): a sync that
stops at a conflict records its resumable state in the journal and leaves
its steps in place. :func:`recover` leaves a paused journal alone (it only
undoes steps taken after the pause point by an interrupted ``--continue``);
:func:`resume` reopens it to go on and commit, :func:`abort_paused` rolls
every step back, byte for byte. So a fork is entirely old, entirely new, or
in a resumable paused state.

A journal is never trusted because it exists (a pull request could have
committed one, see :mod:`forkman.model.statetrust`): :func:`load_journal` validates
every journal before recovery, resume or abort touches anything. Every path
must be relative, normalised and inside the project; every target must be
something a transaction of that fork may touch (its vendored folder or
namespace members, its patch series, ``pyproject.toml``, the wiring's
requirements file, its history under ``.forkman/forks/``), backups must lie in
the journal's own folder under ``.forkman/txn/``, refs must be the fork's
history refs, and no path may cross a symlink. An invalid journal is refused
(:class:`JournalError`, exit 2, the journal named), never repaired.

Lock writes from concurrent transactions (different forks in parallel) are
serialized by a process-wide mutex plus an ``fcntl`` lock on
``.forkman/lock.mutex``, and are read-modify-write of only the fork's own
entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..core.errors import Busy, SecurityError
from ..core.fs import atomic_write_bytes, fsync_dir
from ..model.lock import Lock, LockEntry, dump_lock, load_lock, write_lock
from ..model.project import Project
from ..model.statetrust import open_lock_file

_LOCK_MUTEX = threading.Lock()
_NAMESPACE_MUTEX = threading.Lock()
_ABSENT = "absent"

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
        return _ABSENT
    return hashlib.sha256(dump_lock(Lock({entry.name: entry})).encode()).hexdigest()


class _FileMutex:
    """A mutex across threads (a process-wide lock) and processes (``flock`` on a file)."""

    def __init__(self, path: Path, local: threading.Lock) -> None:
        self.path = path
        self.local = local
        self._fh: Any = None

    def acquire(self) -> None:
        self.local.acquire()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = os.fdopen(open_lock_file(self.path), "r+b")
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        except BaseException:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            self.local.release()
            raise

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
            self.local.release()


@contextlib.contextmanager
def lock_file_mutex(project: Project) -> Iterator[None]:
    """Serialize read-modify-write of forkman.lock across threads and processes."""
    project.ensure_state_dir()
    mutex = _FileMutex(project.state_dir / "lock.mutex", _LOCK_MUTEX)
    mutex.acquire()
    try:
        yield
    finally:
        mutex.release()


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


class _Owner:
    """The lock a live transaction of one fork holds (``.forkman/txn/<fork>.owner``).

    A journal whose owner lock is free belongs to a process that died: recovery
    may finish or undo it. A journal whose owner lock is held belongs to a live
    transaction (another thread or process) and is left alone. ``flock`` locks of
    separate opens conflict across threads too, and the kernel drops them when
    the process dies.
    """

    def __init__(self, project: Project, fork: str) -> None:
        self.path = project.state_dir / "txn" / f"{fork}.owner"
        self._fh: Any = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when a live transaction holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = os.fdopen(open_lock_file(self.path), "r+b")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        """Let go of the lock."""
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class ForkTransaction:
    """One atomic change to one fork (see the module docstring).

    A namespace-layout fork shares its folder with the project's other
    namespace forks: its transactions hold the project's namespace mutex
    (``.forkman/namespace.mutex``) from start to commit, so which fork owns a
    name there is read and changed by one of them at a time. `namespace`:
    whether the fork is one (None: as the lock says).
    """

    def __init__(
        self, project: Project, fork: str, operation: str, *, namespace: bool | None = None
    ) -> None:
        self.project = project
        self.namespace = namespace
        self._namespace_mutex: _FileMutex | None = None
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
            namespace = entry is not None and entry.layout == "namespace"
        if namespace:
            self._namespace_mutex = _FileMutex(
                self.project.state_dir / "namespace.mutex", _NAMESPACE_MUTEX
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
                _rollback(self.project, self.steps[self.pause_point :])
                del self.steps[self.pause_point :]
                self._write_journal()
                self._done = True
                return
            if not self._committed:  # past the commit point, only clean-up is left
                _rollback(self.project, self.steps)
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
        if self.namespace is not True:
            from ..layouts.wiring import refresh_archive

            self.archive_problem = refresh_archive(self.project, self.fork, lock.get(self.fork))
        return lock


# -- journals are validated before anything acts on them --------------------------------


class JournalError(SecurityError):
    """A journal under ``.forkman/txn/`` that is not one forkman wrote for its fork."""


_JOURNAL_KEYS = frozenset(
    {"fork", "operation", "id", "dir", "steps", "after", "paused", "pause_point"}
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\Z")
_OPERATION = re.compile(r"[a-z][a-z0-9-]{0,63}\Z")
_TXN_ID = re.compile(r"[0-9a-f]{1,64}\Z")
_REF = re.compile(r"refs/(heads|tags)/[A-Za-z0-9._+!-]+(/[A-Za-z0-9._+!-]+)*\Z")
_OID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?\Z")
_DIGEST = re.compile(r"[0-9a-f]{64}\Z")
_BACKUP = re.compile(r"b[0-9]{1,9}\Z")


def _normal(value: object) -> str | None:
    """`value` if it is a relative, normalised path inside the project, else None."""
    if not isinstance(value, str) or not value or "\0" in value or "\\" in value:
        return None
    if value.startswith("/") or posixpath.normpath(value) != value:
        return None
    if value == "." or value == ".." or value.startswith("../"):
        return None
    return value


def _config_dir(value: str) -> str | None:
    norm = posixpath.normpath(value.replace("\\", "/"))
    return _normal(norm)


def _allowed_targets(project: Project, fork: str) -> tuple[set[str], set[str]]:
    """What a transaction of `fork` may replace: exact paths, and folders whose direct
    children it may replace (a patch series' files, a namespace folder's members)."""
    from ..layouts.wiring import REQUIREMENTS_FILE

    exact = {"pyproject.toml", REQUIREMENTS_FILE, f".forkman/forks/{fork}.git"}
    children: set[str] = set()
    config = project.config
    patches = _config_dir(config.patches_dir)
    if patches is not None:
        exact.add(f"{patches}/{fork}")
        children.add(f"{patches}/{fork}")
    vendor = _config_dir(config.vendor_dir)
    if vendor is not None:
        exact.add(f"{vendor}/{fork}")
    try:
        entry = load_lock(project.lock_path).get(fork)
    except Exception:  # a damaged lock names no path
        entry = None
    if entry is not None and _normal(entry.path) is not None:
        if entry.layout == "namespace":
            children.add(entry.path)
        else:
            exact.add(entry.path)
    if "vendoring" in config.raw:
        from ..model.vendoring import vendoring_config

        destination = _config_dir(vendoring_config(config).destination)
        if destination is not None:
            children.add(destination)
    return exact, children


def _namespace_member_ok(project: Project, folder: str, member: str) -> bool:
    if member == "__init__.py" or member.startswith("."):
        return False
    if "vendoring" not in project.config.raw:
        return True
    from ..model.vendoring import vendoring_config

    return member not in vendoring_config(project.config).protected_files


def _symlink_on_the_way(project: Project, rel: str, *, last_may_link: bool) -> str | None:
    """The first component of `rel` (from the project root) that is a symlink, or None."""
    here = project.root
    parts = rel.split("/")
    for i, part in enumerate(parts):
        here = here / part
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode) and not (last_may_link and i == len(parts) - 1):
            return "/".join(parts[: i + 1])
    return None


def load_journal(project: Project, journal: Path) -> dict[str, Any]:
    """The journal at `journal`, validated (see the module docstring); JournalError if not."""
    rel = project.relpath(journal)

    def refuse(why: str) -> JournalError:
        return JournalError(
            f"refusing the journal {rel}: {why}; forkman changed nothing",
            hint="forkman writes journals only for its own transactions. If no forkman "
            f"command is running, look at the file and remove it (`rm {rel}`), then "
            "`forkman check` shows the state of the fork",
        )

    fork = journal.name.removesuffix(".json")
    try:
        st = os.lstat(journal)
    except FileNotFoundError:
        raise
    if not stat.S_ISREG(st.st_mode):
        raise refuse("it is a symlink or not a regular file")
    try:
        data = json.loads(journal.read_bytes())
    except (OSError, ValueError) as exc:
        raise refuse(f"it is not readable JSON ({exc})") from None
    if not isinstance(data, dict) or not set(data) <= _JOURNAL_KEYS:
        raise refuse("it is not a journal object")
    if data.get("fork") != fork or not _NAME.match(fork):
        raise refuse(f"its fork {data.get('fork')!r} is not the one its name says")
    if not isinstance(data.get("operation"), str) or not _OPERATION.match(data["operation"]):
        raise refuse("its operation is not a name")
    txn_id = data.get("id")
    if not isinstance(txn_id, str) or not _TXN_ID.match(txn_id):
        raise refuse("its id is not a transaction id")
    folder = f".forkman/txn/{fork}.{txn_id}"
    if data.get("dir") != folder:
        raise refuse(f"its folder {data.get('dir')!r} is not {folder}")
    after = data.get("after")
    if after is not None and not (
        after == _ABSENT or (isinstance(after, str) and _DIGEST.match(after))
    ):
        raise refuse("its commit digest is not a digest")
    steps = data.get("steps")
    if not isinstance(steps, list):
        raise refuse("its steps are not a list")
    paused = data.get("paused")
    if paused is not None:
        point = data.get("pause_point")
        if (
            not isinstance(paused, dict)
            or not isinstance(point, int)
            or not 0 <= point <= len(steps)
        ):
            raise refuse("its pause point is not one of its steps")
        members = paused.get("members")
        if members is not None and not (
            isinstance(members, list) and all(_is_member(m) for m in members)
        ):
            raise refuse("its paused members are not plain names")
    elif "pause_point" in data:
        raise refuse("it has a pause point but no paused state")
    exact, children = _allowed_targets(project, fork)
    git_dir = f".forkman/forks/{fork}.git"
    for n, step in enumerate(steps, 1):
        if not isinstance(step, dict):
            raise refuse(f"step {n} is not an object")
        if set(step) == {"ref", "git_dir", "old"}:
            ref, old = step["ref"], step["old"]
            if step["git_dir"] != git_dir:
                raise refuse(f"step {n} moves a ref outside {git_dir}")
            if (
                not isinstance(ref, str)
                or not _REF.match(ref)
                or ".." in ref
                or ref.endswith(".lock")
            ):
                raise refuse(f"step {n} names {ref!r}, not a history ref of the fork")
            if old is not None and not (isinstance(old, str) and _OID.match(old)):
                raise refuse(f"step {n} restores {old!r}, not a commit id")
            where = _symlink_on_the_way(project, git_dir, last_may_link=False)
            if where is not None:
                raise refuse(f"step {n} goes through the symlink {where}")
            continue
        if set(step) != {"target", "backup"}:
            raise refuse(f"step {n} is neither a path step nor a ref step")
        target = _normal(step["target"])
        if target is None:
            raise refuse(f"step {n} names {step['target']!r}, not a normalised relative path")
        parent, _, name = target.rpartition("/")
        if (
            not (
                target in exact
                or (parent in children and _namespace_member_ok(project, parent, name))
            )
            or target == ".git"
            or target.startswith((".git/", ".forkman/txn"))
        ):
            raise refuse(f"step {n} names {target}, which a transaction of {fork} never touches")
        backup = step["backup"]
        if backup is not None:
            if (
                not isinstance(backup, str)
                or backup.rpartition("/")[0] != folder
                or not _BACKUP.match(backup.rpartition("/")[2])
            ):
                raise refuse(f"step {n} keeps its backup outside {folder}")
            where = _symlink_on_the_way(project, backup, last_may_link=True)
            if where is not None:
                raise refuse(f"step {n}'s backup goes through the symlink {where}")
        where = _symlink_on_the_way(project, target, last_may_link=True)
        if where is not None:
            raise refuse(f"step {n} reaches {target} through the symlink {where}")
    where = _symlink_on_the_way(project, folder, last_may_link=False)
    if where is not None:
        raise refuse(f"its folder goes through the symlink {where}")
    return data


def _is_member(value: object) -> bool:
    return (
        isinstance(value, str)
        and _normal(value) == value
        and "/" not in value
        and not value.startswith(".")
    )


def _read_journal(project: Project, fork: str) -> dict[str, Any] | None:
    """The validated journal of `fork`, or None when it has none."""
    try:
        return load_journal(project, project.state_dir / "txn" / f"{fork}.json")
    except FileNotFoundError:
        return None


def _rollback(project: Project, steps: list[dict[str, Any]]) -> None:
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
        target = project.root / step["target"]
        backup = step.get("backup")
        if (
            backup is not None
            and not (project.root / backup).exists()
            and (target.exists() or target.is_symlink())
        ):
            # The backup was never taken (crash before the rename): nothing to undo.
            continue
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
    dead: list[tuple[Path, _Owner]] = []
    try:
        for journal in sorted(txn_dir.glob("*.json")):
            fork_name = journal.name.removesuffix(".json")
            owner = _Owner(project, fork_name)
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
    for leftover in txn_dir.iterdir():
        if leftover.is_symlink() or not leftover.is_dir() or project.relpath(leftover) in keep:
            continue
        # `<fork>.<id>`: a live transaction may have made it since the journals were read
        # (its folder comes before its journal): only a dead owner's folder goes
        fork_name = leftover.name.rsplit(".", 1)[0]
        owner = _Owner(project, fork_name)
        if fork_name != _owned and not owner.try_acquire():
            continue
        try:
            shutil.rmtree(leftover, ignore_errors=True)
        finally:
            owner.release()
    return done


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
            _rollback(project, data["steps"][point:])
            data["steps"] = data["steps"][:point]
            data["after"] = None
            atomic_write_bytes(journal, json.dumps(data, indent=1).encode())
            line = f"{fork}: back to the paused {data['operation']} (resume interrupted)"
        keep.add(data["dir"])
        return line
    else:
        _rollback(project, data["steps"])
        line = f"{fork}: rolled back the interrupted {data['operation']}"
    shutil.rmtree(project.root / data["dir"], ignore_errors=True)
    journal.unlink()
    return line


def paused_state(project: Project, fork: str) -> dict[str, Any] | None:
    """The state a paused transaction of `fork` recorded, or None."""
    data = _read_journal(project, fork)
    paused = None if data is None else data.get("paused")
    return paused if isinstance(paused, dict) else None


def resume(project: Project, fork: str) -> ForkTransaction:
    """Reopen the paused transaction of `fork` (use it as a context manager)."""
    for _line in recover(project):
        pass
    data = _read_journal(project, fork)
    if data is None or data.get("paused") is None:
        raise Busy(f"{fork} has no paused operation")
    txn = ForkTransaction(project, fork, data["operation"])
    txn.id = data["id"]
    txn.dir = project.root / data["dir"]
    txn.steps = list(data["steps"])
    txn.paused = data["paused"]
    txn.pause_point = int(data.get("pause_point", len(txn.steps)))
    txn._resumed = True
    return txn


def abort_paused(project: Project, fork: str) -> bool:
    """Undo the paused transaction of `fork` entirely; False when there is none."""
    recover(project)
    journal = project.state_dir / "txn" / f"{fork}.json"
    data = _read_journal(project, fork)
    if data is None or data.get("paused") is None:
        return False
    owner = _Owner(project, fork)
    if not owner.try_acquire():
        raise Busy(f"another forkman command is changing {fork} right now")
    try:
        fault_point("abort-rollback")
        _rollback(project, data["steps"])
        shutil.rmtree(project.root / data["dir"], ignore_errors=True)
        journal.unlink()
        fsync_dir(journal.parent)
    finally:
        owner.release()
    return True
