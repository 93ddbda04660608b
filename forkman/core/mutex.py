"""The one file mutex: an exclusive advisory lock (``flock``) on one file.

A :class:`FileMutex` excludes other processes, and other opens of the same
file in this process (``flock`` locks of separate opens conflict across
threads too). The kernel drops the lock when its process dies, so a lock
found free means its last holder is gone. A mutex can also take a
process-wide :class:`threading.Lock` first (`local`): threads of one process
then queue on that instead of on the file.

The lock file is opened by :func:`open_lock_file`: never through a symlink.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable
from types import TracebackType

from .errors import ForkmanError, SecurityError

POLL = 0.05
"""Seconds between two tries while waiting for a held lock."""


def open_lock_file(path: str | os.PathLike[str]) -> int:
    """Open (creating) a lock file of the state folder, never through a symlink; its fd."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SecurityError(
                f"{os.fspath(path)} is a symlink: forkman's lock files are never followed",
                hint=f"remove it (`rm {os.fspath(path)}`); forkman makes it again",
            ) from None
        raise


class FileMutex:
    """An exclusive ``flock`` on the file at `path` (see the module docstring).

    `local`: a process-wide lock taken (blocking) before the file's.
    `record_pid`: write the holder's process id into the file, so that one who
    waits can say who holds it (:meth:`holder`).

    Not released when the object is garbage collected: only by :meth:`release`
    or by the end of the process.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        local: threading.Lock | None = None,
        record_pid: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.local = local
        self.record_pid = record_pid
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def holder(self) -> str:
        """Who holds the lock, for messages (the recorded process id when there is one)."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                pid = fh.read().strip()
        except OSError:
            return "another forkman process"
        return f"forkman process {pid}" if pid.isdigit() else "another forkman process"

    def acquire(
        self,
        wait: float | None = None,
        *,
        on_wait: Callable[[str], None] | None = None,
        busy: Callable[[str], ForkmanError] | None = None,
    ) -> bool:
        """Take the lock; whether it was taken.

        `wait`: None blocks until the lock is free; 0 does not wait; otherwise
        the lock is tried every :data:`POLL` seconds for up to `wait` seconds.
        `on_wait` is told once, with :meth:`holder`, when the lock is held by
        someone else. When the lock is not taken, `busy` (given :meth:`holder`)
        is the error raised, else False is returned.
        """
        if self.local is not None:
            self.local.acquire()
        fd: int | None = None
        try:
            fd = open_lock_file(self.path)
            taken = self._flock(fd, wait, on_wait)
            if taken and self.record_pid:
                # fixed width, no truncate: truncating costs more than the whole lock
                os.pwrite(fd, f"{os.getpid():<20}\n".encode(), 0)
        except BaseException:
            if fd is not None:
                os.close(fd)
            self._release_local()
            raise
        if not taken:
            os.close(fd)
            self._release_local()
            if busy is not None:
                raise busy(self.holder())
            return False
        self._fd = fd
        return True

    def try_acquire(self) -> bool:
        """Take the lock if it is free (never waits); whether it was taken."""
        return self.acquire(0)

    def _flock(self, fd: int, wait: float | None, on_wait: Callable[[str], None] | None) -> bool:
        if wait is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return True
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if not told and on_wait is not None:
                    on_wait(self.holder())
                    told = True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(POLL)

    def release(self) -> None:
        """Let go of the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        finally:
            self._release_local()

    def _release_local(self) -> None:
        if self.local is not None:
            self.local.release()

    def __enter__(self) -> FileMutex:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
