"""The containment battery: every attack runs on the host (to prove it works) and
then in the real sandbox (to prove it is stopped).

An attack is a Python snippet that prints ``ESCAPED`` when it got through.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from forkman.sandbox import ForkServer, RunResult, SandboxPolicy, Tier

pytestmark = pytest.mark.sandbox

MiB = 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parents[2]


def _primary_address(family: int, probe: str) -> str | None:
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((probe, 9))
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if addr in ("127.0.0.1", "::1") else str(addr)


class Listeners:
    """TCP and UDP servers on the host's loopback and other addresses, answering b'pong'."""

    def __init__(self) -> None:
        self.socks: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.stop = threading.Event()

    def tcp(self, family: int, host: str) -> int:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.bind((host, 0))
        s.listen(16)
        s.settimeout(0.2)
        self.socks.append(s)

        def loop() -> None:
            while not self.stop.is_set():
                try:
                    conn, _ = s.accept()
                except OSError:
                    continue
                with conn:
                    conn.sendall(b"pong")

        self._spawn(loop)
        return int(s.getsockname()[1])

    def udp(self, family: int, host: str, answer: Callable[[bytes], bytes] | None = None) -> int:
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((host, 0))
        s.settimeout(0.2)
        self.socks.append(s)

        def loop() -> None:
            while not self.stop.is_set():
                try:
                    data, peer = s.recvfrom(4096)
                except OSError:
                    continue
                s.sendto(answer(data) if answer else b"pong", peer)

        self._spawn(loop)
        return int(s.getsockname()[1])

    def unix(self, path: str) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(4)
        s.settimeout(0.2)
        self.socks.append(s)

        def loop() -> None:
            while not self.stop.is_set():
                try:
                    conn, _ = s.accept()
                except OSError:
                    continue
                with conn:
                    conn.sendall(b"pong")

        self._spawn(loop)

    def _spawn(self, fn: Callable[[], None]) -> None:
        t = threading.Thread(target=fn, daemon=True)
        t.start()
        self.threads.append(t)

    def close(self) -> None:
        self.stop.set()
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self.threads:
            t.join(2)


def _dns_answer(query: bytes) -> bytes:
    # a minimal DNS response: same id and question, one A record 10.6.6.6
    qid, question = query[:2], query[12:]
    header = qid + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
    answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([10, 6, 6, 6])
    return header + question + answer


