"""Crash safety of writes: every fault leaves the old state or the new one, never a mix."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forkman.model.lock import load_lock
from forkman.model.project import Project
from forkman.operations.forks import fork, unfork
from forkman.store.txn import InjectedFault, recover
from tests.support.cli import run, snapshot
from tests.support.index import LocalIndex

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def ready(cwd: Path, local_index: LocalIndex) -> Project:
    assert run("init").exit_code == 0
    for version in ("1.0", "1.1"):
        local_index.add_sdist("demo", version, {f"m{i}.py": f"x = {i}\n" for i in range(30)})
    return Project(cwd)


def assert_consistent(project: Project) -> bool:
    """The fork is entirely there (and matches the lock) or entirely absent; True if there.

    Runs `forkman check` first: like every command, it recovers interrupted work.
    """
    res = run("check")
    assert res.exit_code == 0, res
    lock = load_lock(project.lock_path)
    tree = project.root / "vendor" / "demo"
    history = project.fork_git_dir("demo")
    if "demo" in lock.forks:
        assert tree.is_dir() and history.is_dir()
        return True
    assert not tree.exists() and not history.exists()
    assert "constraint" not in project.pyproject.read_text()
    return False


@pytest.mark.parametrize("step", ["fork-history", "fork-tree", "before-lock-write"])
def test_fault_before_commit_rolls_back(
    ready: Project, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(ready.root, skip=(".git", ".forkman"))
    monkeypatch.setenv("FORKMAN_FAULT", step)
    with pytest.raises(InjectedFault):
        fork(ready, "demo>=1,<2")
    monkeypatch.delenv("FORKMAN_FAULT")
    assert snapshot(ready.root, skip=(".git", ".forkman")) == before
    assert not assert_consistent(ready)


def test_fault_after_commit_completes(ready: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORKMAN_FAULT", "after-lock-write")
    with pytest.raises(InjectedFault):
        fork(ready, "demo==1.0")
    monkeypatch.delenv("FORKMAN_FAULT")
    assert recover(ready) == []  # the transaction finished its clean-up while unwinding
    assert assert_consistent(ready)


def test_kill_after_commit_is_completed_by_recovery(ready: Project) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "FORKMAN_FAULT": "after-lock-write:kill"}
    proc = subprocess.run(
        [sys.executable, "-m", "forkman", "fork", "demo==1.0"],
        cwd=ready.root,
        env=env,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL
    assert recover(ready) == ["demo: completed the interrupted fork"]
    assert assert_consistent(ready)


def test_unfork_fault_rolls_back(ready: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    fork(ready, "demo>=1,<2")
    before = snapshot(ready.root, skip=(".git", ".forkman"))
    monkeypatch.setenv("FORKMAN_FAULT", "before-lock-write")
    with pytest.raises(InjectedFault):
        unfork(ready, "demo")
    monkeypatch.delenv("FORKMAN_FAULT")
    assert snapshot(ready.root, skip=(".git", ".forkman")) == before
    assert assert_consistent(ready)


@pytest.mark.parametrize("step", ["fork-history", "fork-tree", "before-lock-write"])
def test_sigkill_at_each_step_then_next_command_recovers(ready: Project, step: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "FORKMAN_FAULT": f"{step}:kill"}
    proc = subprocess.run(
        [sys.executable, "-m", "forkman", "fork", "demo>=1,<2"],
        cwd=ready.root,
        env=env,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL
    assert (ready.state_dir / "txn").is_dir()
    assert not assert_consistent(ready)  # `forkman check` recovered it first
    leftovers = [p for p in (ready.state_dir / "txn").iterdir() if p.suffix != ".owner"]
    assert not leftovers  # only the (unlocked) owner lock files stay


def test_sigkill_at_random_moments(ready: Project) -> None:
    rng = random.Random(20261126)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    present = absent = 0
    for _ in range(12):
        args = (
            ["unfork", "demo"]
            if "demo" in load_lock(ready.lock_path).forks
            else ["fork", "demo>=1,<2"]
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "forkman", *args],
            cwd=ready.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if assert_consistent(ready):
            present += 1
        else:
            absent += 1
    assert present + absent == 12


def test_recovery_leaves_a_live_transaction_alone(ready: Project) -> None:
    """Another command's recovery must not undo a transaction whose owner is alive."""
    from forkman.store.txn import ForkTransaction

    fork(ready, "demo==1.0")
    target = ready.root / "vendor" / "demo" / "m0.py"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with ForkTransaction(ready, "demo", "test") as txn:
        txn.write_file(target, b"x = 'in flight'\n")
        for command in (["status"], ["check"]):
            proc = subprocess.run(
                [sys.executable, "-m", "forkman", *command],
                cwd=ready.root,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert "recovered" not in proc.stderr, proc.stderr
            assert target.read_text() == "x = 'in flight'\n"
        assert recover(ready) == []  # in this process too: another thread's view
        assert target.read_text() == "x = 'in flight'\n"
    # the transaction ended without committing: rolled back by its owner
    assert target.read_text() == "x = 0\n"
    assert not (ready.state_dir / "txn" / "demo.json").exists()


def test_recovery_clears_what_a_killed_git_left_behind(
    ready: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A git killed while moving a ref (a ``.lock`` file) or adding a rebase worktree (half
    its metadata) must not make the rollback, or every later sync, fail."""
    assert run("fork", "demo>=1,<1.1").exit_code == 0
    (ready.root / "pyproject.toml").write_text(
        (ready.root / "pyproject.toml").read_text().replace('"<1.1,>=1"', '"<2,>=1"')
    )
    (ready.root / "vendor/demo/m1.py").write_text("x = 'mine'\n")
    assert run("patch", "demo", "-m", "Mine").exit_code == 0
    before = snapshot(ready.root, skip=(".git", ".forkman"))
    git_dir = ready.fork_git_dir("demo")
    monkeypatch.setenv("FORKMAN_FAULT", "series-ref:kill")
    proc = subprocess.run(
        [sys.executable, "-m", "forkman", "sync", "demo", "--yes"],
        cwd=ready.root,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        check=False,
    )
    monkeypatch.delenv("FORKMAN_FAULT")
    assert proc.returncode == -signal.SIGKILL
    # what a git killed at the same moment would have left
    (git_dir / "refs/heads/patched.lock").write_text("0" * 40 + "\n")
    half = git_dir / "worktrees" / "tree"
    half.mkdir(parents=True)
    (half / "gitdir").write_text(str(ready.root / ".forkman/tmp/rebase-gone/tree/.git") + "\n")
    (half / "commondir").write_text("")
    res = run("check")
    assert res.exit_code == 0, res
    assert snapshot(ready.root, skip=(".git", ".forkman")) == before
    assert not (git_dir / "refs/heads/patched.lock").exists()
    res = run("sync", "demo", "--yes")
    assert res.exit_code == 0, res
    assert not half.exists()
    assert run("verify").exit_code == 0


def test_recovery_leaves_a_live_transactions_folder_alone(ready: Project) -> None:
    """Another thread's transaction makes its backup folder before its journal: a parallel
    recovery must not take it for a leftover."""
    from forkman.store.recovery import Owner as _Owner

    txn_dir = ready.ensure_state_dir() / "txn"
    live = txn_dir / "alpha.0123456789ab"
    live.mkdir(parents=True)
    dead = txn_dir / "beta.ba9876543210"
    dead.mkdir()
    owner = _Owner(ready, "alpha")
    assert owner.try_acquire()
    try:
        recover(ready)
        assert live.is_dir()
        assert not dead.exists()
    finally:
        owner.release()
    recover(ready)
    assert not live.exists()
