"""migrate vendoring, then sync --all: the declared pins become forks, and check passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from forkman._lock import load_lock
from tests.conftest import git
from tests.support.cli import run
from tests.support.index import LocalIndex


def test_migrate_then_sync_forks_the_pins(cwd: Path, local_index: LocalIndex) -> None:
    (cwd / "pyproject.toml").write_text(
        '[project]\nname = "tool"\nversion = "1.0"\n\n'
        f'[tool.forkman]\nindex-url = "{local_index.url}"\n\n'
        '[tool.vendoring]\ndestination = "src/tool/_vendor/"\n'
        'requirements = "src/tool/_vendor/vendor.txt"\nnamespace = "tool._vendor"\n'
        'protected-files = ["__init__.py", "vendor.txt"]\npatches-dir = "tools/patches"\n'
    )
    vendor = cwd / "src" / "tool" / "_vendor"
    vendor.mkdir(parents=True)
    (cwd / "src" / "tool" / "__init__.py").write_text("")
    (vendor / "__init__.py").write_text("")
    (vendor / "vendor.txt").write_text("six==1.16.0\nalpha==2.0\n")
    (cwd / "tools" / "patches").mkdir(parents=True)
    local_index.add_wheel(
        "six", "1.16.0", {"six.py": "X = 1\n", "six-1.16.0.dist-info/LICENSE": "MIT\n"}
    )
    local_index.add_wheel("alpha", "2.0", {"alpha/__init__.py": "import six\n\nVALUE = six.X\n"})
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "vendoring project")
    res = run("migrate", "vendoring")
    assert res.exit_code == 0, res
    assert "next: forkman sync --all" in res.stderr
    res = run("sync", "--all", "--yes")
    assert res.exit_code == 0, res
    assert "forked six 1.16.0 into src/tool/_vendor (declared: six==1.16.0)" in res.stdout
    lock = load_lock(cwd / "forkman.lock")
    assert set(lock.forks) == {"six", "alpha"}
    assert lock.forks["alpha"].layout == "namespace"
    assert (vendor / "six.py").exists()
    alpha = (vendor / "alpha" / "__init__.py").read_text()
    assert "from tool._vendor import six" in alpha
    out = subprocess.run(
        [sys.executable, "-c", "from tool._vendor import alpha; print(alpha.VALUE)"],
        env={"PYTHONPATH": str(cwd / "src")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "1"
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0
    res = run("sync", "--all", "--yes")
    assert res.exit_code == 0 and "every fork is up to date" in res.stdout


def test_patch_series_of_a_namespace_fork_is_refused_without_damage(
    cwd: Path, local_index: LocalIndex
) -> None:
    test_migrate_then_sync_forks_the_pins(cwd, local_index)
    series = cwd / "patches" / "six"
    series.mkdir(parents=True)
    patch = series / "0001-six.patch"
    patch.write_text(
        "diff --git a/six.py b/six.py\n--- a/six.py\n+++ b/six.py\n@@ -1 +1 @@\n-X = 1\n+X = 2\n"
    )
    before = (cwd / "src/tool/_vendor/alpha/__init__.py").read_text()
    res = run("patch", "six", "--import", str(patch.relative_to(cwd)))
    # series operations rewrite a fork's whole folder; a namespace fork shares it
    assert res.exit_code == 2, res
    assert "namespace layout" in res.stderr
    assert (cwd / "src/tool/_vendor/alpha/__init__.py").read_text() == before
    assert (cwd / "src/tool/_vendor/six.py").read_text() == "X = 1\n"
    patch.unlink()
    assert run("check").exit_code == 0
