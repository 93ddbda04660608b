"""The processes of one run, forked from the fork server.

    fork server ─ supervisor ─ init (pid 1 of a new pid namespace) ─ payload ─ ...

The *supervisor* enters the new namespaces, enforces the wall-clock timeout
and the memory watchdog, and reports the result. *init* builds the mount
tree, forwards signals to the payload and reaps orphans; when it exits the
kernel kills everything left in the pid namespace (setsid'd grandchildren
included). The *payload* sets resource limits, drops capabilities, confines
itself with landlock and seccomp, and execs the command (or runs a Python
module in-process, reusing the server's warm imports).

Without namespaces (tier landlock/none) the supervisor is a child subreaper:
orphans re-parent to it and it kills every descendant when the run ends.
Everything here runs in single-threaded forked children and ends in
``os._exit``.
"""

# Paths such as /tmp below name directories inside the sandbox, not temporary files.
# ruff: noqa: S108

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import socket
import sys
import time
from typing import Any, NoReturn

from . import _linux, _procs

HIDDEN_DIRS = ("/tmp", "/var/tmp", "/run", "/dev/shm", "/home", "/root", "/mnt", "/media", "/srv")
"""Covered with an empty private tmpfs inside the namespaces tier."""
SMALL_TMPFS = 16 * 1024 * 1024
"""Bytes of each small tmpfs (home, /run, /var/tmp, ...); /tmp and /dev/shm get more."""
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
"""Device nodes shown in the sandbox's private /dev."""
WATCH_INTERVAL = 0.02
"""Seconds between two samples of the memory and process-count watchdog."""
FIRST_WATCH = 0.05
"""Seconds before the first sample (short runs never pay for a scan of /proc)."""


def _exit_with(fd: int, payload: dict[str, Any]) -> NoReturn:
    with contextlib.suppress(OSError):
        os.write(fd, json.dumps(payload).encode())
    os._exit(0)


# ---- mounts ----------------------------------------------------------------


def _makedirs(path: str) -> None:
    with contextlib.suppress(FileExistsError):
        os.makedirs(path, exist_ok=True)


def build_mount_tree(req: dict[str, Any]) -> None:
    """Inside new user+mount namespaces: make the sandbox's root and pivot into it."""
    policy = req["policy"]
    size = int(policy["tmpfs_size"])
    _linux.mount(None, "/", None, _linux.MS_REC | _linux.MS_PRIVATE, None)
    base = "/tmp"
    _linux.mount("tmpfs", base, "tmpfs", _linux.MS_NOSUID | _linux.MS_NODEV, "size=1m,mode=0755")
    os.chdir(base)
    os.mkdir("newroot")
    os.mkdir("oldroot")
    _linux.pivot_root(".", "oldroot")
    os.chdir("/")
    new, old = "/newroot", "/oldroot"
    _linux.mount(old, new, None, _linux.MS_BIND | _linux.MS_REC, None)
    _linux.make_readonly_recursive(new)
    hidden = list(HIDDEN_DIRS) + [h for h in req.get("hide", []) if h]
    done: list[str] = []
    for d in hidden:
        src = old + d
        if any(d == h or d.startswith(h + "/") for h in done):
            continue  # already inside an empty tmpfs
        if os.path.isdir(src) and not os.path.islink(src):
            done.append(d)
            mode = "1777" if d in ("/tmp", "/var/tmp", "/dev/shm") else "0755"
            # only /tmp (and /dev/shm) get the full size: tmpfs pages are memory
            dsize = size if d == "/tmp" else min(size, SMALL_TMPFS)
            _linux.mount(
                "tmpfs",
                new + d,
                "tmpfs",
                _linux.MS_NOSUID | _linux.MS_NODEV,
                f"size={dsize},mode={mode}",
            )
    # a private /dev with harmless nodes only (no disks, no /dev/mem)
    _linux.mount("tmpfs", new + "/dev", "tmpfs", _linux.MS_NOSUID, "size=64k,mode=0755")
    for node in DEV_NODES:
        if os.path.exists(f"{old}/dev/{node}"):
            with open(f"{new}/dev/{node}", "w"):
                pass
            _linux.mount(f"{old}/dev/{node}", f"{new}/dev/{node}", None, _linux.MS_BIND, None)
    os.mkdir(new + "/dev/shm")
    _linux.mount(
        "tmpfs",
        new + "/dev/shm",
        "tmpfs",
        _linux.MS_NOSUID | _linux.MS_NODEV,
        f"size={size},mode=1777",
    )
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{new}/dev/{name}")
    for ro in sorted(policy["readonly"], key=len):
        if os.path.isdir(old + ro):
            _makedirs(new + ro)
            _linux.mount(old + ro, new + ro, None, _linux.MS_BIND | _linux.MS_REC, None)
            _linux.make_readonly_recursive(new + ro)
    for w in sorted(policy["writable"], key=len):
        if not os.path.isdir(old + w):
            raise OSError(2, f"writable directory {w} does not exist")
        _makedirs(new + w)
        _linux.mount(old + w, new + w, None, _linux.MS_BIND | _linux.MS_REC, None)
    _linux.mount("proc", new + "/proc", "proc", _linux.MS_NOSUID | _linux.MS_NODEV | 8, None)
    os.chdir(new)
    _linux.pivot_root(".", ".")
    _linux.umount_detach(".")
    os.chdir("/")


