"""The quick path of `forkman check` (the pre-commit form) never hides a change.

Each case runs the real `python -m forkman check` process on a committed fork
whose clean state the quick path has learned, then makes one change and
asserts the change is reported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forkman.gate.quickcheck import quick_clean
from tests.conftest import git
from tests.support.cli import run
from tests.support.index import LocalIndex

REPO = Path(__file__).resolve().parents[2]


def forkman(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forkman", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )


@pytest.fixture
def committed(cwd: Path, local_index: LocalIndex) -> Path:
    assert run("init").exit_code == 0
    local_index.add_sdist("demo", "1.0", {"a.py": "a = 1\n", "b.py": "b = 1\n"})
    local_index.add_sdist("other", "1.0")
    assert run("fork", "demo==1.0").exit_code == 0
    assert run("fork", "other==1.0").exit_code == 0
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "fork demo and other")
    time.sleep(0.3)  # past the racy window: freshly written directories are not trusted
    first = forkman(cwd, "check")  # full path: proves the trees and learns their git ids
    assert first.returncode == 0, first
    assert quick_clean(cwd, "vendor", "patches", []) == 2
    assert forkman(cwd, "check").stdout == "ok: 2 fork(s) match forkman.lock\n"
    return cwd


def test_quick_path_is_taken_and_agrees(committed: Path) -> None:
    assert quick_clean(committed, "vendor", "patches", ["demo"]) == 1
    res = forkman(committed, "check", "--format", "json")
    assert res.returncode == 0 and '"ok": true' in res.stdout


@pytest.mark.parametrize(
    "change",
    [
        "edit",
        "staged-edit",
        "add-untracked",
        "delete",
        "chmod",
        "lock-comment",
        "lock-hash",
        "stray-dir",
        "committed-edit",
    ],
)
def test_every_change_falls_back_and_is_reported(committed: Path, change: str) -> None:
    tree = committed / "vendor" / "demo"
    if change == "edit":
        (tree / "a.py").write_text("a = 2\n")
    elif change == "staged-edit":
        (tree / "a.py").write_text("a = 2\n")
        git(committed, "add", "vendor/demo/a.py")
    elif change == "add-untracked":
        (tree / "evil.pth").write_text("import os\n")
    elif change == "delete":
        (tree / "b.py").unlink()
    elif change == "chmod":
        os.chmod(tree / "b.py", 0o755)
    elif change == "lock-comment":
        lock = committed / "forkman.lock"
        lock.write_text(lock.read_text().replace('version = "1.0"', 'version = "1.0" # x', 1))
    elif change == "lock-hash":
        lock = committed / "forkman.lock"
        text = lock.read_text()
        vendored = text.split('vendored-tree = "', 1)[1].split('"', 1)[0]
        zeros = "sha256:" + "0" * 64
        lock.write_text(
            text.replace(f'vendored-tree = "{vendored}"', f'vendored-tree = "{zeros}"', 1)
        )
    elif change == "stray-dir":
        (committed / "vendor" / "stray").mkdir()
        (committed / "vendor" / "stray" / "x.py").write_text("")
    elif change == "committed-edit":
        # an edit committed to git without recording a patch: git status is clean again
        (tree / "a.py").write_text("a = 3\n")
        git(committed, "commit", "-qam", "sneaky")
    assert quick_clean(committed, "vendor", "patches", []) is None
    res = forkman(committed, "check")
    assert res.returncode == 1, res
    assert res.stdout.strip(), res


def test_patch_file_edit_is_reported(committed: Path) -> None:
    series = committed / "patches" / "demo"
    series.mkdir(parents=True)
    (series / "0001-stray.patch").write_text("--- a\n+++ b\n")
    assert quick_clean(committed, "vendor", "patches", []) is None
    res = forkman(committed, "check")
    assert res.returncode == 1 and "patch unrecorded" in res.stdout


def test_quick_path_in_a_project_below_the_repository_top(
    tmp_path: Path, local_index: LocalIndex
) -> None:
    repo = tmp_path / "mono"
    project = repo / "services" / "api"
    project.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "api"\n\n[tool.forkman]\nindex-url = "{local_index.url}"\n'
    )
    (repo / "README").write_text("monorepo\n")
    local_index.add_sdist("demo", "1.0", {"a.py": "a = 1\n"})
    assert run("init", cwd=project).exit_code == 0
    assert run("fork", "demo==1.0", cwd=project).exit_code == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "api with a fork")
    time.sleep(0.3)  # past the racy window: freshly written directories are not trusted
    assert forkman(project, "check").returncode == 0
    assert quick_clean(project, "vendor", "patches", []) == 1
    (repo / "README").write_text("an unrelated edit elsewhere in the repository\n")
    assert quick_clean(project, "vendor", "patches", []) == 1
    (project / "vendor" / "demo" / "a.py").write_text("a = 2\n")
    assert quick_clean(project, "vendor", "patches", []) is None
    res = forkman(project, "check")
    assert res.returncode == 1 and "modified: vendor/demo/a.py" in res.stdout
