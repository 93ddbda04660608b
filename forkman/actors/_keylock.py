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
import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ..core.errors import Busy
from ..core.mutex import FileMutex

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def lock_file_name(key: str) -> str:
    """A file name for `key`: readable, and unique even when characters were replaced."""
    safe = _SAFE.sub("_", key)
    if safe != key or len(safe) > 100:
        safe = f"{safe[:80]}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    return safe + ".lock"


KeyLock = FileMutex
"""A held advisory lock on one key (released by ``release()`` or process exit)."""


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
    # never through a symlink: the pid is written into it
    held = FileMutex(lock_dir / lock_file_name(key), record_pid=True)
    held.acquire(
        wait,
        on_wait=None
        if on_wait is None
        else lambda holder: on_wait(f"{what} is in use by {holder}; waiting (up to {wait:g} s)"),
        busy=lambda holder: Busy(
            f"{what} is busy: {holder} is working on it",
            hint="wait for that command to finish, or pass --wait SECONDS to queue behind it",
        ),
    )
    return held


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
