"""Files of a release that the consumer's git ignores, and bytecode ignores from `init`.

packaging's sdists ship ``tests/.pytest_cache/`` (with pytest's own ``*``
.gitignore inside): a plain ``git add`` leaves it out, so every fresh clone
failed ``check``. forkman keeps every file of a release and stages the ignored
ones with ``git add -f``; ``check`` and ``verify`` name the files when a tree
differs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import git
from tests.support.cli import run
from tests.support.index import LocalIndex, default_project_files

CACHE = "tests/.pytest_cache"


def release(version: str) -> dict[str, str]:
    files = default_project_files("demo", version)
    files[f"{CACHE}/.gitignore"] = "# Created by pytest automatically.\n*\n"
    files[f"{CACHE}/v/cache/nodeids"] = '["tests/test_basic.py::test_greet"]\n'
    files["src/demo/lib/__init__.py"] = "VALUE = 1\n"  # real code a `lib/` pattern ignores
    return files


def fork_with_gitignore(root: Path, index: LocalIndex) -> None:
    (root / ".gitignore").write_text(".pytest_cache/\nlib/\n")
    index.add_sdist("demo", "1.0", release("1.0"))
    assert run("init").exit_code == 0


def clone(root: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(root), str(dest)], check=True)
    return dest


def test_fork_stages_the_files_git_ignores_and_a_fresh_clone_matches(
    cwd: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    fork_with_gitignore(cwd, local_index)
    res = run("fork", "demo==1.0")
    assert res.exit_code == 0, res
    assert "staged them with `git add -f`" in res.stderr
    tracked = git(cwd, "ls-files", "vendor/demo").split()
    assert f"vendor/demo/{CACHE}/v/cache/nodeids" in tracked
    assert f"vendor/demo/{CACHE}/.gitignore" in tracked
    assert "vendor/demo/src/demo/lib/__init__.py" in tracked
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", "fork demo")
    copy = clone(cwd, tmp_path / "clone")
    assert (copy / "vendor/demo" / CACHE / "v/cache/nodeids").is_file()
    res = run("check", cwd=copy)
    assert res.exit_code == 0, res


def test_check_and_verify_name_the_files_a_commit_left_out(
    cwd: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    fork_with_gitignore(cwd, local_index)
    assert run("fork", "demo==1.0").exit_code == 0
    git(cwd, "rm", "-r", "-q", "--cached", f"vendor/demo/{CACHE}")  # as before the fix
    # in the working copy the files are there, but git would leave them out
    res = run("check")
    assert res.exit_code == 1, res
    assert f"demo: ignored by git: vendor/demo/{CACHE}/v/cache/nodeids" in res.stdout
    assert f"git add -f -- vendor/demo/{CACHE}/.gitignore" in res.stderr
    res = run("verify", "demo")
    assert res.exit_code == 1, res
    assert f"vendor/demo/{CACHE}/v/cache/nodeids" in res.stdout + res.stderr
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", "fork demo without the ignored files")
    copy = clone(cwd, tmp_path / "clone")
    assert not (copy / "vendor/demo" / CACHE).exists()
    res = run("check", cwd=copy)
    assert res.exit_code == 1
    assert "tree changed: vendor/demo" in res.stdout
    assert "`forkman verify demo` lists the files" in res.stdout
    res = run("verify", "demo", cwd=copy)
    assert res.exit_code == 1
    out = res.stdout + res.stderr
    assert f"deleted: vendor/demo/{CACHE}/v/cache/nodeids" in out
    assert f"deleted: vendor/demo/{CACHE}/.gitignore" in out
    # verify proved the recorded tree: from now on check names the files too
    res = run("check", cwd=copy)
    assert f"demo: deleted: vendor/demo/{CACHE}/v/cache/nodeids" in res.stdout
    # following the hint brings the clone back, and this time git keeps the files
    res = run("restore", "demo", cwd=copy)
    assert res.exit_code == 0, res
    assert "staged them with `git add -f`" in res.stderr
    assert f"vendor/demo/{CACHE}/v/cache/nodeids" in git(copy, "ls-files", "vendor/demo")
    assert run("check", cwd=copy).exit_code == 0


def test_sync_stages_new_ignored_files(cwd: Path, local_index: LocalIndex) -> None:
    (cwd / ".gitignore").write_text(".pytest_cache/\n")
    local_index.add_sdist("demo", "1.0")
    local_index.add_sdist("demo", "1.1", release("1.1"))
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", "fork demo")
    res = run("sync", "demo", "--yes")
    assert res.exit_code == 0, res
    assert "staged them with `git add -f`" in res.stderr
    assert f"vendor/demo/{CACHE}/v/cache/nodeids" in git(cwd, "ls-files", "vendor/demo")
    assert run("check").exit_code == 0


def test_init_ignores_bytecode(cwd: Path) -> None:
    res = run("init")
    assert res.exit_code == 0, res
    assert (cwd / ".gitignore").read_text() == "__pycache__/\n*.pyc\n"
    assert "added __pycache__/ and *.pyc to .gitignore" in res.stdout
    res = run("init")
    assert ".gitignore" not in res.stdout
    assert (cwd / ".gitignore").read_text() == "__pycache__/\n*.pyc\n"


def test_init_appends_only_what_is_missing(cwd: Path) -> None:
    (cwd / ".gitignore").write_text("dist/\n__pycache__/")
    res = run("init")
    assert res.exit_code == 0, res
    assert (cwd / ".gitignore").read_text() == "dist/\n__pycache__/\n*.pyc\n"
    assert "added *.pyc to .gitignore" in res.stdout