# ---- payload ---------------------------------------------------------------


def _set_limits(policy: dict[str, Any]) -> None:
    def lim(which: int, soft: int, hard: int | None = None) -> None:
        resource.setrlimit(which, (soft, soft if hard is None else hard))

    lim(resource.RLIMIT_AS, int(policy["memory"]))
    cpu = int(policy["cpu_seconds"])
    lim(resource.RLIMIT_CPU, cpu, cpu + 1)
    lim(resource.RLIMIT_NPROC, int(policy["max_processes"]))
    lim(resource.RLIMIT_FSIZE, int(policy["max_file_size"]))
    lim(resource.RLIMIT_NOFILE, int(policy["max_open_files"]))
    lim(resource.RLIMIT_CORE, 0)


def run_payload(
    req: dict[str, Any], tier: str, out_fd: int, err_fd: int, abi: int, in_fd: int | None = None
) -> NoReturn:
    """Confine this process and run the command; never returns."""
    try:
        os.setsid()
        source = os.open("/dev/null", os.O_RDONLY) if in_fd is None else in_fd
        os.dup2(source, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.closerange(3, 1 << 30)  # close_range(2): every inherited descriptor
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        policy = req["policy"]
        # IP sockets only inside the private network namespace (its loopback is all it has)
        private_loopback = tier == "namespaces" and bool(policy.get("loopback"))
        _set_limits(policy)
        if tier != "none":
            _linux.set_no_new_privs()
            if tier == "namespaces" or os.geteuid() == 0:
                _linux.drop_capabilities()
            if abi:
                writable = list(policy["writable"])
                devs = [f"/dev/{n}" for n in DEV_NODES]
                if tier == "namespaces":
                    _linux.landlock_restrict(
                        abi,
                        read_paths=None,
                        write_paths=[
                            *writable,
                            "/tmp",
                            "/var/tmp",
                            "/dev",  # a private tmpfs holding only harmless nodes
                            "/run",
                            "/home",
                            "/root",
                        ],
                        write_files=[],
                        tcp=private_loopback,
                    )
                else:
                    reads = [
                        "/usr",
                        "/lib",
                        "/lib64",
                        "/lib32",
                        "/bin",
                        "/sbin",
                        "/etc",
                        "/opt",
                        "/proc",
                        "/sys",
                        "/dev",
                        *policy["readonly"],
                        req["cwd"],
                    ]
                    _linux.landlock_restrict(
                        abi, read_paths=reads, write_paths=writable, write_files=devs
                    )
            _linux.install_seccomp(inet=private_loopback)
        os.chdir(req["cwd"])
        env = req["env"]
        if req.get("python"):
            _run_python(req["python"], env)
        argv = req["argv"]
        os.execvpe(argv[0], argv, env)  # noqa: S606 - the sandboxed command itself
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(2, f"forkman sandbox: cannot run {req['argv'][:1]}: {exc}\n".encode())
        os._exit(127)


def _forget_shadowed_modules(paths: list[str], keep: str) -> None:
    """Drop warm modules that `paths` provide, so the code under test is imported, not
    the server's copy (a fork of ``packaging`` must not be tested with pytest's)."""
    provided: set[str] = set()
    for d in paths:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            stem = n.split(".", 1)[0] if n.endswith((".py", ".so", ".pyd")) else n
            if stem.isidentifier():
                provided.add(stem)
    provided.discard(keep.split(".")[0])
    for name in list(sys.modules):
        if name.split(".", 1)[0] in provided:
            del sys.modules[name]


def _run_python(spec: dict[str, Any], env: dict[str, str]) -> NoReturn:
    import runpy

    os.environ.clear()
    os.environ.update(env)
    for stream in (sys.stdout, sys.stderr):  # progress reaches the caller as it happens
        with contextlib.suppress(Exception):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    extra = list(spec.get("sys_path", []))
    _forget_shadowed_modules(extra, keep=spec["module"])
    sys.path[:0] = extra
    sys.argv = [spec["module"], *spec.get("args", [])]
    code = 0
    try:
        runpy.run_module(spec["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


# ---- init (pid 1 of the pid namespace) -------------------------------------


def run_init(
    req: dict[str, Any], status_w: int, out_fd: int, err_fd: int, abi: int, in_fd: int | None
) -> NoReturn:
    """pid 1: build the mounts, start the payload, forward signals, reap; never returns."""
    try:
        _linux.prctl(_linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        # a mount namespace of our own: pivot_root must not move the supervisor's root
        _linux.unshare(_linux.CLONE_NEWNS)
        build_mount_tree(req)
        socket.sethostname("sandbox")
        if req["policy"].get("loopback"):
            # `lo` of the sandbox's own network namespace: nothing else is in it, so the
            # host (and its 127.0.0.1) stays unreachable both ways
            _linux.loopback_up()
    except BaseException as exc:
        _exit_with(status_w, {"error": f"sandbox setup failed: {exc}"})
    payload = os.fork()
    if payload == 0:
        os.close(status_w)
        run_payload(req, "namespaces", out_fd, err_fd, abi, in_fd)
    os.close(out_fd)
    os.close(err_fd)
    if in_fd is not None:
        os.close(in_fd)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(payload, signum)

    for sig in (
        signal.SIGTERM,
        signal.SIGINT,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
    ):
        signal.signal(sig, forward)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            _exit_with(status_w, {"error": "payload vanished"})
        if pid == payload:
            _exit_with(status_w, {"status": status})


# ---- supervisor -------------------------------------------------------------


_NAMESPACES_ENFORCED = (
    "user-namespace",
    "net-namespace",
    "mount-namespace:read-only-root",
    "tmpfs:home,tmp,run,dev-shm",
    "pid-namespace",
    "ipc-namespace",
    "uts-namespace",
    "no-new-privs",
    "capabilities-dropped",
    "seccomp",
)


def _start_in_namespaces(
    req: dict[str, Any], fds: list[int], abi: int, in_fd: int | None
) -> tuple[int, str, int]:
    """Enter new namespaces and fork init; its pid, the pid namespace, init's status pipe."""
    out_fd, err_fd, result_fd = fds[:3]
    uid, gid = os.getuid(), os.getgid()
    _linux.unshare(_linux.ALL_SANDBOX_NS)
    inner = uid or 1000
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{inner} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid or 1000} {gid} 1")
    status_r, status_w = os.pipe()
    main = os.fork()
    if main == 0:
        os.close(status_r)
        os.close(result_fd)
        run_init(req, status_w, out_fd, err_fd, abi, in_fd)
    os.close(status_w)
    try:
        ns_link = os.readlink("/proc/self/ns/pid_for_children")
    except OSError:  # the run already ended and its pid namespace is gone
        ns_link = "gone"
    return main, ns_link, status_r


def _start(
    req: dict[str, Any], fds: list[int], abi: int, in_fd: int | None, enforced: list[str]
) -> tuple[int, str | None, int]:
    """Start the run's first process (init, or the payload under a subreaper), adding what
    is enforced to `enforced`; its pid, its pid namespace (None: none) and init's pipe."""
    tier = req["tier"]
    ns_link: str | None = None
    status_r = -1
    if tier == "namespaces":
        main, ns_link, status_r = _start_in_namespaces(req, fds, abi, in_fd)
        enforced += _NAMESPACES_ENFORCED
        if req["policy"].get("loopback"):
            enforced.insert(enforced.index("net-namespace") + 1, "private-loopback")
    else:
        _linux.prctl(_linux.PR_SET_CHILD_SUBREAPER, 1)
        main = os.fork()
        if main == 0:
            os.close(fds[2])
            run_payload(req, tier, fds[0], fds[1], abi, in_fd)
        if tier == "landlock":
            enforced += ["no-new-privs", "seccomp", "subreaper-kill"]
        else:
            enforced += ["subreaper-kill"]
    if abi and tier != "none":
        enforced.append(f"landlock-abi-{abi}")
    enforced += ["memory-watchdog", "process-count-watchdog"]
    return main, ns_link, status_r


def _watch(main: int, ns_link: str | None, policy: dict[str, Any], start: float) -> str | None:
    """Wait for the run to end; the limit it broke first (``timed_out``,
    ``memory_exceeded``, ``processes_exceeded``), when it did."""
    pidfd = os.pidfd_open(main)
    deadline = start + float(policy["timeout"])
    limit = int(policy["memory"])
    max_procs = int(policy["max_processes"])
    first_check = start + FIRST_WATCH
    while True:
        now = time.monotonic()
        wait = max(0.0, min(deadline, max(first_check, now + WATCH_INTERVAL)) - now)
        ready, _, _ = select.select([pidfd], [], [], wait)
        if ready:
            return None
        now = time.monotonic()
        if now >= deadline:
            return "timed_out"
        table = _procs.proc_table()
        pids = [p for p in _procs.sandbox_pids(table, main, ns_link) if p in table]
        if sum(table[p][1] for p in pids) > limit:
            return "memory_exceeded"
        if len(pids) > max_procs + 1:  # + init
            return "processes_exceeded"


def _read_all(fd: int) -> bytes:
    raw = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return raw
        raw += chunk


def supervise(req: dict[str, Any], fds: list[int], abi: int) -> NoReturn:
    """Run one request to its end and write the result to its result pipe; never returns.

    `fds` are stdout, stderr and the result pipe, and optionally the run's stdin."""
    out_fd, err_fd, result_fd = fds[:3]
    in_fd = fds[3] if len(fds) > 3 else None
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    policy = req["policy"]
    enforced: list[str] = ["rlimits", "timeout"]
    start = time.monotonic()
    cgroup = _procs.enter_pids_cgroup(int(policy["max_processes"]) + 2)  # + supervisor, init
    if cgroup is not None:
        enforced.append("pids-cgroup")
    try:
        main, ns_link, status_r = _start(req, fds, abi, in_fd, enforced)
    except BaseException as exc:
        _exit_with(result_fd, {"error": f"sandbox setup failed: {exc}"})
    os.close(out_fd)
    os.close(err_fd)
    if in_fd is not None:
        os.close(in_fd)  # only the payload holds the run's end of its channel

    broken = _watch(main, ns_link, policy, start)
    if broken is not None:
        with contextlib.suppress(OSError):
            os.kill(main, signal.SIGKILL)
    _, status = os.waitpid(main, 0)
    duration = time.monotonic() - start
    if ns_link is None:
        # no pid namespace: hunt down every descendant (re-parented to us, the subreaper)
        _procs.reap_descendants()
    result: dict[str, Any] = {
        "timed_out": broken == "timed_out",
        "memory_exceeded": broken == "memory_exceeded",
        "processes_exceeded": broken == "processes_exceeded",
        "duration": duration,
        "enforced": enforced,
    }
    if ns_link is not None:
        raw = _read_all(status_r)
        info = json.loads(raw) if raw else {}
        if "error" in info:
            result["error"] = info["error"]
        status = info.get("status", status)
    if broken is not None:
        result["signal"] = signal.SIGKILL
    elif os.WIFSIGNALED(status):
        result["signal"] = os.WTERMSIG(status)
    else:
        result["exit_code"] = os.WEXITSTATUS(status)
    with contextlib.suppress(OSError):
        os.write(result_fd, json.dumps(result).encode())
        os.close(result_fd)  # the caller has its answer; tidy up after
    if cgroup is not None:
        _procs.leave_cgroup(cgroup)
    os._exit(0)
