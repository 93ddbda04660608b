"""kill -9 ``forkman sync --all`` over namespace forks that share one folder.

Four forks live in ``src/consumer/_vendor`` beside the project's protected
files; each carries a patch. Release 1.1 of each is on the index: three merge
cleanly, gamma's patch conflicts (the sync pauses), and delta 1.1 adds a
top-level module, so once delta moves, the other forks are vendored again in
the same command. After every kill, the next command recovers, and then: each
fork's members hash to its lock entry and agree with its history, the folder
holds exactly the forks' members and the protected files, the protected files
are untouched, and a paused sync is undone byte for byte by ``--abort``.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

from forkman.gate.check import scan_fork
from forkman.model.lock import load_lock
from forkman.model.project import Project
from forkman.operations.patches import series_commits
from forkman.operations.worktree import snapshot_worktree
from forkman.store.history import ForkHistory
from forkman.store.treehash import file_digest, hash_manifest
from forkman.store.txn import paused_state
from tests.conftest import REPO_ROOT, git
from tests.support.cli import run
from tests.support.crash import crash_test
from tests.support.index import LocalIndex
from tests.support.series import lines

VENDOR = "src/consumer/_vendor"
PROTECTED = {"__init__.py": "# the project's own\n", "vendor.txt": "pins\n"}
CLEAN = ("alpha", "beta", "delta")
CONFLICTING = "gamma"
FORKS = (*CLEAN, CONFLICTING)
KILLS = 14

pytestmark = pytest.mark.slow


def release(name: str, version: str) -> dict[str, str]:
    """Wheel files of `name` `version`; alpha imports delta's new module once it exists."""
    new = version != "1.0"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n"}
    for i in range(6):
        files[f"{name}/m{i}.py"] = lines(40, l15="line15 = 'upstream'") if new else lines(40)
    files[f"{name}/b.py"] = lines(10, l1="line1 = 'upstream'") if new else lines(10)
    if name == "alpha":
        files["alpha/uses.py"] = "import delta_extra\n"
    if name == "delta" and new:
        files["delta_extra.py"] = "EXTRA = True\n"
    return files


def make_project(root: Path, index: LocalIndex) -> None:
    (root / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\n\n'
        f'[tool.forkman]\nindex-url = "{index.url}"\n\n'
        '[tool.forkman.vendoring]\nnamespace = "consumer._vendor"\n'
        f'destination = "{VENDOR}"\nprotected-files = {sorted(PROTECTED)!r}\n'.replace("'", '"')
    )
    (root / VENDOR).mkdir(parents=True)
    for name, text in PROTECTED.items():
        (root / VENDOR / name).write_text(text)
    assert run("init").exit_code == 0
    for name in FORKS:
        index.add_wheel(name, "1.0", release(name, "1.0"))
        index.add_wheel(name, "1.1", release(name, "1.1"))
        res = run("fork", f"{name}>=1,<1.1")
        assert res.exit_code == 0, res
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"<1.1,>=1"', '"<2,>=1"'))
    for name in FORKS:
        pkg = root / VENDOR / name
        if name == CONFLICTING:
            (pkg / "b.py").write_text(lines(10, l1="line1 = 'mine'"))
        else:
            (pkg / "m3.py").write_text(lines(40, l3="line3 = 'mine'"))
        res = run("patch", name, "-m", f"Patch {name}")
        assert res.exit_code == 0, res
    git(root, "add", "-A")
    git(root, "commit", "-qm", "forks")


def fork_version(project: Project, name: str) -> str:
    """The fork's version, after checking that its members, lock and history agree on it."""
    entry = load_lock(project.lock_path).forks[name]
    assert entry.version in ("1.0", "1.1"), entry
    manifest, _ = scan_fork(project.root, entry, None)
    assert hash_manifest(manifest.values()) == entry.vendored_tree, f"{name}: members != lock"
    init = (project.root / VENDOR / name / "__init__.py").read_text()
    assert init == f"VERSION = {entry.version!r}\n", f"{name}: tree mixes versions"
    patches = sorted((project.root / "patches" / name).iterdir())
    assert [project.relpath(p) for p in patches] == [p.file for p in entry.patches]
    for record in entry.patches:
        assert file_digest(project.root / record.file) == record.sha256, record
    history = ForkHistory(project.fork_git_dir(name))
    base, commits = series_commits(history, entry)
    assert history.rev(f"{base}^") == history.rev(f"refs/tags/upstream/{entry.version}")
    assert len(commits) == len(entry.patches) == 1
    tip_tree = history.tree_of(commits[-1])
    assert snapshot_worktree(history, project, entry) == tip_tree, f"{name}: history"
    return entry.version


