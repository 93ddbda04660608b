"""The processes of one run as the supervisor sees them: the pids cgroup that caps
their number, the /proc table its watchdog samples, and the hunt for descendants
left behind. Imports nothing but the standard library's os-level modules: it runs
in the fork server's forked supervisors (see :mod:`forkman.sandbox._child`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

# ---- pids cgroup -------------------------------------------------------------


def own_cgroup_base() -> str | None:
    """A pids-controlled cgroup directory this process may create children in."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _hier, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            base = "/sys/fs/cgroup/pids" + path.rstrip("/")
            if os.access(base, os.W_OK):
                return base
        if controllers == "":
            base = "/sys/fs/cgroup" + path.rstrip("/")
            try:
                with open(base + "/cgroup.subtree_control") as f:
                    if "pids" in f.read().split() and os.access(base, os.W_OK):
                        return base
            except OSError:
                pass
    return None


def enter_pids_cgroup(limit: int) -> tuple[str, str] | None:
    """Move this process into a fresh cgroup with pids.max = `limit`, when allowed."""
    base = own_cgroup_base()
    if base is None:
        return None
    path = f"{base}/forkman-sandbox-{os.getpid()}"
    try:
        os.mkdir(path)
        with open(path + "/pids.max", "w") as f:
            f.write(str(limit))
        with open(path + "/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
    except OSError:
        with contextlib.suppress(OSError):
            os.rmdir(path)
        return None
    return base, path


def leave_cgroup(cg: tuple[str, str]) -> None:
    """Move back to the parent cgroup and remove ours once its processes are gone."""
    base, path = cg
    with contextlib.suppress(OSError), open(base + "/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
    for _ in range(200):
        try:
            os.rmdir(path)
            return
        except OSError:
            time.sleep(0.005)


def proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, rss bytes, pid-namespace link) for every visible process."""
    table: dict[int, tuple[int, int, str]] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2 :].split()
            ppid, rss = int(fields[1]), int(fields[21]) * page
            ns = os.readlink(f"/proc/{entry}/ns/pid")
        except (OSError, ValueError, IndexError):
            continue
        table[int(entry)] = (ppid, rss, ns)
    return table


def descendants(table: dict[int, tuple[int, int, str]], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def sandbox_pids(table: dict[int, tuple[int, int, str]], root: int, ns: str | None) -> list[int]:
    if ns is not None:
        return [pid for pid, (_, _, n) in table.items() if n == ns]
    return [root, *descendants(table, root)]


def reap_descendants() -> None:
    """Kill and reap every descendant of this process (re-parented to it, a subreaper)."""
    for _ in range(50):
        table = proc_table()
        rest = descendants(table, os.getpid())
        if not rest:
            break
        for p in rest:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        time.sleep(0.001)
