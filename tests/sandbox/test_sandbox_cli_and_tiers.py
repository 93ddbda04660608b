"""The sandbox CLI, the tier vocabulary, the landlock-only tier and the library API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from forkman.cli import cli
from forkman.sandbox import ForkServer, SandboxPolicy, Tier, run

pytestmark = pytest.mark.sandbox


def test_tier_vocabulary_is_exhaustive() -> None:
    ranks = []
    for tier in Tier:
        assert Tier.parse(tier.value.upper()) is tier
        ranks.append(tier.rank)
    assert sorted(ranks) == list(range(len(Tier)))
    with pytest.raises(ValueError, match="unknown sandbox tier 'strong'"):
        Tier.parse("strong")


def test_doctor_reports_each_mechanism() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "doctor"], catch_exceptions=False)
    assert result.exit_code == 0
    for word in ("namespaces (user, net, mount, pid, ipc, uts)", "landlock", "seccomp", "tier: "):
        assert word in result.stdout


def _forkman(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-m", "forkman", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sandbox_run_passes_exit_code_and_output(tmp_path: Path, server: ForkServer) -> None:
    r = _forkman(
        "sandbox",
        "run",
        "--",
        sys.executable,
        "-c",
        "import sys; print('out'); sys.exit(3)",
        cwd=tmp_path,
    )
    assert r.returncode == 3, r
    assert r.stdout == "out\n"


def test_sandbox_run_timeout_kills_and_exits_124(tmp_path: Path, server: ForkServer) -> None:
    r = _forkman("sandbox", "run", "--timeout", "0.5", "--", "sleep", "30", cwd=tmp_path)
    assert r.returncode == 124, r
    assert "timed out after 0.5s" in r.stderr


def test_sandbox_run_memory_option(tmp_path: Path, server: ForkServer) -> None:
    r = _forkman(
        "sandbox",
        "run",
        "--memory",
        "200M",
        "--",
        sys.executable,
        "-c",
        "b = b'x' * (400 * 1024 * 1024)",
        cwd=tmp_path,
    )
    assert r.returncode == 1 and "MemoryError" in r.stderr, r


def test_sandbox_run_no_sandbox_warns(tmp_path: Path, server: ForkServer) -> None:
    r = _forkman(
        "sandbox",
        "run",
        "--no-sandbox",
        "--",
        sys.executable,
        "-c",
        "import os; print(os.environ.get('HOME') != '/tmp')",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r
    assert "warning: --no-sandbox" in r.stderr


def test_sandbox_run_bad_size_is_bad_input(tmp_path: Path) -> None:
    r = _forkman("sandbox", "run", "--memory", "lots", "--", "true", cwd=tmp_path)
    assert r.returncode == 2
    assert "not a size: 'lots'" in r.stderr


def test_landlock_tier_without_namespaces(tmp_path: Path, server: ForkServer) -> None:
    if server.support.landlock_abi < 6:
        pytest.skip("landlock ABI 6+ needed for the full landlock tier")
    code = (
        "import os, socket\nfor name, fn in [('home', lambda: os.listdir(os.environ['X_HOME'])),\n"
        "    ('net', lambda: socket.socket(socket.AF_INET).connect(('127.0.0.1', 9))),\n"
        "    ('tmp', lambda: open('/tmp/forkman-ll-%d' % os.getppid(), 'w')),\n"
        "    ('signal', lambda: os.kill(int(os.environ['X_PID']), 0))]:\n"
        "    try:\n        fn()\n        print(name, 'ESCAPED')\n    except OSError as exc:\n"
        "        print(name, 'blocked', exc.errno)\nopen('ok', 'w').write('written')\n"
    )
    policy = SandboxPolicy(
        writable=(tmp_path,),
        min_tier=Tier.LANDLOCK,
        env_allow=(*SandboxPolicy().env_allow, "X_HOME", "X_PID"),
    )
    env = {**os.environ, "X_HOME": os.environ["HOME"], "X_PID": str(os.getpid())}
    r = server.run([sys.executable, "-c", code], policy, env=env, tier=Tier.LANDLOCK)
    out = r.stdout.decode()
    assert r.exit_code == 0, r
    assert "ESCAPED" not in out, out
    assert out.count("blocked") == 4
    assert (tmp_path / "ok").read_text() == "written"
    assert r.tier is Tier.LANDLOCK and "seccomp" in r.enforced


def test_library_run_uses_a_shared_warm_server(tmp_path: Path, server: ForkServer) -> None:
    policy = SandboxPolicy(writable=(tmp_path,))
    r1 = run([sys.executable, "-c", "print('one')"], policy)
    r2 = run([sys.executable, "-c", "import os; print(os.getpid())"], policy)
    assert r1.stdout == b"one\n" and r1.tier is Tier.NAMESPACES
    assert r2.stdout.strip() == b"2"  # pid 1 is the sandbox's init


def test_fork_server_restarts_after_it_was_killed(tmp_path: Path, server: ForkServer) -> None:
    with ForkServer(preload=()) as srv:
        policy = SandboxPolicy(writable=(tmp_path,))
        assert srv.run(["true"], policy).exit_code == 0
        assert srv._proc is not None
        srv._proc.kill()
        srv._proc.wait()
        assert srv.run(["true"], policy).exit_code == 0