@dataclass
class Targets:
    """Everything the attacks aim at, created on the host."""

    values: dict[str, Any] = field(default_factory=dict)
    skips: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Targets]:
    t = Targets()
    v = t.values
    lst = Listeners()
    v["tcp4_lo"] = lst.tcp(socket.AF_INET, "127.0.0.1")
    v["udp4_lo"] = lst.udp(socket.AF_INET, "127.0.0.1")
    v["dns_port"] = lst.udp(socket.AF_INET, "127.0.0.1", _dns_answer)
    try:
        v["tcp6_lo"] = lst.tcp(socket.AF_INET6, "::1")
    except OSError as exc:
        t.skips["tcp6_lo"] = f"no IPv6 loopback: {exc}"
    addr4 = _primary_address(socket.AF_INET, "192.0.2.1")
    if addr4:
        v["addr4"] = addr4
        v["tcp4_other"] = lst.tcp(socket.AF_INET, addr4)
        v["udp4_other"] = lst.udp(socket.AF_INET, addr4)
    else:
        t.skips["addr4"] = "the host has no non-loopback IPv4 address"
    addr6 = _primary_address(socket.AF_INET6, "2001:db8::1")
    if addr6:
        v["addr6"] = addr6
        v["tcp6_other"] = lst.tcp(socket.AF_INET6, addr6)
    else:
        t.skips["addr6"] = "the host has no non-loopback IPv6 address"
    v["abstract"] = f"forkman-test-{uuid.uuid4().hex}"
    lst.unix("\0" + v["abstract"])
    sock_dir = tmp_path / "sockets"
    sock_dir.mkdir()
    v["unix_tmp"] = str(sock_dir / "agent.sock")
    lst.unix(v["unix_tmp"])
    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir(exist_ok=True)
    (home / ".ssh" / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY----- fake\n")
    (home / ".netrc").write_text("machine example.com login me password hunter2\n")
    v["home"] = str(home)
    v["unix_home"] = str(home / "gpg-agent.sock")
    lst.unix(v["unix_home"])
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_forkmantestsecret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-forkman-test-secret")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    v["scratch"] = str(scratch)
    vendor = tmp_path / "consumer" / "vendor" / "victim"
    vendor.mkdir(parents=True)
    v["vendor"] = str(vendor)
    v["marker"] = uuid.uuid4().hex
    v["host_pid"] = os.getpid()
    v["repo"] = str(REPO_ROOT)
    try:
        yield t
    finally:
        lst.close()
        with contextlib.suppress(FileNotFoundError):
            (REPO_ROOT / f".attack-{v['marker']}").unlink()
        with contextlib.suppress(FileNotFoundError):
            Path(f"/tmp/forkman-attack-{v['marker']}").unlink()


@dataclass(frozen=True)
class Attack:
    """One attack: its code, what stops it, and how its success shows."""

    name: str
    code: str
    stopped_by: str
    needs: tuple[str, ...] = ()
    policy: dict[str, Any] = field(default_factory=dict)
    host_check: Callable[[Targets, subprocess.CompletedProcess[str]], bool] | None = None
    sandbox_check: Callable[[Targets, RunResult], None] | None = None


NET_HELPERS = """
import socket, sys
def tcp(family, host, port):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect((host, port))
    if s.recv(4) == b"pong":
        print("ESCAPED")
def udp(family, host, port, data=b"ping"):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(data, (host, port))
    if s.recv(512):
        print("ESCAPED")
"""


def _net(call: str) -> str:
    return NET_HELPERS + f"try:\n    {call}\nexcept OSError as exc:\n    print('blocked:', exc)\n"


def _proc_dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1].startswith("Z")
    return False


