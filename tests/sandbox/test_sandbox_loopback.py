"""The sandbox's private loopback: the suite's own servers work, the host stays apart.

``lo`` is brought up in the sandbox's own network namespace; the host's 127.0.0.1
is another interface in another namespace. Each test proves the separation from
both sides with real sockets, real servers on the host and the real sandbox.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from forkman.sandbox import ForkServer, RunResult, SandboxPolicy, Tier

pytestmark = pytest.mark.sandbox

INSIDE_SERVER = """
import socket, threading
results = []
for family, host in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):
    try:
        srv = socket.socket(family, socket.SOCK_STREAM)
        srv.bind((host, 0))
    except OSError as exc:
        print('no', host, exc)
        continue
    srv.listen(1)
    port = srv.getsockname()[1]
    def serve():
        conn, _ = srv.accept()
        conn.sendall(b'pong')
        conn.close()
    t = threading.Thread(target=serve)
    t.start()
    c = socket.create_connection((host, port), timeout=5)
    print('REACHED', host, c.recv(4).decode())
    t.join()
"""


def test_a_server_inside_the_sandbox_is_reachable_from_inside(
    server: ForkServer, tmp_path: Path
) -> None:
    r = server.run(
        [sys.executable, "-c", INSIDE_SERVER], SandboxPolicy(writable=(tmp_path,), loopback=True)
    )
    out = r.stdout.decode()
    assert r.exit_code == 0, r
    assert "REACHED 127.0.0.1 pong" in out, r
    assert "private-loopback" in r.enforced and "net-namespace" in r.enforced


class HostServer:
    """A TCP server on the host's 127.0.0.1 that answers a secret and counts its callers."""

    def __init__(self) -> None:
        self.secret = uuid.uuid4().hex.encode()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            with conn:
                conn.sendall(self.secret)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.mark.parametrize("tier", [Tier.NAMESPACES, Tier.LANDLOCK])
def test_a_server_on_the_hosts_loopback_is_not_reachable_with_loopback_on(
    server: ForkServer, tmp_path: Path, tier: Tier
) -> None:
    host = HostServer()
    try:
        # the proof works: the host's own client reaches it
        with socket.create_connection(("127.0.0.1", host.port), timeout=5) as c:
            assert c.recv(64) == host.secret
        before = host.accepted
        code = (
            "import socket\ntry:\n"
            f"    c = socket.create_connection(('127.0.0.1', {host.port}), timeout=5)\n"
            "    print('GOT', c.recv(64).decode())\nexcept OSError as exc:\n"
            "    print('blocked:', exc)\n"
        )
        if tier is Tier.LANDLOCK and server.support.landlock_abi < 4:
            pytest.skip("landlock TCP rules need ABI 4+")
        r = server.run(
            [sys.executable, "-c", code],
            SandboxPolicy(writable=(tmp_path,), loopback=True, min_tier=tier),
            tier=tier,
        )
    finally:
        host.close()
    out = r.stdout.decode()
    assert host.secret.decode() not in out, r
    assert "blocked:" in out, r
    assert host.accepted == before, "the host's server saw a connection from the sandbox"
    if tier is Tier.LANDLOCK:
        # no network namespace, hence no private loopback: IP sockets stay refused
        assert "Network is unreachable" in out, r
        assert "private-loopback" not in r.enforced
    else:
        assert "Connection refused" in out, r


SANDBOX_LISTENER = """
import os, socket, time
srv = socket.socket()
srv.bind(('127.0.0.1', 0))
srv.listen(8)
srv.settimeout(0.1)
open('{scratch}/port.tmp', 'w').write(str(srv.getsockname()[1]))
os.rename('{scratch}/port.tmp', '{scratch}/port')
end = time.monotonic() + 20
while time.monotonic() < end and not os.path.exists('{scratch}/done'):
    try:
        conn, _ = srv.accept()
    except OSError:
        continue
    conn.sendall(b'{secret}')
    print('ACCEPTED')
    conn.close()
"""


def test_a_server_inside_the_sandbox_is_not_reachable_from_the_host(
    server: ForkServer, tmp_path: Path
) -> None:
    secret = uuid.uuid4().hex
    code = SANDBOX_LISTENER.format(scratch=tmp_path, secret=secret)
    results: list[RunResult] = []
    runner = threading.Thread(
        target=lambda: results.append(
            server.run(
                [sys.executable, "-c", code], SandboxPolicy(writable=(tmp_path,), loopback=True)
            )
        )
    )
    runner.start()
    got = b""
    try:
        port_file = tmp_path / "port"
        for _ in range(400):
            if port_file.exists() or not runner.is_alive():
                break
            time.sleep(0.05)
        assert port_file.exists(), results
        port = int(port_file.read_text())
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2) as c:
            got = c.recv(64)
    finally:
        (tmp_path / "done").write_text("")
        runner.join()
    [r] = results
    assert secret.encode() not in got
    assert "ACCEPTED" not in r.stdout.decode(), r
    assert r.exit_code == 0, r


def test_loopback_off_refuses_every_ip_socket(server: ForkServer, tmp_path: Path) -> None:
    r = server.run(
        [sys.executable, "-c", INSIDE_SERVER], SandboxPolicy(writable=(tmp_path,), loopback=False)
    )
    out = r.stdout.decode()
    assert "REACHED" not in out, r
    assert "Network is unreachable" in out, r
    assert "private-loopback" not in r.enforced
