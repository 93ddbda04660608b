"""Run git subprocesses with nothing but :mod:`os` (``forkman check``'s quick path).

:mod:`subprocess` pulls in modules that cost more than the whole quick check;
``posix_spawn`` and a pipe do the same here.
"""

from __future__ import annotations

import os


def spawn(argv: list[str], cwd: str | None = None) -> tuple[int, int]:
    """Start `argv` (in `cwd`) with stdout to a pipe; (pid, read fd)."""
    read_fd, write_fd = os.pipe()
    env = dict(os.environ)
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    env["GIT_OPTIONAL_LOCKS"] = "0"
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        pid = os.posix_spawnp(
            argv[0],
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, write_fd, 1),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_CLOSE, read_fd),
            ],
        )
    finally:
        if cwd is not None:
            os.chdir(old)
        os.close(write_fd)
    return pid, read_fd


def finish(pid: int, read_fd: int) -> tuple[int, bytes]:
    """A spawned process's exit code and stdout."""
    chunks = []
    while chunk := os.read(read_fd, 1 << 16):
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks)
