"""kill -9 a multi-fork ``forkman sync --all`` at random moments; after each kill the next
command recovers and every fork is entirely old, entirely new, or paused at a conflict that
``--abort`` undoes, with the lock, the files, the fork's history and the actor database agreeing.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from forkman.actors import ActorState, actor_states
from forkman.model.lock import load_lock
from forkman.model.project import Project
from forkman.operations.patches import series_commits
from forkman.store.history import ForkHistory
from forkman.store.treehash import file_digest, tree_hash
from forkman.store.txn import paused_state
from tests.conftest import REPO_ROOT, git
from tests.support.cli import run
from tests.support.crash import crash_test
from tests.support.index import LocalIndex
from tests.support.series import lines

CLEAN = ("alpha", "beta", "delta")
"""Forks whose patch merges cleanly into the new release."""
CONFLICTING = "gamma"
"""The fork whose patch conflicts with the new release: the sync pauses."""
FORKS = (*CLEAN, CONFLICTING)
KILLS = 22

pytestmark = pytest.mark.slow


def release(name: str, version: str) -> dict[str, str]:
    """The files of `name` `version`: 1.1 changes line 15 of every module and line 1 of b.py."""
    new = version != "1.0"
    files = {
        "pyproject.toml": f'[project]\nname = "{name}"\nversion = "{version}"\n',
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
    }
    for i in range(8):
        files[f"{name}/m{i}.py"] = lines(40, l15="line15 = 'upstream'") if new else lines(40)
    files[f"{name}/b.py"] = lines(10, l1="line1 = 'upstream'") if new else lines(10)
    if new:
        files[f"{name}/added.py"] = "ADDED = True\n"
    return files


def make_project(root: Path, index: LocalIndex) -> None:
    """Four forks at 1.0, each with one patch; 1.1 of each is on the index."""
    assert run("init").exit_code == 0
    for name in FORKS:
        index.add_sdist(name, "1.0", release(name, "1.0"))
        index.add_sdist(name, "1.1", release(name, "1.1"))
        res = run("fork", f"{name}>=1,<1.1")
        assert res.exit_code == 0, res
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"<1.1,>=1"', '"<2,>=1"'))
    for name in FORKS:
        vendored = root / "vendor" / name / name
        if name == CONFLICTING:
            (vendored / "b.py").write_text(lines(10, l1="line1 = 'mine'"))
        else:
            (vendored / "m3.py").write_text(lines(40, l3="line3 = 'mine'"))
        res = run("patch", name, "-m", f"Patch {name}")
        assert res.exit_code == 0, res
    git(root, "add", "-A")
    git(root, "commit", "-qm", "forks")


def fork_version(project: Project, name: str) -> str:
    """The fork's version, after checking that files, lock and history agree on it."""
    entry = load_lock(project.lock_path).forks[name]
    assert entry.version in ("1.0", "1.1"), entry
    vendored = project.root / entry.path
    assert tree_hash(vendored) == entry.vendored_tree, f"{name}: vendored tree != lock"
    init = (vendored / name / "__init__.py").read_text()
    assert init == f"VERSION = {entry.version!r}\n", f"{name}: tree mixes versions"
    patches = sorted((project.root / "patches" / name).iterdir())
    assert [project.relpath(p) for p in patches] == [p.file for p in entry.patches]
    for record in entry.patches:
        assert file_digest(project.root / record.file) == record.sha256, record
    history = ForkHistory(project.fork_git_dir(name))
    base, commits = series_commits(history, entry)
    assert base == history.rev(f"refs/tags/upstream/{entry.version}"), f"{name}: base"
    assert len(commits) == len(entry.patches) == 1
    assert history.snapshot(vendored) == history.tree_of(commits[-1]), f"{name}: history"
    return entry.version


