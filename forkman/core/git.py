"""The one way forkman runs git.

There are two kinds of repository, and each gets its own environment
(:func:`environment`):

- **the consumer's repository** (``owned=False``): the user's git
  configuration is honoured (ignore rules, ``safe.directory``, identity);
  ``GIT_DIR``, ``GIT_WORK_TREE`` and ``GIT_INDEX_FILE`` inherited from a
  calling hook are dropped, so git finds the repository from ``cwd``;
- **repositories forkman keeps** (``owned=True``: fork histories under
  ``.forkman/forks/``, scratch trees): no system or global configuration, a
  fixed identity, the C locale, no prompts;
- **mirrors of remotes** (``remote=True``: the clones of git upstreams in the
  per-user cache): the user's git configuration is honoured for reaching the
  remote (credential helpers, proxies, ``url.*.insteadOf``), no prompts.

In the repositories forkman keeps and in mirrors, no hook and no fsmonitor command runs,
whatever the repository's own configuration says (configuration from the
environment outranks it): they are data to forkman, never code. The
consumer's repository is the user's, configured by the user. :func:`run` is the general runner;
:func:`spawn` and :func:`finish` are the quick path of ``forkman check``, which
must not import :mod:`subprocess` (this module imports only :mod:`os` at load
time).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

NO_COMMANDS = (("core.hooksPath", os.devnull), ("core.fsmonitor", "false"))
"""Git settings, given through the environment, that stop git from running commands."""

IDENTITY = {
    "GIT_AUTHOR_NAME": "forkman",
    "GIT_AUTHOR_EMAIL": "forkman@localhost",
    "GIT_COMMITTER_NAME": "forkman",
    "GIT_COMMITTER_EMAIL": "forkman@localhost",
}
"""Author and committer of the commits forkman makes in the repositories it keeps."""

_FROM_HOOKS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX")


def no_git_commands(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with :data:`NO_COMMANDS` appended to ``GIT_CONFIG_COUNT`` entries.

    No hook and no fsmonitor command runs, whatever the repository's own config
    says. Entries already in ``GIT_CONFIG_COUNT`` are kept.
    """
    out = dict(env)
    try:
        count = int(out.get("GIT_CONFIG_COUNT", "0"))
    except ValueError:
        count = 0
    for key, value in NO_COMMANDS:
        out[f"GIT_CONFIG_KEY_{count}"] = key
        out[f"GIT_CONFIG_VALUE_{count}"] = value
        count += 1
    out["GIT_CONFIG_COUNT"] = str(count)
    return out


def environment(
    *, owned: bool, remote: bool = False, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment git runs with: see the module's documentation for `owned`
    and `remote`."""
    if owned:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            {
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "LC_ALL": "C",
            }
        )
        env.update(IDENTITY)
    else:
        env = {k: v for k, v in os.environ.items() if k not in _FROM_HOOKS}
        env["GIT_OPTIONAL_LOCKS"] = "0"
    env["GIT_TERMINAL_PROMPT"] = "0"
    if extra:
        env.update(extra)
    return no_git_commands(env) if owned or remote else env


def run(
    *args: str,
    cwd: str | os.PathLike[str] | None = None,
    owned: bool = False,
    remote: bool = False,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git ARGS`` in `cwd`; stdout and stderr are captured (bytes).

    `env` adds to :func:`environment`. With `check`, a non-zero exit raises
    :class:`~forkman.core.errors.GitError` naming the command and git's message.
    A missing git executable is a :class:`~forkman.core.errors.GitError` too.
    """
    import subprocess

    from .errors import GitError

    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=environment(owned=owned, remote=remote, extra=env),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git is not installed", hint="install git and run again") from None
    if check and proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(
            f"git {' '.join(args[:2])} failed (exit {proc.returncode})"
            + (f": {message[-1]}" if message else ""),
            returncode=proc.returncode,
            stderr=proc.stderr.decode("utf-8", "replace"),
        )
    return proc


def output(
    *args: str,
    cwd: str | os.PathLike[str] | None = None,
    owned: bool = False,
    remote: bool = False,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
) -> str:
    """The standard output of ``git ARGS`` (checked), decoded as UTF-8."""
    proc = run(*args, cwd=cwd, owned=owned, remote=remote, env=env, input=input)
    return proc.stdout.decode("utf-8", "surrogateescape")


def spawn(argv: list[str], cwd: str | None = None) -> tuple[int, int]:
    """Start `argv` (in `cwd`, consumer environment) with stdout to a pipe; (pid, read fd).

    The quick path of ``forkman check``: ``posix_spawn`` and a pipe instead of
    :mod:`subprocess`, whose import costs more than the whole quick check.
    """
    read_fd, write_fd = os.pipe()
    env = environment(owned=False)
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
