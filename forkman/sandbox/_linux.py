"""Raw Linux primitives through ctypes: namespaces, mounts, landlock, seccomp, capabilities.

Only x86_64 syscall numbers are known here; on other machines seccomp and
landlock report themselves unavailable and the tier drops accordingly.
Everything in this module is called in a freshly forked, single-threaded child.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]

ARCH = platform.machine()
SUPPORTED_ARCH = ARCH == "x86_64"

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
NAMESPACE_FLAGS = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID
)
ALL_SANDBOX_NS = (
    CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
)

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# x86_64 syscall numbers
NR = {
    "socket": 41,
    "socketpair": 53,
    "clone": 56,
    "ptrace": 101,
    "syslog": 103,
    "personality": 135,
    "vhangup": 153,
    "pivot_root": 155,
    "chroot": 161,
    "acct": 163,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "iopl": 172,
    "ioperm": 173,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "lookup_dcookie": 212,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "finit_module": 313,
    "seccomp": 317,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "clone3": 435,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
    "landlock_create_ruleset": 444,
    "landlock_add_rule": 445,
    "landlock_restrict_self": 446,
    "capset": 126,
}

DENIED_SYSCALLS = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "bpf",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "open_by_handle_at",
    "name_to_handle_at",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "syslog",
    "vhangup",
    "iopl",
    "ioperm",
    "quotactl",
    "lookup_dcookie",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "pidfd_getfd",
    "kcmp",
)
"""Syscalls a sandboxed process gets EPERM for."""


def _err(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


def syscall(nr: int, *args: object) -> int:
    """Raw syscall; returns the result or raises OSError."""
    r = int(_libc.syscall(ctypes.c_long(nr), *args))
    if r < 0:
        raise _err(f"syscall {nr}")
    return r


def unshare(flags: int) -> None:
    """unshare(2)."""
    if _libc.unshare(ctypes.c_int(flags)) != 0:
        raise _err("unshare")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    """mount(2)."""
    r = _libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if r != 0:
        raise _err(f"mount {target}")


def umount_detach(target: str) -> None:
    """umount2(target, MNT_DETACH)."""
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        raise _err(f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2)."""
    syscall(NR["pivot_root"], new_root.encode(), put_old.encode())


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
AT_FDCWD = -100
AT_RECURSIVE = 0x8000


