"""The one file mutex (forkman.core.mutex): exclusion, Busy with a hint, release at death."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from forkman.core.errors import Busy, SecurityError
from forkman.core.mutex import FileMutex

REPO = Path(__file__).resolve().parent.parent


def test_a_held_mutex_excludes_another_open_until_released(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    first, second = FileMutex(path), FileMutex(path)
    assert first.try_acquire() and first.held
    assert not second.try_acquire() and not second.held
    first.release()
    first.release()  # idempotent
    assert second.try_acquire()
    second.release()


def test_waiting_says_who_holds_it_then_fails_busy_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "k.lock"
    holder = FileMutex(path, record_pid=True)
    assert holder.acquire()
    told: list[str] = []
    with pytest.raises(Busy) as info:
        FileMutex(path).acquire(
            0.1,
            on_wait=told.append,
            busy=lambda who: Busy(f"busy: {who}", hint="wait for it"),
        )
    assert told == [f"forkman process {os.getpid()}"]
    assert info.value.message == f"busy: forkman process {os.getpid()}"
    assert info.value.hint == "wait for it"
    holder.release()


def test_the_kernel_releases_the_mutex_of_a_dead_process(tmp_path: Path) -> None:
    path = tmp_path / "dead.lock"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from forkman.core.mutex import FileMutex; "
            "FileMutex(sys.argv[1]).acquire(); print('held', flush=True); sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    mutex = FileMutex(path)
    assert not mutex.try_acquire()
    child.kill()
    child.wait()
    assert mutex.try_acquire()
    mutex.release()


def test_the_local_lock_queues_threads_and_is_released_with_the_file(tmp_path: Path) -> None:
    local = threading.Lock()
    path = tmp_path / "t.lock"
    with FileMutex(path, local=local):
        assert local.locked()
    assert not local.locked()
    with pytest.raises(FileNotFoundError):  # no folder: nothing held, the thread lock neither
        FileMutex(tmp_path / "none" / "x.lock", local=local).try_acquire()
    assert not local.locked()


def test_a_lock_file_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / "s.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SecurityError, match="is a symlink"):
        FileMutex(tmp_path / "s.lock").acquire()