def test_sigkill_sync_all_at_random_moments(cwd: Path, local_index: LocalIndex) -> None:
    root = cwd
    project = Project(root)
    make_project(root, local_index)
    pristine = root.parent / "pristine"
    shutil.copytree(root, pristine, symlinks=True)
    # warm the download cache, so the calibrated run is as long as the killed ones
    res = run("sync", "--all", "--yes")
    assert res.exit_code == 1, res
    os.chdir(root.parent)
    shutil.rmtree(root)
    shutil.copytree(pristine, root, symlinks=True)
    os.chdir(root)
    old_files = {n: tree_hash(root / "vendor" / n) for n in FORKS}
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    rng = random.Random(20261126)
    seen: Counter[str] = Counter()
    durations: list[float] = []

    def reset() -> None:
        # the next run starts from the old forks once the last run has nothing left to do
        entries = load_lock(project.lock_path).forks
        if all(entries[n].version == "1.1" for n in CLEAN):
            os.chdir(root.parent)
            shutil.rmtree(root)
            shutil.copytree(pristine, root, symlinks=True)
            os.chdir(root)
            seen["resets"] += 1

    def check(phase: str) -> None:
        started = time.monotonic()
        states = actor_states(project)
        # killed: nothing is shown as running; an operation that died is `interrupted`
        for name, state in states.items():
            assert not state.state.busy, (name, state)
        interrupted = {n for n, s in states.items() if s.state is ActorState.INTERRUPTED}
        seen["interrupted forks"] += len(interrupted)
        seen["kills that interrupted an operation"] += bool(interrupted)
        seen["open transactions"] += (root / ".forkman" / "txn").is_dir() and any(
            (root / ".forkman" / "txn").glob("*.json")
        )
        # the next command recovers: check (or status) puts every fork back in one piece
        if rng.random() < 0.5:
            res = run("check")
            paused_forks = [n for n in FORKS if paused_state(project, n) is not None]
            assert res.exit_code == (1 if paused_forks else 0), res
            if paused_forks:
                assert "sync paused at a conflict" in res.stdout, res
        else:
            res = run("status")
            assert res.exit_code == 0, res
            paused_forks = [n for n in FORKS if paused_state(project, n) is not None]
            rows = {line.split()[0]: line for line in res.stdout.splitlines()[2:]}
            for name in paused_forks:
                assert "conflict" in rows[name], res
            for name in interrupted:
                assert "interrupted: sync interrupted" in rows[name], res
        assert not (root / ".forkman" / "txn").is_dir() or all(
            paused_state(project, p.stem) is not None
            for p in (root / ".forkman" / "txn").glob("*.json")
        ), "an unfinished transaction survived recovery"
        assert set(paused_forks) <= {CONFLICTING}
        versions = {n: fork_version(project, n) for n in CLEAN}
        if paused_forks:
            # paused: still at the old version; --abort (through its actor) undoes it all
            seen["paused"] += 1
            assert load_lock(project.lock_path).forks[CONFLICTING].version == "1.0"
            assert "<<<<<<< " in (root / "vendor" / CONFLICTING / CONFLICTING / "b.py").read_text()
            res = run("sync", CONFLICTING, "--abort")
            assert res.exit_code == 0, res
            assert paused_state(project, CONFLICTING) is None
        versions[CONFLICTING] = fork_version(project, CONFLICTING)
        assert versions[CONFLICTING] == "1.0"  # its sync can only pause, never finish
        assert tree_hash(root / "vendor" / CONFLICTING) == old_files[CONFLICTING]
        for name in CLEAN:
            if versions[name] == "1.0":
                assert tree_hash(root / "vendor" / name) == old_files[name]
            seen[f"fork at {versions[name]}"] += 1
        # the actor database agrees once a command ran through the actors
        res = run("sync", "--all", "--dry-run")
        assert res.exit_code == 0, res
        for name, state in actor_states(project).items():
            assert state.state is ActorState.IDLE, (name, state)
        assert run("check").exit_code == 0
        durations.append(time.monotonic() - started)
        if phase == "killed" or not seen["calibrated"]:
            seen["calibrated"] = 1
            reset()

    command = [sys.executable, "-m", "forkman", "sync", "--all", "--yes"]
    report = crash_test(
        command, check, cwd=root, kills=KILLS, seed=7, env=env, returncodes=(1,), timeout=60
    )
    # after the last complete run: the clean forks are new, the conflicting one paused then
    # aborted by the check; everything rebuilds from its recorded source
    assert all(fork_version(project, n) == "1.1" for n in CLEAN)
    res = run("verify")
    assert res.exit_code == 0, res
    assert report.kills == KILLS
    print(
        f"\n{report.kills} kills (+{report.finished_early} runs finished first), "
        f"calibration {report.calibration:.2f}s, checks {sum(durations):.1f}s; {dict(seen)}"
    )
    # the kills hit real work: interrupted actors, open transactions, and both versions
    assert seen["kills that interrupted an operation"] >= KILLS // 3, seen
    assert seen["open transactions"] >= 2, seen
    assert seen["fork at 1.0"] and seen["fork at 1.1"], seen
    assert seen["paused"] >= 1, seen
