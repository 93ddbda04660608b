"""`.forkman/` is a cache: a fresh clone (without it) can patch and sync its forks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from forkman.model.lock import load_lock
from tests.conftest import git
from tests.support.cli import run
from tests.support.index import LocalIndex
from tests.support.series import edit, lines, make_series


def test_fresh_clone_rebuilds_history_then_patches_and_syncs(
    cwd: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    make_series(cwd, local_index)  # demo 1.0 with three patches; 1.1 on the index
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "demo with its series")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(cwd), str(clone)], check=True)
    assert not (clone / ".forkman").exists()
    assert run("check", cwd=clone).exit_code == 0
    # a new patch needs the history: it is rebuilt from the lock, source and patch files
    edit(clone, "a.py", lines(20, l3="line3 = 'mine'", l5="line5 = 'also mine'"))
    res = run("patch", "demo", "-m", "Patch d", cwd=clone)
    assert res.exit_code == 0, res
    assert (clone / ".forkman" / "forks" / "demo.git").is_dir()
    assert len(load_lock(clone / "forkman.lock").forks["demo"].patches) == 4
    assert run("check", cwd=clone).exit_code == 0
    assert run("verify", cwd=clone).exit_code == 0
    # and so does sync, from another fresh state
    shutil.rmtree(clone / ".forkman")
    res = run("sync", "demo", "--yes", "--abort", cwd=clone)
    assert res.exit_code == 2  # nothing to abort: a clear error, nothing changed
    res = run("sync", "demo", "--dry-run", cwd=clone)
    assert res.exit_code == 0, res
    assert "would move 1.0 -> 1.1" in res.stdout
