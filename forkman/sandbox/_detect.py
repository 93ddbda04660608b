"""What isolation this host offers, and why not when it does not.

Each mechanism is probed for real (a forked child tries ``unshare`` with the
namespaces the sandbox needs; landlock's ABI is asked through its syscall;
seccomp through prctl), and the usual reasons for a refusal are read from
``/proc/sys`` so that ``forkman sandbox doctor`` can say how to enable it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache

from . import _linux
from .interface import SandboxUnavailable, Tier

PR_GET_SECCOMP = 21


@dataclass(frozen=True)
class Mechanism:
    """One isolation mechanism and whether this host provides it."""

    name: str
    """What it is, e.g. ``user namespaces``."""
    available: bool
    """The probe succeeded."""
    detail: str
    """The version or the reason it is missing, and how to enable it."""


@dataclass(frozen=True)
class HostSupport:
    """The isolation this host offers."""

    namespaces: Mechanism
    """Unprivileged user + net + mount + pid + ipc + uts namespaces."""
    landlock: Mechanism
    """Landlock LSM (its ABI version in ``landlock_abi``)."""
    seccomp: Mechanism
    """seccomp-bpf filters."""
    landlock_abi: int
    """The landlock ABI version, 0 when absent."""
    cgroup: Mechanism = Mechanism("pids cgroup", False, "not probed")
    """A pids cgroup forkman may create (optional: a watchdog stands in without it)."""

    @property
    def best_tier(self) -> Tier:
        """The strongest tier every mechanism of which is available."""
        if self.namespaces.available:
            return Tier.NAMESPACES
        if self.landlock.available and self.seccomp.available:
            return Tier.LANDLOCK
        return Tier.NONE

    def mechanisms(self) -> tuple[Mechanism, ...]:
        """All probed mechanisms, for display."""
        return (self.namespaces, self.landlock, self.seccomp, self.cgroup)

    def require(self, min_tier: Tier) -> Tier:
        """The tier to run at; SandboxUnavailable when below `min_tier`."""
        best = self.best_tier
        if best.rank >= min_tier.rank:
            return best
        missing = [
            f"{m.name}: {m.detail}"
            for m in (self.namespaces, self.landlock, self.seccomp)
            if not m.available
        ]
        raise SandboxUnavailable(
            f"this host offers sandbox tier {best.value!r}, below the required {min_tier.value!r}"
            + ("\n  " + "\n  ".join(missing) if missing else ""),
            hint="enable unprivileged user namespaces (see `forkman sandbox doctor` and "
            "docs/sandbox.md), lower [tool.forkman.sandbox] min-tier, or pass --no-sandbox "
            "for code you trust",
        )


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def _userns_reasons() -> list[str]:
    reasons = []
    if _read("/proc/sys/user/max_user_namespaces") == "0":
        reasons.append("user.max_user_namespaces is 0 (sysctl -w user.max_user_namespaces=15000)")
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        reasons.append(
            "kernel.unprivileged_userns_clone is 0 (sysctl -w kernel.unprivileged_userns_clone=1)"
        )
    if _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        reasons.append(
            "AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+): "
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor "
            "profile granting `userns` to the python interpreter"
        )
    return reasons


def _probe_namespaces() -> Mechanism:
    name = "namespaces (user, net, mount, pid, ipc, uts)"
    with warnings.catch_warnings():
        # the child only makes one syscall and exits: safe even in a threaded caller
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            _linux.unshare(_linux.ALL_SANDBOX_NS)
        except OSError as exc:
            code = exc.errno or 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        limit = _read("/proc/sys/user/max_user_namespaces")
        return Mechanism(name, True, f"available (user.max_user_namespaces={limit})")
    why = f"unshare failed: {os.strerror(code) if code > 0 else f'status {code}'}"
    reasons = _userns_reasons()
    if code == errno.EINVAL:
        reasons.append("the probing process may be threaded or the kernel lacks CONFIG_USER_NS")
    return Mechanism(name, False, "; ".join([why, *reasons]))


def _probe_landlock() -> tuple[Mechanism, int]:
    try:
        abi = _linux.landlock_abi()
    except OSError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            why = "landlock is built in but disabled: add `landlock` to the lsm= boot parameter"
        elif exc.errno == errno.ENOSYS:
            why = f"not supported ({exc.strerror}): needs Linux 5.13+ with CONFIG_SECURITY_LANDLOCK"
        else:
            why = f"probe failed: {exc.strerror}"
        return Mechanism("landlock", False, why), 0
    notes = []
    if abi < 4:
        notes.append("no TCP rules before ABI 4")
    if abi < 6:
        notes.append("no abstract-socket/signal scoping before ABI 6")
    return Mechanism(
        "landlock", True, f"ABI {abi}" + (f" ({'; '.join(notes)})" if notes else "")
    ), abi


def _probe_seccomp() -> Mechanism:
    if not _linux.SUPPORTED_ARCH:
        return Mechanism("seccomp", False, f"forkman has no syscall table for {_linux.ARCH}")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0:
        return Mechanism("seccomp", False, "the kernel lacks CONFIG_SECCOMP")
    return Mechanism("seccomp", True, f"seccomp-bpf filter ({_linux.ARCH})")


def _probe_cgroup() -> Mechanism:
    from ._procs import own_cgroup_base

    base = own_cgroup_base()
    if base is None:
        return Mechanism(
            "pids cgroup",
            False,
            "no writable cgroup with the pids controller (optional: the process count is "
            "also held by RLIMIT_NPROC and a watchdog; delegate one with systemd-run --user "
            "--scope -p Delegate=yes)",
        )
    return Mechanism("pids cgroup", True, f"per-run cgroups under {base}")


@lru_cache(maxsize=1)
def detect() -> HostSupport:
    """Probe the host once per process."""
    ns = _probe_namespaces()
    ll, abi = _probe_landlock()
    return HostSupport(
        namespaces=ns,
        landlock=ll,
        seccomp=_probe_seccomp(),
        landlock_abi=abi,
        cgroup=_probe_cgroup(),
    )