def folder_is_exact(project: Project) -> None:
    """The namespace folder holds exactly every fork's members and the protected files."""
    lock = load_lock(project.lock_path)
    owned = {m for e in lock for m in e.sections["namespace"]["members"]}
    present = {p.name for p in (project.root / VENDOR).iterdir()}
    assert present == owned | set(PROTECTED), (present, owned)
    for name, text in PROTECTED.items():
        assert (project.root / VENDOR / name).read_text() == text


def test_sigkill_namespace_sync_all(cwd: Path, local_index: LocalIndex) -> None:
    root = cwd
    project = Project(root)
    make_project(root, local_index)
    pristine = root.parent / "pristine"
    shutil.copytree(root, pristine, symlinks=True)
    res = run("sync", "--all", "--yes")  # warm the caches
    assert res.exit_code == 1, res
    assert "vendored again (now vendored: delta_extra)" in res.stdout
    os.chdir(root.parent)
    shutil.rmtree(root)
    shutil.copytree(pristine, root, symlinks=True)
    os.chdir(root)
    old_conflicting = snapshot_of(project, CONFLICTING)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    rng = random.Random(20261130)
    seen: Counter[str] = Counter()

    def reset() -> None:
        entries = load_lock(project.lock_path).forks
        if all(entries[n].version == "1.1" for n in CLEAN):
            os.chdir(root.parent)
            shutil.rmtree(root)
            shutil.copytree(pristine, root, symlinks=True)
            os.chdir(root)
            seen["resets"] += 1

    def check(phase: str) -> None:
        # the next command recovers
        res = run("check") if rng.random() < 0.5 else run("status")
        assert res.exit_code in (0, 1), res
        txn = root / ".forkman" / "txn"
        assert not txn.is_dir() or all(
            paused_state(project, p.stem) is not None for p in txn.glob("*.json")
        ), "an unfinished transaction survived recovery"
        paused = [n for n in FORKS if paused_state(project, n) is not None]
        assert set(paused) <= {CONFLICTING}
        versions = {n: fork_version(project, n) for n in CLEAN}
        if paused:
            seen["paused"] += 1
            assert "<<<<<<< " in (root / VENDOR / CONFLICTING / "b.py").read_text()
            res = run("sync", CONFLICTING, "--abort")
            assert res.exit_code == 0, res
        assert fork_version(project, CONFLICTING) == "1.0"
        assert snapshot_of(project, CONFLICTING) == old_conflicting
        folder_is_exact(project)
        for name in CLEAN:
            seen[f"{name} at {versions[name]}"] += 1
        alpha = load_lock(project.lock_path).forks["alpha"]
        follows = "delta_extra" in alpha.sections["namespace"]["transform"]["other-modules"]
        seen[f"alpha follows delta_extra: {follows}"] += 1
        # a dry run through the actors changes nothing and finds everything in order
        res = run("sync", "--all", "--dry-run")
        assert res.exit_code == 0, res
        res = run("check")
        assert res.exit_code == 0, res
        if phase == "killed" or not seen["calibrated"]:
            seen["calibrated"] = 1
            reset()

    command = [sys.executable, "-m", "forkman", "sync", "--all", "--yes"]
    report = crash_test(
        command, check, cwd=root, kills=KILLS, seed=11, env=env, returncodes=(1,), timeout=60
    )
    assert all(fork_version(project, n) == "1.1" for n in CLEAN)
    alpha_uses = (root / VENDOR / "alpha" / "uses.py").read_text()
    assert alpha_uses == "from consumer._vendor import delta_extra\n"
    res = run("verify")
    assert res.exit_code == 0, res
    print(f"\n{report.kills} kills, calibration {report.calibration:.2f}s; {dict(seen)}")
    assert seen["paused"] >= 1, seen
    assert seen["delta at 1.0"] and seen["delta at 1.1"], seen


def snapshot_of(project: Project, name: str) -> dict[str, str]:
    """Every file of fork `name`'s members -> sha256."""
    entry = load_lock(project.lock_path).forks[name]
    manifest, _ = scan_fork(project.root, entry, None)
    return {p: e.digest for p, e in manifest.items()}