def make_readonly_recursive(path: str) -> None:
    """Make the mount at `path` and every mount below it read-only and nosuid."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    syscall(
        NR["mount_setattr"],
        ctypes.c_int(AT_FDCWD),
        path.encode(),
        ctypes.c_uint(AT_RECURSIVE),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )


def prctl(option: int, arg2: int = 0) -> None:
    """prctl(2) with one argument."""
    if _libc.prctl(option, arg2, 0, 0, 0) != 0:
        raise _err(f"prctl {option}")


SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    """Bring up ``lo`` of this process's network namespace (needs CAP_NET_ADMIN there)."""
    import fcntl
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def set_no_new_privs() -> None:
    """No setuid, file capabilities or LSM transitions on exec from now on."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def drop_capabilities() -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable sets."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
            break
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = struct.pack("Ii", 0x20080522, 0)
    data = bytes(24)
    hbuf = ctypes.create_string_buffer(header, len(header))
    dbuf = ctypes.create_string_buffer(data, len(data))
    if _libc.syscall(ctypes.c_long(NR["capset"]), hbuf, dbuf) != 0:
        raise _err("capset")


# ---- landlock -------------------------------------------------------------

LL_EXECUTE = 1 << 0
LL_WRITE_FILE = 1 << 1
LL_READ_FILE = 1 << 2
LL_READ_DIR = 1 << 3
LL_REMOVE_DIR = 1 << 4
LL_REMOVE_FILE = 1 << 5
LL_MAKE_CHAR = 1 << 6
LL_MAKE_DIR = 1 << 7
LL_MAKE_REG = 1 << 8
LL_MAKE_SOCK = 1 << 9
LL_MAKE_FIFO = 1 << 10
LL_MAKE_BLOCK = 1 << 11
LL_MAKE_SYM = 1 << 12
LL_REFER = 1 << 13
LL_TRUNCATE = 1 << 14
LL_READ = LL_EXECUTE | LL_READ_FILE | LL_READ_DIR
LL_FILE_RIGHTS = LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE
LL_NET_BIND_TCP = 1
LL_NET_CONNECT_TCP = 2
LL_SCOPE_ABSTRACT_UNIX = 1
LL_SCOPE_SIGNAL = 2


def landlock_abi() -> int:
    """The landlock ABI version, 0 when absent; raises OSError with the reason."""
    if not SUPPORTED_ARCH:
        raise OSError(errno.ENOSYS, f"forkman knows no landlock syscall numbers for {ARCH}")
    return syscall(NR["landlock_create_ruleset"], None, ctypes.c_size_t(0), ctypes.c_uint32(1))


def landlock_write_mask(abi: int) -> int:
    """Every write-like filesystem right this ABI knows."""
    mask = (
        LL_WRITE_FILE
        | LL_REMOVE_DIR
        | LL_REMOVE_FILE
        | LL_MAKE_CHAR
        | LL_MAKE_DIR
        | LL_MAKE_REG
        | LL_MAKE_SOCK
        | LL_MAKE_FIFO
        | LL_MAKE_BLOCK
        | LL_MAKE_SYM
    )
    if abi >= 2:
        mask |= LL_REFER
    if abi >= 3:
        mask |= LL_TRUNCATE
    return mask


def landlock_restrict(
    abi: int,
    *,
    read_paths: list[str] | None,
    write_paths: list[str],
    write_files: list[str],
    tcp: bool = False,
) -> list[str]:
    """Confine this process: writes only beneath `write_paths` (+ `write_files`),
    reads only beneath `read_paths` (None: reads unrestricted), no TCP (unless `tcp`:
    only for a private network namespace), and (ABI 6+) no abstract unix sockets or
    signals outside the sandbox. Returns what was enforced."""
    write_mask = landlock_write_mask(abi)
    handled_fs = write_mask | (LL_READ if read_paths is not None else 0)
    handled_net = (LL_NET_BIND_TCP | LL_NET_CONNECT_TCP) if abi >= 4 and not tcp else 0
    scoped = (LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL) if abi >= 6 else 0
    if abi >= 6:
        attr = struct.pack("QQQ", handled_fs, handled_net, scoped)
    elif abi >= 4:
        attr = struct.pack("QQ", handled_fs, handled_net)
    else:
        attr = struct.pack("Q", handled_fs)
    abuf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = syscall(
        NR["landlock_create_ruleset"], abuf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0)
    )
    try:

        def add(path: str, rights: int) -> None:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                return
            try:
                is_dir = os.path.isdir(path)
                allowed = rights if is_dir else rights & LL_FILE_RIGHTS
                rule = struct.pack("=Qi", allowed & handled_fs, fd)
                rbuf = ctypes.create_string_buffer(rule, len(rule))
                syscall(
                    NR["landlock_add_rule"],
                    ctypes.c_int(ruleset),
                    ctypes.c_int(1),
                    rbuf,
                    ctypes.c_uint32(0),
                )
            finally:
                os.close(fd)

        for p in read_paths or ():
            add(p, LL_READ)
        for p in write_paths:
            add(p, write_mask | (LL_READ if read_paths is not None else 0))
        for p in write_files:
            add(p, LL_WRITE_FILE | LL_TRUNCATE | LL_READ_FILE)
        syscall(NR["landlock_restrict_self"], ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    enforced = [f"landlock-abi-{abi}:fs-write"]
    if read_paths is not None:
        enforced.append(f"landlock-abi-{abi}:fs-read")
    if handled_net:
        enforced.append(f"landlock-abi-{abi}:no-tcp")
    if scoped:
        enforced.append(f"landlock-abi-{abi}:scoped-abstract-unix-and-signals")
    return enforced


# ---- seccomp --------------------------------------------------------------

_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_JSET_K = 0x45
_BPF_RET_K = 0x06
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_AUDIT_ARCH_X86_64 = 0xC000003E
_SECCOMP_SET_MODE_FILTER = 1
AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


def seccomp_program(inet: bool = False) -> list[bytes]:
    """The filter: deny dangerous syscalls, non-unix sockets (with `inet`, only for a
    private network namespace: non-unix, non-IP sockets) and namespace-creating clones."""
    prog: list[bytes] = [
        _ins(_BPF_LD_W_ABS, 0, 0, 4),  # arch
        _ins(_BPF_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),
        _ins(_BPF_RET_K, 0, 0, _RET_KILL_PROCESS),
        _ins(_BPF_LD_W_ABS, 0, 0, 0),  # nr
        _ins(_BPF_JGE_K, 0, 1, 0x40000000),  # x32 ABI
        _ins(_BPF_RET_K, 0, 0, _RET_ERRNO | errno.EPERM),
    ]
    for name in DENIED_SYSCALLS:
        prog.append(_ins(_BPF_JEQ_K, 0, 1, NR[name]))
        prog.append(_ins(_BPF_RET_K, 0, 0, _RET_ERRNO | errno.EPERM))
    # clone3 passes its flags in memory: make libc fall back to clone(2).
    prog.append(_ins(_BPF_JEQ_K, 0, 1, NR["clone3"]))
    prog.append(_ins(_BPF_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS))
    # socket()/socketpair(): only AF_UNIX (+ AF_INET/AF_INET6 for a private loopback);
    # others fail with ENETUNREACH ("Network is unreachable").
    families = [AF_UNIX, AF_INET, AF_INET6] if inet else [AF_UNIX]
    for name in ("socket", "socketpair"):
        n = len(families)
        prog += [
            _ins(_BPF_JEQ_K, 0, n + 3, NR[name]),
            _ins(_BPF_LD_W_ABS, 0, 0, 16),  # args[0] low word
        ]
        for i, family in enumerate(families):
            prog.append(_ins(_BPF_JEQ_K, n - i, 0, family))  # to the ALLOW below
        prog += [
            _ins(_BPF_RET_K, 0, 0, _RET_ERRNO | errno.ENETUNREACH),
            _ins(_BPF_RET_K, 0, 0, _RET_ALLOW),
        ]
    # clone(): no new namespaces (args[0] holds the flags on x86_64).
    prog += [
        _ins(_BPF_JEQ_K, 0, 4, NR["clone"]),
        _ins(_BPF_LD_W_ABS, 0, 0, 16),
        _ins(_BPF_JSET_K, 0, 1, NAMESPACE_FLAGS | CLONE_NEWNET | CLONE_NEWTIME),
        _ins(_BPF_RET_K, 0, 0, _RET_ERRNO | errno.EPERM),
        _ins(_BPF_RET_K, 0, 0, _RET_ALLOW),
    ]
    prog.append(_ins(_BPF_RET_K, 0, 0, _RET_ALLOW))
    return prog


def install_seccomp(inet: bool = False) -> None:
    """Load the filter into this process (needs no_new_privs first); `inet` allows IP
    sockets (only inside a private network namespace)."""
    if not SUPPORTED_ARCH:
        raise OSError(errno.ENOSYS, f"forkman has no seccomp filter for {ARCH}")
    code = b"".join(seccomp_program(inet))
    n = len(code) // 8
    fbuf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HxxxxxxP", n, ctypes.addressof(fbuf))
    pbuf = ctypes.create_string_buffer(fprog, len(fprog))
    syscall(NR["seccomp"], ctypes.c_uint(_SECCOMP_SET_MODE_FILTER), ctypes.c_uint(0), pbuf)
