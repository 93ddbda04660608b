"""Exclusion between processes: one advisory lock (fcntl ``flock``) per actor key.

An engine holds a key's lock for as long as that actor is in memory, so two
forkman commands on the same repository never work on the same fork at once:
the second waits (saying so on stderr) and, after ``--wait`` seconds, fails
with :class:`~forkman.core.errors.Busy`. The kernel drops the lock when its
process dies, which is what makes recovery safe: an intent found while
holding the lock belongs to a process that is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..core.errors import Busy

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_POLL = 0.05


def lock_file_name(key: str) -> str:
    """A file name for `key`: readable, and unique even when characters were replaced."""
    safe = _SAFE.sub("_", key)
    if safe != key or len(safe) > 100:
        safe = f"{safe[:80]}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    return safe + ".lock"


class KeyLock:
    """A held advisory lock on one key (released by :meth:`release` or process exit)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return "another forkman process"
    return f"forkman process {pid}" if pid.isdigit() else "another forkman process"


def acquire(
    lock_dir: Path,
    key: str,
    *,
    wait: float,
    what: str,
    on_wait: Callable[[str], None] | None = None,
) -> KeyLock:
    """Take the lock of `key`, waiting up to `wait` seconds; :class:`Busy` after that.

    `what` names the locked thing for messages (e.g. ``fork attrs``);
    `on_wait` is told once when the lock is held by someone else.
    """
    path = lock_dir / lock_file_name(key)
    from ..model.statetrust import open_lock_file

    fd = open_lock_file(path)  # never through a symlink: the pid is written into it
    deadline = time.monotonic() + wait
    told = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and on_wait is not None:
                    on_wait(f"{what} is in use by {_holder(path)}; waiting (up to {wait:g} s)")
                    told = True
                if time.monotonic() >= deadline:
                    raise Busy(
                        f"{what} is busy: {_holder(path)} is working on it",
                        hint="wait for that command to finish, or pass --wait SECONDS "
                        "to queue behind it",
                    ) from None
                time.sleep(_POLL)
        # fixed width, no truncate: truncating costs more than the whole lock
        os.pwrite(fd, f"{os.getpid():<20}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return KeyLock(fd, path)


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextlib.contextmanager
def exclusive(lock_dir: Path, name: str, *, wait: float, what: str) -> Iterator[None]:
    """Exclusive use of `name` across threads of this process AND across processes.

    For read-modify-write of files shared by all forks (``forkman.lock``,
    ``pyproject.toml``): fork actors run in parallel, so such updates must be
    serialized.
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = str(lock_dir / lock_file_name(name))
    with _thread_locks_guard:
        local = _thread_locks.setdefault(path, threading.Lock())
    with local:
        held = acquire(lock_dir, name, wait=wait, what=what)
        try:
            yield
        finally:
            held.release()