ATTACKS: list[Attack] = [
    Attack(
        "tcp-ipv4-loopback",
        _net("tcp(socket.AF_INET, '127.0.0.1', {tcp4_lo})"),
        "net namespace (its loopback is private); without loopback also seccomp (socket)"
        " + landlock TCP",
    ),
    Attack(
        "tcp-ipv4-host-address",
        _net("tcp(socket.AF_INET, '{addr4}', {tcp4_other})"),
        "net namespace (its loopback is private); without loopback also seccomp (socket)",
        needs=("addr4",),
    ),
    Attack(
        "tcp-ipv6-loopback",
        _net("tcp(socket.AF_INET6, '::1', {tcp6_lo})"),
        "net namespace (its loopback is private); without loopback also seccomp (socket)",
        needs=("tcp6_lo",),
    ),
    Attack(
        "tcp-ipv6-host-address",
        _net("tcp(socket.AF_INET6, '{addr6}', {tcp6_other})"),
        "net namespace (its loopback is private); without loopback also seccomp (socket)",
        needs=("addr6",),
    ),
    Attack(
        "udp-ipv4-loopback",
        _net("udp(socket.AF_INET, '127.0.0.1', {udp4_lo})"),
        "net namespace (its loopback is private); without loopback also seccomp (socket)",
    ),
    Attack(
        "udp-ipv4-host-address",
        _net("udp(socket.AF_INET, '{addr4}', {udp4_other})"),
        "net namespace (its loopback is private); without loopback also seccomp (socket)",
        needs=("addr4",),
    ),
    Attack(
        "dns-raw-udp",
        _net(
            "udp(socket.AF_INET, '127.0.0.1', {dns_port}, "
            "b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00"
            "\\x04pypi\\x03org\\x00\\x00\\x01\\x00\\x01')"
        ),
        "net namespace (its loopback is private); without loopback also seccomp (socket)",
    ),
    Attack(
        "dns-resolver",
        "import socket\ntry:\n    socket.getaddrinfo('pypi.org', 443)\n    print('ESCAPED')\n"
        "except OSError as exc:\n    print('blocked:', exc)\n",
        "net namespace (its loopback is private); without loopback also seccomp (socket)",
        needs=("resolver",),
    ),
    Attack(
        "abstract-unix-socket",
        "import socket\ntry:\n    s = socket.socket(socket.AF_UNIX)\n"
        "    s.connect('\\0{abstract}')\n"
        "    print('ESCAPED' if s.recv(4) == b'pong' else 'no')\nexcept OSError as exc:\n"
        "    print('blocked:', exc)\n",
        "net namespace + landlock scope",
    ),
    Attack(
        "pathname-unix-socket-in-tmp",
        "import socket\ntry:\n    s = socket.socket(socket.AF_UNIX)\n    s.connect('{unix_tmp}')\n"
        "    print('ESCAPED' if s.recv(4) == b'pong' else 'no')\nexcept OSError as exc:\n"
        "    print('blocked:', exc)\n",
        "tmpfs over /tmp",
    ),
    Attack(
        "pathname-unix-socket-in-home",
        "import socket\ntry:\n    s = socket.socket(socket.AF_UNIX)\n    s.connect('{unix_home}')\n"
        "    print('ESCAPED' if s.recv(4) == b'pong' else 'no')\nexcept OSError as exc:\n"
        "    print('blocked:', exc)\n",
        "tmpfs over HOME",
    ),
    Attack(
        "read-ssh-key-and-netrc",
        "try:\n    print(open('{home}/.ssh/id_ed25519').read(), open('{home}/.netrc').read())\n"
        "    print('ESCAPED')\nexcept OSError as exc:\n    print('blocked:', exc)\n",
        "tmpfs over HOME",
    ),
    Attack(
        "list-real-home",
        "import os, sys\nhome = os.path.realpath(os.path.expanduser('~' + __import__('pwd')"
        ".getpwuid(os.getuid()).pw_name)) if os.getuid() == 0 else '/root'\n"
        "home = '/root'\ntry:\n    names = set(os.listdir(home)) - {{'.pyenv'}}\n"
        "    print('ESCAPED' if names else 'empty')\nexcept OSError as exc:\n"
        "    print('blocked:', exc)\n",
        "tmpfs over /root and /home (interpreter bound back read-only)",
        needs=("real_home_content",),
    ),
    Attack(
        "env-secrets",
        "import os\nfor k in ('GITHUB_TOKEN', 'AWS_SECRET_ACCESS_KEY'):\n"
        "    if os.environ.get(k):\n        print('ESCAPED', os.environ[k])\n",
        "environment allow-list",
    ),
    Attack(
        "proc-host-pid-environ",
        "try:\n    data = open('/proc/{victim_pid}/environ', 'rb').read()\n"
        "    print('ESCAPED' if b'ghp_forkmantestsecret' in data else 'other process')\n"
        "except OSError as exc:\n    print('blocked:', exc)\n",
        "pid namespace + private /proc",
        needs=("victim",),
    ),
    Attack(
        "proc-pid-root-escape",
        "found = False\nfor pid in (1, {victim_pid}):\n    try:\n"
        "        open(f'/proc/{{pid}}/root{home}/.ssh/id_ed25519').read()\n        found = True\n"
        "    except OSError as exc:\n        print('blocked:', exc)\n"
        "if found:\n    print('ESCAPED')\n",
        "pid namespace (pid 1 is the sandbox's init) + tmpfs over HOME",
        needs=("victim",),
    ),
    Attack(
        "write-host-tmp",
        "try:\n    open('/tmp/forkman-attack-{marker}', 'w').write('x')\nexcept OSError as exc:\n"
        "    print('blocked:', exc)\n",
        "tmpfs over /tmp (writes land in the sandbox's private tmpfs)",
        host_check=lambda t, p: Path(f"/tmp/forkman-attack-{t.values['marker']}").exists(),
    ),
    Attack(
        "write-forks-real-directory",
        "try:\n    open('{vendor}/__init__.py', 'w').write('import os')\nexcept OSError as exc:\n"
        "    print('blocked:', exc)\n",
        "read-only root / tmpfs + landlock write rules",
        host_check=lambda t, p: Path(t.values["vendor"], "__init__.py").exists(),
    ),
    Attack(
        "write-project",
        "try:\n    open('{repo}/.attack-{marker}', 'w').write('x')\nexcept OSError as exc:\n"
        "    print('blocked:', exc)\n",
        "read-only root mount + landlock write rules",
        host_check=lambda t, p: Path(t.values["repo"], f".attack-{t.values['marker']}").exists(),
    ),
    Attack(
        "fork-bomb",
        "import os, time\nn = 0\nfor _ in range(200):\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n"
        "        time.sleep(1.5)\n        os._exit(0)\n"
        "    n += 1\nprint('forked', n)\nif n >= 200:\n    print('ESCAPED')\n",
        "RLIMIT_NPROC (unprivileged users) + pids cgroup or process-count watchdog"
        " (root is exempt from RLIMIT_NPROC)",
        policy={"max_processes": 32},
    ),
    Attack(
        "memory-hog",
        "try:\n    b = b'x' * (600 * 1024 * 1024)\n    print('ESCAPED')\nexcept MemoryError:\n"
        "    print('blocked: MemoryError')\n",
        "RLIMIT_AS",
        policy={"memory": 256 * MiB},
    ),
    Attack(
        "memory-hog-split-across-children",
        "import os, time\npids = []\nfor i in range(4):\n    pid = os.fork()\n    if pid == 0:\n"
        "        b = b'x' * (180 * 1024 * 1024)\n        time.sleep(1.5)\n        os._exit(0)\n"
        "    pids.append(pid)\nok = all(os.waitpid(p, 0)[1] == 0 for p in pids)\n"
        "print('ESCAPED' if ok else 'a child failed')\n",
        "memory watchdog (total RSS of the pid namespace)",
        policy={"memory": 256 * MiB},
        sandbox_check=lambda t, r: _assert(r.memory_exceeded, "watchdog did not fire"),
    ),
    Attack(
        "cpu-burn",
        "import time\nend = time.process_time() + 1.5\nwhile time.process_time() < end:\n    pass\n"
        "print('ESCAPED')\n",
        "RLIMIT_CPU (SIGXCPU)",
        policy={"cpu_seconds": 1, "timeout": 20},
        sandbox_check=lambda t, r: _assert(
            r.signal in (signal.SIGXCPU, signal.SIGKILL) and not r.timed_out, f"{r}"
        ),
    ),
    Attack(
        "file-size-bomb",
        "try:\n    with open('big', 'wb') as f:\n        for _ in range(64):\n"
        "            f.write(b'x' * 1024 * 1024)\n    print('ESCAPED')\nexcept OSError as exc:\n"
        "    print('blocked:', exc)\n",
        "RLIMIT_FSIZE",
        policy={"max_file_size": 8 * MiB},
    ),
    Attack(
        "disk-fill",
        "import os\nwritten = 0\ntry:\n"
        "    d = os.environ.get('TMPDIR', '/tmp')\n    for i in range(32):\n"
        "        with open(os.path.join(d, f'fill{{i}}'), 'wb') as f:\n"
        "            f.write(b'x' * 4 * 1024 * 1024)\n        written += 4\n    print('ESCAPED')\n"
        "except OSError as exc:\n    print('blocked after', written, 'MiB:', exc)\n"
        "finally:\n    for i in range(32):\n        try:\n"
        "            os.unlink(os.path.join(d, f'fill{{i}}'))\n"
        "        except OSError:\n            pass\n",
        "tmpfs size limit",
        policy={"tmpfs_size": 32 * MiB},
    ),
    Attack(
        "setsid-orphan-outlives-timeout",
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        open('{scratch}/orphan.pid', 'w').write(str(os.getpid()))\n"
        "        time.sleep(1.5)\n        open('{scratch}/orphan.marker', 'w').write('alive')\n"
        "        os._exit(0)\n    os._exit(0)\ntime.sleep(0.2)\nif '{timeout_mode}' == 'sandbox':\n"
        "    time.sleep(30)\n",
        "pid namespace (init exits, the kernel kills the namespace)",
        policy={"timeout": 1.0},
        host_check=lambda t, p: _wait_for(Path(t.values["scratch"], "orphan.marker").exists, 5),
        sandbox_check=lambda t, r: _check_orphan(t, r),
    ),
    Attack(
        "signal-host-process",
        "import os, signal\ntry:\n    os.kill({victim_pid}, signal.SIGKILL)\n    print('sent')\n"
        "except OSError as exc:\n    print('blocked:', exc)\n",
        "pid namespace + landlock signal scope",
        needs=("victim",),
        host_check=lambda t, p: _wait_for(lambda: _proc_dead(t.values["victim_pid"]), 3),
    ),
    Attack(
        "ptrace-host-process",
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "r = libc.ptrace(16, {victim_pid}, 0, 0)\nif r == 0:\n    print('ESCAPED')\n"
        "    import time; time.sleep(0.1)\n    libc.ptrace(17, {victim_pid}, 0, 0)\n"
        "else:\n    print('blocked: errno', ctypes.get_errno())\n",
        "seccomp (ptrace) + pid namespace",
        needs=("victim", "root"),
    ),
    Attack(
        "mount-tmpfs",
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "if libc.unshare(0x10000000 | 0x00020000) != 0:\n    print('blocked: unshare errno', "
        "ctypes.get_errno())\nelif libc.mount(b'none', b'{scratch}', b'tmpfs', 0, None) == 0:\n"
        "    print('ESCAPED')\nelse:\n    print('blocked: mount errno', ctypes.get_errno())\n",
        "seccomp (unshare, mount) + no capabilities",
    ),
    Attack(
        "mount-direct",
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "if libc.mount(b'none', b'{scratch}', b'tmpfs', 0, None) == 0:\n    print('ESCAPED')\n"
        "    libc.umount2(b'{scratch}', 2)\nelse:\n"
        "    print('blocked: mount errno', ctypes.get_errno())\n",
        "seccomp (mount) + no capabilities",
        needs=("root",),
    ),
    Attack(
        "nested-user-namespace",
        "import subprocess\nr = subprocess.run(['unshare', '-r', 'true'], capture_output=True)\n"
        "print('ESCAPED' if r.returncode == 0 else 'blocked: ' + r.stderr.decode())\n",
        "seccomp (unshare, clone with CLONE_NEWUSER)",
        needs=("unshare_bin",),
    ),
    Attack(
        "io-uring",
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "params = ctypes.create_string_buffer(120)\n"
        "fd = libc.syscall(425, 8, params)\nprint('ESCAPED' if fd >= 0 else 'blocked: errno %d' % "
        "ctypes.get_errno())\n",
        "seccomp (io_uring_setup)",
        needs=("io_uring",),
    ),
    Attack(
        "bpf-map",
        "import ctypes, struct\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "attr = ctypes.create_string_buffer(struct.pack('IIII', 2, 4, 4, 1), 128)\n"
        "fd = libc.syscall(321, 0, attr, 128)\n"
        "print('ESCAPED' if fd >= 0 else 'blocked: errno %d' % "
        "ctypes.get_errno())\n",
        "seccomp (bpf)",
        needs=("root",),
    ),
    Attack(
        "packet-socket",
        "import socket\ntry:\n"
        "    socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n    print('ESCAPED')\n"
        "except OSError as exc:\n    print('blocked:', exc)\n",
        "seccomp (socket family) + no capabilities",
        needs=("root",),
    ),
    Attack(
        "read-kernel-log-device",
        "try:\n    f = open('/dev/kmsg', 'rb')\n    print('ESCAPED')\nexcept OSError as exc:\n"
        "    print('blocked:', exc)\n",
        "private /dev with harmless nodes only",
        needs=("root",),
    ),
]


