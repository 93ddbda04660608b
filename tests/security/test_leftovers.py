"""Attacks on the installer-leftovers exemption of `forkman check`.

`build/` at a fork's root and ``*.egg-info`` folders at its root or under
``src/`` that an installer wrote are reported as "installer leftovers" (remove
them) rather than as edits to record. Whoever can write files into vendor/ (a
build step, a contributor's commit) must not use those names to hide a change
to a recorded file, a new importable module elsewhere, or a committed file.
Every attack goes through the real CLI and asserts the exit code and the
findings the user sees.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import git
from tests.support.cli import run
from tests.support.index import LocalIndex, default_project_files


@pytest.fixture
def forked(cwd: Path, local_index: LocalIndex) -> Path:
    """A committed project with fork demo 1.0 (its sdist ships src/demo.egg-info)."""
    files = default_project_files("demo", "1.0")
    files["src/demo.egg-info/PKG-INFO"] = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
    files["src/demo.egg-info/top_level.txt"] = "demo\n"
    local_index.add_sdist("demo", "1.0", files)
    local_index.add_sdist("demo", "1.1", {**files, "README.md": "# demo 1.1\n"})
    assert run("init").exit_code == 0
    res = run("fork", "demo==1.0")
    assert res.exit_code == 0, res
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", "fork demo")
    return cwd


def _install_leftovers(root: Path) -> None:
    """What `pip install -e vendor/demo` left behind under the old wiring."""
    fork = root / "vendor" / "demo"
    (fork / "build" / "lib" / "demo").mkdir(parents=True)
    (fork / "build" / "lib" / "demo" / "__init__.py").write_text("x = 1\n")
    (fork / "build" / "lib" / "evil.py").write_text("import os\n")
    (fork / "src" / "demo.egg-info" / "SOURCES.txt").write_text("src/demo/__init__.py\n")
    (fork / "src" / "demo.egg-info" / "dependency_links.txt").write_text("\n")


def _lines(text: str, kind: str) -> list[str]:
    return [line for line in text.splitlines() if f": {kind}: " in line]


def test_leftovers_are_one_finding_kind_with_a_remove_hint(forked: Path) -> None:
    _install_leftovers(forked)
    res = run("check")
    assert res.exit_code == 1, res
    assert _lines(res.stdout, "added") == [], res.stdout
    assert "demo: installer leftover: vendor/demo/build/ (2 file(s)" in res.stdout
    assert "installer leftover: vendor/demo/src/demo.egg-info/SOURCES.txt" in res.stdout
    assert "rm -r -- vendor/demo/build/" in res.stderr
    assert "rm -- vendor/demo/src/demo.egg-info/SOURCES.txt" in res.stderr
    assert "forkman patch demo" not in res.stderr
    # sync and patch refuse, and neither offers to record them
    res = run("sync", "demo", "--yes")
    assert res.exit_code == 2, res
    assert "installer leftovers" in res.stderr and "rm -r -- vendor/demo/build/" in res.stderr
    assert "forkman patch" not in res.stderr
    res = run("patch", "demo", "-m", "record the build")
    assert res.exit_code == 2, res
    assert "installer leftovers" in res.stderr
    assert not (forked / "patches").exists()
    # following the hint makes the project clean
    shutil.rmtree(forked / "vendor/demo/build")
    (forked / "vendor/demo/src/demo.egg-info/SOURCES.txt").unlink()
    (forked / "vendor/demo/src/demo.egg-info/dependency_links.txt").unlink()
    assert run("check").exit_code == 0


def test_leftovers_cannot_hide_an_edit_of_a_recorded_file(forked: Path) -> None:
    _install_leftovers(forked)
    (forked / "vendor/demo/src/demo/__init__.py").write_text("import os; os.system('id')\n")
    # a recorded file inside an egg-info folder is judged like any other
    (forked / "vendor/demo/src/demo.egg-info/top_level.txt").write_text("demo\nevil\n")
    res = run("check")
    assert res.exit_code == 1
    assert "demo: modified: vendor/demo/src/demo/__init__.py" in res.stdout
    assert "demo: modified: vendor/demo/src/demo.egg-info/top_level.txt" in res.stdout
    assert "forkman patch demo" in res.stderr
    res = run("sync", "demo", "--yes")
    assert res.exit_code == 2
    assert "has edits that are not recorded" in res.stderr


def test_leftovers_cannot_hide_a_new_module_outside_their_folders(forked: Path) -> None:
    _install_leftovers(forked)
    fork = forked / "vendor/demo"
    planted = {
        "src/evil.py": "import os\n",
        "src/demo/build/evil.py": "import os\n",  # build/ not at the fork's root
        "src/demo/x.egg-info/evil.py": "import os\n",  # egg-info not at root or src/
        "lib/x.egg-info/evil.py": "import os\n",
        "build.py": "import os\n",
        "src/demo.egg-info.py": "import os\n",
    }
    for rel, text in planted.items():
        (fork / rel).parent.mkdir(parents=True, exist_ok=True)
        (fork / rel).write_text(text)
    res = run("check")
    assert res.exit_code == 1
    added = {line.split(": added: ")[1] for line in _lines(res.stdout, "added")}
    assert added == {f"vendor/demo/{rel}" for rel in planted}, res.stdout


def test_a_committed_file_in_build_is_an_edit(forked: Path) -> None:
    _install_leftovers(forked)
    git(forked, "add", "-f", "vendor/demo/build/lib/evil.py")
    git(forked, "commit", "-q", "-m", "sneak a module in")
    res = run("check")
    assert res.exit_code == 1
    assert "demo: added: vendor/demo/build/lib/evil.py" in res.stdout
    assert "installer leftover: vendor/demo/build/ (1 file(s)" not in res.stdout
    assert "installer leftover: vendor/demo/build/lib/demo/__init__.py" in res.stdout


def test_a_symlinked_build_folder_is_an_edit(forked: Path) -> None:
    (forked / "vendor/demo/build").symlink_to("src/demo")
    res = run("check")
    assert res.exit_code == 1
    assert "demo: added: vendor/demo/build" in res.stdout
    assert "installer leftover" not in res.stdout


def test_without_the_cached_manifest_only_proven_leftovers_are_exempt(forked: Path) -> None:
    """A fresh clone has no .forkman/: leftovers are exempt only when the rest hashes right."""
    _install_leftovers(forked)
    shutil.rmtree(forked / ".forkman")
    res = run("check")
    assert res.exit_code == 1
    assert "installer leftover: vendor/demo/build/" in res.stdout
    assert _lines(res.stdout, "tree changed") == []
    (forked / "vendor/demo/src/demo/__init__.py").write_text("import os\n")
    shutil.rmtree(forked / ".forkman", ignore_errors=True)
    res = run("check")
    assert res.exit_code == 1
    assert "demo: tree changed: vendor/demo" in res.stdout
    assert "installer leftover" not in res.stdout


def test_leftovers_in_a_namespace_fork_are_edits(cwd: Path, local_index: LocalIndex) -> None:
    """Only a project-layout fork is ever installed from its folder."""
    local_index.add_wheel("six", "1.0", {"six.py": "x = 1\n"})
    pyproject = cwd / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        + '\n[tool.forkman.vendoring]\nnamespace = "consumer._vendor"\n'
        + 'destination = "src/consumer/_vendor"\n'
    )
    (cwd / "src/consumer/_vendor").mkdir(parents=True)
    (cwd / "src/consumer/_vendor/__init__.py").write_text("")
    assert run("init").exit_code == 0
    res = run("fork", "six==1.0")
    assert res.exit_code == 0, res
    (cwd / "src/consumer/_vendor/build/lib").mkdir(parents=True)
    (cwd / "src/consumer/_vendor/build/lib/evil.py").write_text("import os\n")
    res = run("check")
    assert res.exit_code == 1
    assert "installer leftover" not in res.stdout
    assert "src/consumer/_vendor/build" in res.stdout
