"""Commands as fork-actor messages on a real project: patch, restore, status, watch."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from forkman.actors import ActorState, actor_states
from forkman.audit.osvdb import import_database
from forkman.model.lock import load_lock
from forkman.model.project import Project
from tests.conftest import REPO_ROOT, git
from tests.support.cli import run, snapshot
from tests.support.index import LocalIndex
from tests.support.series import add_releases, edit, lines, make_series

SKIP = (".git", ".forkman")


@pytest.fixture
def forked(cwd: Path, local_index: LocalIndex) -> Path:
    add_releases(local_index, "1.0", "1.1")
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    return cwd


def forkman(root: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if fault:
        env["FORKMAN_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "forkman", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def status_row(name: str) -> str:
    res = run("status")
    assert res.exit_code == 0, res
    return next(line for line in res.stdout.splitlines() if line.startswith(name + " "))


def test_patch_and_restore_are_messages_to_the_fork_actor(forked: Path) -> None:
    project = Project(forked)
    edit(forked, "a.py", lines(20, l3="line3 = 'mine'"))
    res = run("patch", "demo", "-m", "Mine")
    assert res.exit_code == 0, res
    assert res.stdout == "recorded patches/demo/0001-mine.patch\n"
    state = actor_states(project)["demo"]
    assert state.state is ActorState.IDLE
    assert state.last_result is not None
    assert state.last_result["result"]["file"] == "patches/demo/0001-mine.patch"
    edit(forked, "b.py", "scratch\n")
    res = run("restore", "demo")
    assert res.exit_code == 0 and res.stdout == "restored b.py\n", res
    assert actor_states(project)["demo"].last_result["result"]["restored"] == ["b.py"]  # type: ignore[index]
    # a request refused inside the actor keeps its message and exit code 2, said once;
    # it changed nothing, so the fork's state and last result stay what they were
    res = run("patch", "demo", "--drop", "7")
    assert res.exit_code == 2, res
    assert "\nerror: demo has no patch 7 (its series has 1 patch)\n" in res.stderr, res
    assert "\nhint: `forkman patches demo` lists them" in res.stderr, res
    assert res.stderr.count("has no patch 7") == 1, res
    state = actor_states(project)["demo"]
    assert state.state is ActorState.IDLE
    assert state.last_result["result"]["restored"] == ["b.py"]  # type: ignore[index]
    assert "failed" not in status_row("demo") and " clean " in status_row("demo")
    # another process working on the fork: patch and restore say so and change nothing
    edit(forked, "b.py", "scratch\n")
    before = snapshot(forked)
    held = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from forkman.actors import _keylock; "
            "_keylock.acquire(Path(sys.argv[1]), 'fork:demo', wait=0, what='x'); "
            "print('held', flush=True); time.sleep(60)",
            str(forked / ".forkman" / "locks"),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert held.stdout is not None and held.stdout.readline() == "held\n"
        for args in (("patch", "demo", "-m", "Other"), ("restore", "demo")):
            res = run(*args)
            assert res.exit_code == 2 and "fork demo is busy" in res.stderr, res
        assert snapshot(forked) == before
    finally:
        held.kill()
        held.wait()
    assert run("restore", "demo").exit_code == 0


def test_a_killed_patch_shows_interrupted_and_the_next_command_recovers(forked: Path) -> None:
    project = Project(forked)
    lock_before = (forked / "forkman.lock").read_bytes()
    edit(forked, "a.py", lines(20, l3="line3 = 'mine'"))
    proc = forkman(forked, "patch", "demo", "-m", "Mine", fault="patch-ref:kill")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    state = actor_states(project)["demo"]
    assert state.state is ActorState.INTERRUPTED
    assert "patch interrupted" in state.step
    row = status_row("demo")  # status rolls the half-written patch back ...
    assert "interrupted: patch interrupted" in row, row
    assert (forked / "forkman.lock").read_bytes() == lock_before
    assert not list((forked / "patches").glob("**/*.patch"))
    # ... and the next command on the fork recovers its actor, then does its own work
    res = run("patch", "demo", "-m", "Mine")
    assert res.exit_code == 0, res
    state = actor_states(project)["demo"]
    assert state.state is ActorState.IDLE
    assert "interrupted" not in status_row("demo")
    assert [p.file for p in load_lock(project.lock_path).forks["demo"].patches] == [
        "patches/demo/0001-mine.patch"
    ]
    assert run("check").exit_code == 0


def test_status_shows_a_conflict_and_an_interrupted_sync(
    cwd: Path, local_index: LocalIndex
) -> None:
    make_series(cwd, local_index)
    project = Project(cwd)
    assert "clean" in status_row("demo")
    assert run("sync", "demo", "--yes").exit_code == 1
    assert actor_states(project)["demo"].state is ActorState.CONFLICT
    row = status_row("demo")
    assert "conflict" in row and "conflict, conflict" not in row, row
    assert run("sync", "demo", "--abort").exit_code == 0
    assert actor_states(project)["demo"].state is ActorState.IDLE
    assert " clean " in status_row("demo")
    # killed while carrying the patches: interrupted until the next command recovers it
    proc = forkman(cwd, "sync", "demo", "--yes", fault="sync-rebased:kill")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    row = status_row("demo")
    assert "interrupted: sync interrupted" in row, row
    res = run("sync", "demo", "--dry-run")
    assert res.exit_code == 0, res
    assert actor_states(project)["demo"].state is ActorState.IDLE
    assert " clean " in status_row("demo")
    data = json.loads(run("status", "--format", "json").stdout)
    assert data[0]["state"] == "clean"


ADVISORY = {
    "id": "PYSEC-2099-1",
    "modified": "2026-01-01T00:00:00Z",
    "published": "2026-01-01T00:00:00Z",
    "aliases": ["CVE-2099-0001"],
    "summary": "demo 1.0 evaluates its input",
    "details": "demo before 1.1 evaluates its input.",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "demo"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}],
            "versions": ["1.0"],
        }
    ],
}


def test_watch_once_checks_upstream_and_audits_every_fork(
    cwd: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    add_releases(local_index, "1.0", "1.1")
    local_index.add_sdist("other", "2.0", {"o.py": "O = 1\n"})
    assert run("init").exit_code == 0
    assert run("fork", "demo>=1,<1.1").exit_code == 0
    assert run("fork", "other").exit_code == 0
    pyproject = cwd / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"<1.1,>=1"', '"<2,>=1"'))
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "forks")
    project = Project(cwd)
    files_before = snapshot(cwd / "vendor")
    refs_before = git(cwd, "--git-dir", ".forkman/forks/demo.git", "show-ref")

    # no advisory database: the audit fails closed, the upstream checks still run
    missing = tmp_path / "no-db" / "osv.sqlite"
    with pyproject.open("a") as fh:
        fh.write(f'\n[tool.forkman.audit]\ndatabase = "{missing}"\n')
    res = run("watch", "--once")
    assert res.exit_code == 1, res
    assert "demo: check-upstream ok: 1.0 -> 1.1 available" in res.stdout, res
    assert "other: check-upstream ok: 2.0 is the newest allowed release" in res.stdout, res
    assert "demo: audit FAILED: demo 1.0 was NOT audited" in res.stdout, res
    assert "other: audit FAILED: other 2.0 was NOT audited" in res.stdout, res
    assert "next due:" in res.stdout
    assert re.search(r"\n  demo +check-upstream +in (1d|23h59m)\n", res.stdout), res
    # the retry is due 30 s after the failure; a slow machine may print it a second later
    assert re.search(r"\n  demo +audit +in (29|30)s \(retry 1\)\n", res.stdout), res
    lock = load_lock(project.lock_path)
    assert lock.forks["demo"].sections["audit"]["status"] == "unaudited"
    from forkman.actors import open_engine

    with open_engine(project) as engine:
        audit = next(a for a in engine.alarms("fork:demo") if a.name == "audit")
    assert audit.attempts == 1 and "NOT audited" in str(audit.last_error)

    # with the database: the retried audit finds demo's advisory and records it
    db = tmp_path / "db" / "osv.sqlite"
    advisories = tmp_path / "advisories"
    advisories.mkdir()
    (advisories / "PYSEC-2099-1.json").write_text(json.dumps(ADVISORY))
    import_database(advisories, db)
    pyproject.write_text(pyproject.read_text().replace(str(missing), str(db)))

    with open_engine(project) as engine:  # the retry is due in 30 s: make it due now
        for alarm in engine.alarms():
            if alarm.name == "audit":
                engine.schedule_alarm(alarm.key, alarm.name, 0.0, alarm.message(), every=86400)
    res = run("watch", "--once")
    assert res.exit_code == 1, res  # a finding
    assert "demo: audit FINDINGS: vulnerable: PYSEC-2099-1 (fixed in 1.1)" in res.stdout, res
    assert "other: audit ok: clean" in res.stdout, res
    assert "check-upstream" not in res.stdout.split("next due:")[0]  # not due again yet
    lock = load_lock(project.lock_path)
    assert lock.forks["demo"].sections["audit"]["vulnerabilities"] == ["PYSEC-2099-1"]
    assert lock.forks["other"].sections["audit"]["status"] == "clean"
    states = actor_states(project)
    assert states["demo"].state is ActorState.IDLE
    assert states["demo"].last_result["result"]["status"] == "vulnerable"  # type: ignore[index]
    # the checks never changed a fork
    assert snapshot(cwd / "vendor") == files_before
    assert git(cwd, "--git-dir", ".forkman/forks/demo.git", "show-ref") == refs_before
    assert lock.forks["demo"].version == "1.0"
    assert run("check").exit_code == 0


def test_watch_on_a_git_fork_reports_there_is_no_release_list(cwd: Path, tmp_path: Path) -> None:
    upstream = tmp_path / "upstream-repo"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    (upstream / "pyproject.toml").write_text('[project]\nname = "foo"\nversion = "1.0"\n')
    (upstream / "foo.py").write_text(lines(5))
    git(upstream, "add", ".")
    git(upstream, "commit", "-qm", "one")
    assert run("init").exit_code == 0
    assert run("fork", f"git+file://{upstream}@main", "--name", "foo").exit_code == 0
    with (cwd / "pyproject.toml").open("a") as fh:
        fh.write('\n[tool.forkman.watch]\naudit = "off"\n')
    res = run("watch", "--once")
    assert res.exit_code == 0, res
    assert "foo: check-upstream ok: from git: name a ref" in res.stdout, res