def _assert(cond: bool, message: str) -> None:
    assert cond, message


def _wait_for(pred: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def _check_orphan(t: Targets, r: RunResult) -> None:
    assert r.timed_out, r
    scratch = Path(t.values["scratch"])
    pid_file = scratch / "orphan.pid"
    assert pid_file.exists(), "the orphan never started (attack did not run)"
    time.sleep(2.0)  # longer than the orphan's own sleep
    assert not (scratch / "orphan.marker").exists(), "the setsid'd orphan outlived the run"


def _real_root() -> bool:
    """Root of the initial user namespace (not root inside `unshare -r`)."""
    if os.geteuid() != 0:
        return False
    try:
        first = Path("/proc/self/uid_map").read_text().split("\n")[0].split()
    except OSError:
        return False
    return first == ["0", "0", "4294967295"]


def _prepare(attack: Attack, t: Targets, victims: list[subprocess.Popen[bytes]]) -> None:
    for need in attack.needs:
        if need in t.skips:
            pytest.skip(t.skips[need])
        if need == "root" and not _real_root():
            pytest.skip("the unsandboxed proof of this attack needs root of the host")
        if need == "unshare_bin" and not Path("/usr/bin/unshare").exists():
            pytest.skip("util-linux unshare is not installed")
        if (
            need == "io_uring"
            and Path("/proc/sys/kernel/io_uring_disabled").exists()
            and (Path("/proc/sys/kernel/io_uring_disabled").read_text().strip() == "2")
        ):
            pytest.skip("io_uring is disabled on this host")
        if need == "real_home_content":
            try:
                names = set(os.listdir("/root")) - {".pyenv"}
            except OSError:
                names = set()
            if not names:
                pytest.skip("/root holds nothing but the interpreter: nothing to hide")
        if need == "resolver":
            try:
                socket.getaddrinfo("pypi.org", 443)
            except OSError:
                pytest.skip("the host itself cannot resolve names (no DNS)")


def _code(attack: Attack, t: Targets, mode: str) -> str:
    return attack.code.format(**t.values, timeout_mode=mode)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_works_on_host_and_is_stopped_in_sandbox(
    attack: Attack, targets: Targets, server: ForkServer
) -> None:
    _attack(attack, targets, server, Tier.NAMESPACES)


LANDLOCK_TIER_GAPS = {
    "pathname-unix-socket-in-tmp": "landlock does not restrict connect() on pathname sockets",
    "pathname-unix-socket-in-home": "landlock does not restrict connect() on pathname sockets",
    "disk-fill": "no private tmpfs without a mount namespace (the scratch copy is on disk)",
}
"""Attacks the landlock tier does not stop, as docs/sandbox.md says."""


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_in_landlock_tier(attack: Attack, targets: Targets, server: ForkServer) -> None:
    if server.support.landlock_abi < 6:
        pytest.skip("the landlock tier needs landlock ABI 6+ for these guarantees")
    if attack.name in LANDLOCK_TIER_GAPS:
        pytest.skip(f"documented gap of the landlock tier: {LANDLOCK_TIER_GAPS[attack.name]}")
    _attack(attack, targets, server, Tier.LANDLOCK)


def _attack(attack: Attack, targets: Targets, server: ForkServer, tier: Tier) -> None:
    victims: list[subprocess.Popen[bytes]] = []
    _prepare(attack, targets, victims)
    v = targets.values
    try:
        # 1. the attack works without the sandbox
        if "victim" in attack.needs:
            victim = subprocess.Popen(["sleep", "60"])
            victims.append(victim)
            v["victim_pid"] = victim.pid
        host = subprocess.run(
            [sys.executable, "-c", _code(attack, targets, "host")],
            capture_output=True,
            text=True,
            cwd=v["scratch"],
            timeout=60,
            env={**os.environ, "TMPDIR": v["scratch"]},
        )
        if attack.host_check is not None:
            assert attack.host_check(targets, host), f"attack failed on the host: {host}"
        else:
            assert "ESCAPED" in host.stdout, f"attack failed on the host: {host}"
        # reset what the proof changed
        for name in ("orphan.pid", "orphan.marker", "big", "__init__.py"):
            for d in (v["scratch"], v["vendor"]):
                with contextlib.suppress(FileNotFoundError):
                    Path(d, name).unlink()
        for path in (
            Path(f"/tmp/forkman-attack-{v['marker']}"),
            REPO_ROOT / f".attack-{v['marker']}",
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if "victim" in attack.needs:
            victims[0].wait(5) if attack.name == "signal-host-process" else None
            victim = subprocess.Popen(["sleep", "60"])
            victims.append(victim)
            v["victim_pid"] = victim.pid

        # 2. the same attack in the sandbox is stopped
        policy = replace(SandboxPolicy(writable=(Path(v["scratch"]),), timeout=30), **attack.policy)
        started = time.monotonic()
        policy = replace(policy, min_tier=tier)
        result = server.run(
            [sys.executable, "-c", _code(attack, targets, "sandbox")], policy, tier=tier
        )
        assert result.tier is tier
        elapsed = time.monotonic() - started
        out = result.stdout.decode(errors="replace")
        assert "ESCAPED" not in out, f"{attack.name} escaped ({attack.stopped_by}): {result}"
        assert elapsed < 25, f"{attack.name} took {elapsed:.1f}s: stopped by the timeout, not fast"
        if attack.host_check is not None and attack.sandbox_check is None:
            assert not attack.host_check(targets, subprocess.CompletedProcess([], 0, out, "")), (
                f"{attack.name}: the host saw the attack's effect: {result}"
            )
        if attack.sandbox_check is not None:
            attack.sandbox_check(targets, result)
        if "victim" in attack.needs:
            assert not _proc_dead(v["victim_pid"]), "the host process was killed from the sandbox"
    finally:
        for victim in victims:
            victim.kill()
            victim.wait()


def test_battery_has_at_least_25_attacks() -> None:
    assert len(ATTACKS) >= 25
    assert len({a.name for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize("loopback", [True, False], ids=["loopback", "no-loopback"])
def test_network_failures_are_fast_and_say_unreachable(
    server: ForkServer, tmp_path: Path, loopback: bool
) -> None:
    code = (
        "import socket, time\nfor host in ('192.0.2.1', '127.0.0.1'):\n"
        "    t = time.monotonic()\n    try:\n"
        "        socket.create_connection((host, 9), timeout=30)\n    except OSError as exc:\n"
        "        print(host, type(exc).__name__, exc, round(time.monotonic() - t, 3))\n"
    )
    r = server.run(
        [sys.executable, "-c", code], SandboxPolicy(writable=(tmp_path,), loopback=loopback)
    )
    remote, local = r.stdout.decode().splitlines()
    assert "Network is unreachable" in remote, r
    # the private loopback answers at once: nothing listens on it but the suite's own servers
    assert ("Connection refused" if loopback else "Network is unreachable") in local, r
    assert float(remote.split()[-1]) < 1.0 and float(local.split()[-1]) < 1.0


NETWORK_ATTACKS = [a for a in ATTACKS if "seccomp (socket)" in a.stopped_by]


@pytest.mark.parametrize("attack", NETWORK_ATTACKS, ids=[a.name for a in NETWORK_ATTACKS])
def test_network_attack_without_loopback(
    attack: Attack, targets: Targets, server: ForkServer
) -> None:
    """The battery runs with the default policy (a private loopback); without it, seccomp
    and landlock refuse every IP socket as well."""
    _attack(
        replace(attack, policy={**attack.policy, "loopback": False}),
        targets,
        server,
        Tier.NAMESPACES,
    )


def test_interpreter_and_venv_visible_but_not_writable(server: ForkServer, tmp_path: Path) -> None:
    code = (
        "import sys, os\nprint(sys.prefix)\ntry:\n"
        "    open(os.path.join(sys.base_prefix, 'x'), 'w')\n"
        "    print('WRITABLE')\nexcept OSError as exc:\n    print('ro', exc.errno)\n"
    )
    r = server.run([sys.executable, "-c", code], SandboxPolicy(writable=(tmp_path,)))
    assert r.exit_code == 0, r
    assert "WRITABLE" not in r.stdout.decode()
    assert sys.prefix in r.stdout.decode()
