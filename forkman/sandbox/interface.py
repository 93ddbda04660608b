"""The sandbox's vocabulary: isolation tiers, the policy a run obeys, and its result.

A run happens at the strongest tier the host offers; the tier and every
mechanism that was actually enforced are recorded in the :class:`RunResult`.
A run that cannot reach the policy's minimum tier is refused with a
:class:`SandboxUnavailable` (a :class:`~forkman.core.errors.SecurityError`): forkman
fails closed.
"""

from __future__ import annotations

import enum
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import SecurityError

MiB = 1024 * 1024


class Tier(enum.Enum):
    """How strongly a run is isolated, weakest first."""

    NONE = "none"
    """No isolation: resource limits and the timeout only."""
    LANDLOCK = "landlock"
    """Landlock (filesystem, TCP, abstract sockets, signals) and seccomp, no namespaces."""
    NAMESPACES = "namespaces"
    """User, network, mount, pid, ipc and uts namespaces, read-only root, plus landlock+seccomp."""

    @property
    def rank(self) -> int:
        """Strength order: NONE < LANDLOCK < NAMESPACES."""
        return _RANK[self]

    @classmethod
    def parse(cls, text: str) -> Tier:
        """A tier from its config spelling; ValueError when unknown."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(repr(t.value) for t in cls)
            raise ValueError(f"unknown sandbox tier {text!r} (one of {names})") from None


_RANK = {Tier.NONE: 0, Tier.LANDLOCK: 1, Tier.NAMESPACES: 2}

DEFAULT_ENV_ALLOW: tuple[str, ...] = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TERM",
    "TZ",
    "NO_COLOR",
    "COLUMNS",
    "PYTHONHASHSEED",
    "PYTHONUTF8",
    "PYTHONPATH",
    "PYTEST_ADDOPTS",
)
"""Environment variables passed into the sandbox by default; everything else is dropped."""


def _default_readonly() -> tuple[Path, ...]:
    # The interpreter and the environment forkman runs from, which may live in a
    # hidden home directory (pyenv): shown read-only inside the sandbox.
    seen: list[Path] = []
    for p in (sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))):
        path = Path(p).resolve()
        if path not in seen and str(path) != "/":
            seen.append(path)
    return tuple(seen)


@dataclass(frozen=True)
class SandboxPolicy:
    """What a sandboxed run may do."""

    timeout: float = 60.0
    """Wall-clock seconds before the whole process tree is killed."""
    memory: int = 1024 * MiB
    """Bytes: address-space limit of each process and the watchdog's limit on their total RSS."""
    cpu_seconds: int = 120
    """CPU seconds per process (SIGXCPU, then SIGKILL)."""
    max_processes: int = 64
    """Processes the sandbox's user may have at once."""
    max_file_size: int = 256 * MiB
    """Largest file a process may write (SIGXFSZ beyond)."""
    max_open_files: int = 256
    """Open file descriptors per process."""
    tmpfs_size: int = 256 * MiB
    """Size of each private tmpfs (/tmp, home, /run, /dev/shm)."""
    writable: tuple[Path, ...] = ()
    """Directories bound read-write (the scratch copy); everything else is read-only."""
    readonly: tuple[Path, ...] = field(default_factory=_default_readonly)
    """Directories shown read-only even when they sit under a hidden one (the interpreter)."""
    env_allow: tuple[str, ...] = DEFAULT_ENV_ALLOW
    """Names of environment variables passed through; all others are dropped."""
    min_tier: Tier = Tier.NAMESPACES
    """Refuse to run with less isolation than this."""
    output_limit: int = 4 * MiB
    """Bytes of stdout and of stderr kept; the rest is read and dropped."""
    loopback: bool = True
    """A private loopback (``lo`` up in the sandbox's own network namespace): local
    servers of the suite work; the host's 127.0.0.1 stays unreachable. Only the
    namespaces tier has one; other tiers keep every non-unix socket blocked."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (sent to the fork server)."""
        return {
            "timeout": self.timeout,
            "memory": self.memory,
            "cpu_seconds": self.cpu_seconds,
            "max_processes": self.max_processes,
            "max_file_size": self.max_file_size,
            "max_open_files": self.max_open_files,
            "tmpfs_size": self.tmpfs_size,
            "writable": [str(Path(p).resolve()) for p in self.writable],
            "readonly": [str(Path(p).resolve()) for p in self.readonly],
            "loopback": self.loopback,
        }


class SandboxUnavailable(SecurityError):
    """The host cannot provide the isolation the policy requires."""


class SandboxSetupError(SecurityError):
    """Setting up the sandbox failed; nothing ran."""


@dataclass(frozen=True)
class RunResult:
    """What happened to one run."""

    exit_code: int | None
    """The command's exit status, or None when it was killed by a signal."""
    signal: int | None
    """The signal that killed the command, if any."""
    timed_out: bool
    """The wall-clock timeout ended the run."""
    memory_exceeded: bool
    """The memory watchdog ended the run (total RSS above the policy's memory)."""
    processes_exceeded: bool
    """The process-count watchdog ended the run (more processes than the policy allows)."""
    stdout: bytes
    """Captured standard output (up to the policy's output limit)."""
    stderr: bytes
    """Captured standard error (up to the policy's output limit)."""
    duration: float
    """Wall-clock seconds from fork to the end of the process tree."""
    tier: Tier
    """The isolation tier the run had."""
    enforced: tuple[str, ...]
    """The mechanisms actually in force, e.g. ``net-namespace``, ``landlock-abi-7``."""
    disabled_by_user: bool = False
    """The sandbox was turned off on purpose (``--no-sandbox``)."""

    @property
    def returncode(self) -> int:
        """A shell-style status: the exit code, 128+signal, or 124 on timeout."""
        if self.timed_out:
            return 124
        if self.signal is not None:
            return 128 + self.signal
        return self.exit_code if self.exit_code is not None else 1

    @property
    def tier_label(self) -> str:
        """The tier as recorded: ``namespaces``, ``landlock``, ``none (disabled by user)``."""
        if self.disabled_by_user:
            return "none (disabled by user)"
        return self.tier.value
