"""fork, then test (sandboxed, through the fork actors), then status, on real forks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forkman.model.lock import load_lock
from tests.support.cli import run
from tests.support.index import LocalIndex, default_project_files
from tests.support.wheels import serve_test_runner

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("needs_namespaces")]


def test_fork_then_test_in_the_sandbox(cwd: Path, local_index: LocalIndex) -> None:
    assert run("init").exit_code == 0
    serve_test_runner(local_index)  # pytest and setuptools, as wheels
    local_index.add_sdist("demo", "1.0")
    files = default_project_files("netty", "1.0")
    files["tests/test_net.py"] = (
        "import socket\n\n\ndef test_reaches_out():\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=5)\n"
    )
    local_index.add_sdist("netty", "1.0", files)
    assert run("fork", "demo==1.0").exit_code == 0
    assert run("fork", "netty==1.0").exit_code == 0
    res = run("test", "--all", "--format", "json", "--jobs", "2")
    rows = {row["name"]: row for row in json.loads(res.stdout)}
    assert res.exit_code == 1, res
    assert rows["demo"]["status"] == "passed" and rows["demo"]["passed"] == 1
    assert rows["demo"]["tier"].startswith("namespaces")
    assert rows["netty"]["status"] == "network-disabled", rows["netty"]
    lock = load_lock(cwd / "forkman.lock")
    assert lock.forks["demo"].sections["test"]["status"] == "passed"
    assert lock.forks["demo"].sections["test"]["version"] == "1.0"
    assert lock.forks["demo"].sections["test"]["tree"] == lock.forks["demo"].vendored_tree
    assert lock.forks["netty"].sections["test"]["status"] == "network-disabled"
    status = {r["name"]: r for r in json.loads(run("status", "--format", "json").stdout)}
    assert status["demo"]["tests"].startswith("1 passed [namespaces")
    assert status["demo"]["state"] == "clean"  # the run changed nothing in the vendored tree
