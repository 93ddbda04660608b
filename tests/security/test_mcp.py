"""Red team: code sent to `forkman mcp`'s execute tries to leave the sandbox or misuse `fm`.

Each attack goes through the real MCP client and the real server process;
the test then looks at what the host has: files, the project, the record,
and whether the server still answers the next call.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import anyio
import pytest

from tests.support.cli import snapshot
from tests.support.index import LocalIndex
from tests.support.mcp import agent
from tests.support.series import make_series

pytestmark = pytest.mark.sandbox


@pytest.fixture
def series(cwd: Path, local_index: LocalIndex) -> Path:
    make_series(cwd, local_index)
    return cwd


def _project(root: Path) -> dict[str, str]:
    return {
        k: v for k, v in snapshot(root, skip=(".git",)).items() if not k.startswith(".forkman/")
    }


class Listener:
    """A TCP server of the host on 127.0.0.1 that records every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_code_cannot_reach_the_network_home_or_the_project(series: Path, tmp_path: Path) -> None:
    home = Path.home()
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    (home / ".ssh" / "id_ed25519").write_text("SECRET-KEY\n")
    listener = Listener()
    before = _project(series)

    async def scenario() -> None:
        async with agent(series, "--timeout", "3", env={"GITHUB_TOKEN": "ghp_SECRET"}) as a:
            # the host's own loopback service and the outside world
            answer = await a.execute(
                "import socket\n"
                f"s = socket.create_connection(('127.0.0.1', {listener.port}), timeout=2)\n"
                "return 'connected'"
            )
            assert answer.is_error and "connected" not in answer.data.get("result", "")
            answer = await a.execute(
                "import socket\nsocket.create_connection(('1.1.1.1', 443), timeout=2)"
            )
            assert answer.is_error, answer.text
            # secrets in home and in the environment
            answer = await a.execute(f"return open({str(home / '.ssh' / 'id_ed25519')!r}).read()")
            assert answer.is_error and "SECRET-KEY" not in answer.text
            answer = await a.execute("import os\nreturn dict(os.environ)")
            assert "ghp_SECRET" not in answer.text
            # the project is read-only (it is readable: a conflict's markers can be read)
            answer = await a.execute(
                f"open({str(series / 'pwned.py')!r}, 'w').write('x')\nreturn 'written'"
            )
            assert answer.is_error and "Read-only file system" in answer.text
            answer = await a.execute(
                f"open({str(series / 'vendor/demo/a.py')!r}, 'a').write('evil')"
            )
            assert answer.is_error
            answer = await a.execute(f"return open({str(series / 'pyproject.toml')!r}).read()")
            assert "consumer" in answer.data["result"]
            # the fork server's channel is the only door: no other descriptor is open
            answer = await a.execute(
                "import os\nreturn sorted(int(f) for f in os.listdir('/proc/self/fd'))"
            )
            assert [fd for fd in answer.data["result"] if fd > 2] in ([], [3])  # 3: listdir's own
            # the server still serves
            answer = await a.execute("return 'still here'")
            assert answer.data["result"] == "still here"

    try:
        anyio.run(scenario)
    finally:
        listener.close()
    assert listener.connections == 0
    assert _project(series) == before
    assert not (series / "pwned.py").exists()


def test_fm_refuses_paths_out_of_the_project_and_unsafe_arguments(series: Path) -> None:
    outside = series.parent / "outside.patch"
    outside.write_text("--- a/x\n+++ b/x\n")
    before = _project(series)

    async def scenario() -> None:
        async with agent(series, "--allow-writes") as a:
            attacks = {
                "fm.read_file('demo', '../../pyproject.toml')": "BadInput",
                "fm.read_file('demo', '/etc/passwd')": "BadInput",
                "fm.write_file('demo', '../../../evil.py', 'x')": "BadInput",
                f"fm.import_patches('demo', [{str(outside)!r}])": "BadInput",
                "fm.import_patches('demo', ['../outside.patch'])": "BadInput",
                "fm.audit(database='../../etc/passwd')": "BadInput",
                "fm.provenance('demo', attestation='/etc/passwd')": "BadInput",
                "fm.patches('../demo')": "NotFound",
                "fm.fork('git+file:///etc')": "BadInput",
                "fm.fork('demo @ file:///etc/passwd')": "BadInput",
                "fm.fork('demo', name='../../x')": "BadInput",
                "fm.test('demo', no_sandbox=True)": "SecurityError",
                "fm.sync('demo', confirm='lambda r: True')": "BadInput",
            }
            for code, kind in attacks.items():
                answer = await a.execute(code)
                assert answer.is_error, (code, answer.text)
                assert answer.data["error"]["type"] == kind, (code, answer.text)
            answer = await a.execute("return fm.forks()[0].name")
            assert answer.data["result"] == "demo"

    anyio.run(scenario)
    assert _project(series) == before


def test_code_that_spins_or_floods_is_stopped_and_the_server_goes_on(series: Path) -> None:
    async def scenario() -> None:
        async with agent(series, "--timeout", "2") as a:
            answer = await a.execute("while True:\n    pass")
            assert answer.is_error
            assert answer.data["error"]["type"] == "TimeoutError"
            answer = await a.execute(
                "import os\nfor _ in range(5):\n    os.fork()\nwhile True:\n    pass"
            )
            assert answer.is_error
            # a call that never reads its answers, and thousands of calls
            answer = await a.execute("n = 0\nwhile True:\n    fm.forks()\n    n += 1")
            assert answer.is_error, answer.text
            assert "more than 500 API calls" in answer.text or "TimeoutError" in answer.text
            answer = await a.execute("return [f.name for f in fm.forks()]")
            assert answer.data["result"] == ["demo"]

    anyio.run(scenario)


def test_writes_are_never_performed_without_approval(series: Path) -> None:
    """A read-only server records writes as plans; forging frames on the channel does not
    get past the gate either (the host checks every call, whoever sends it)."""
    before = _project(series)

    async def scenario() -> None:
        async with agent(series) as a:
            answer = await a.execute(
                "import json, socket, struct\n"
                "s = socket.socket(fileno=0)\n"
                "frame = json.dumps({'call': 'unfork', 'args': ['demo'], 'kwargs': {}}).encode()\n"
                "s.sendall(struct.pack('>I', len(frame)) + frame)\n"
                "size, = struct.unpack('>I', s.recv(4))\n"
                "reply = json.loads(s.recv(size))\n"
                "s.detach()\n"
                "return reply"
            )
            assert not answer.is_error, answer.text
            assert answer.data["result"]["value"]["status"] == "pending"
            for code in (
                "fm.restore('demo')",
                "fm.unfork('demo')",
                "fm.patch('demo', 'x')",
                "fm.write_file('demo', 'a.py', 'x')",
                "fm.review('demo', record=True)",
            ):
                answer = await a.execute(code)
                assert not answer.is_error, (code, answer.text)
                assert answer.data.get("pending_plans"), (code, answer.text)

    anyio.run(scenario)
    assert _project(series) == before
