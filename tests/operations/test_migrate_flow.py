"""migrate vendoring, then sync --all: the declared pins become forks, and check passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from forkman.model.lock import load_lock
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
    # running the vendored code below writes bytecode: git must ignore it (check judges it)
    (cwd / ".gitignore").write_text("__pycache__/\n")
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


def test_migrated_patches_become_the_forks_series(cwd: Path, local_index: LocalIndex) -> None:
    """The tool's patches apply after the transformation, imports of later pins included."""
    (cwd / "pyproject.toml").write_text(
        '[project]\nname = "tool"\nversion = "1.0"\n\n'
        f'[tool.forkman]\nindex-url = "{local_index.url}"\n\n'
        '[tool.vendoring]\ndestination = "src/tool/_vendor/"\n'
        'requirements = "src/tool/_vendor/vendor.txt"\nnamespace = "tool._vendor"\n'
        'protected-files = ["__init__.py", "vendor.txt"]\npatches-dir = "tools/patches"\n'
        'sbom-file = "src/tool/_vendor/bom.cdx.json"\n'
    )
    vendor = cwd / "src" / "tool" / "_vendor"
    vendor.mkdir(parents=True)
    (cwd / "src" / "tool" / "__init__.py").write_text("")
    (vendor / "__init__.py").write_text("")
    (vendor / "bom.cdx.json").write_text('{"bomFormat": "CycloneDX"}\n')
    (cwd / ".gitignore").write_text("__pycache__/\n")  # the code runs below: bytecode is ignored
    # the tree the vendoring tool wrote: the forks take it over
    (vendor / "six.py").write_text("X = 'as the tool left it'\n")
    (vendor / "alpha").mkdir()
    (vendor / "alpha" / "__init__.py").write_text("stale = True\n")
    (vendor / "alpha" / "stale.py").write_text("stale = True\n")
    # alpha sorts first: it is forked before six, then vendored again for six's sake
    (vendor / "vendor.txt").write_text("six==1.16.0\nalpha==2.0\n")
    local_index.add_wheel(
        "six", "1.16.0", {"six.py": "X = 1\n", "six-1.16.0.dist-info/LICENSE": "MIT\n"}
    )
    local_index.add_wheel("alpha", "2.0", {"alpha/__init__.py": "import six\n\nVALUE = six.X\n"})
    patches = cwd / "tools" / "patches"
    patches.mkdir(parents=True)
    (patches / "six.patch").write_text(
        "diff --git a/src/tool/_vendor/six.py b/src/tool/_vendor/six.py\n"
        "--- a/src/tool/_vendor/six.py\n+++ b/src/tool/_vendor/six.py\n"
        "@@ -1 +1 @@\n-X = 1\n+X = 2\n"
    )
    # the tool applies its patches before it rewrites imports: the context is `import six`,
    # and the patch adds an import of six that must be rewritten too
    (patches / "alpha.patch").write_text(
        "From: Someone <someone@example.org>\nSubject: alpha: double the value\n\n"
        "diff --git a/src/tool/_vendor/alpha/__init__.py b/src/tool/_vendor/alpha/__init__.py\n"
        "--- a/src/tool/_vendor/alpha/__init__.py\n+++ b/src/tool/_vendor/alpha/__init__.py\n"
        "@@ -1,3 +1,4 @@\n import six\n+from six import X\n \n-VALUE = six.X\n+VALUE = X * 2\n"
    )
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "vendoring project")
    res = run("migrate", "vendoring")
    assert res.exit_code == 0, res
    assert "note: sbom-file src/tool/_vendor/bom.cdx.json: kept as the project's file" in res.stderr
    res = run("sync", "--all", "--yes")
    assert res.exit_code == 0, res
    # alpha was vendored knowing six was coming: once, not again
    assert "vendored again" not in res.stdout
    assert "six: imported patches/six/0001-six.patch" in res.stdout
    assert "alpha: imported patches/alpha/0001-alpha-double-the-value.patch" in res.stdout
    assert (vendor / "six.py").read_text() == "X = 2\n"
    out = subprocess.run(
        [sys.executable, "-c", "from tool._vendor import alpha; print(alpha.VALUE)"],
        env={"PYTHONPATH": str(cwd / "src")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "4"
    code = (vendor / "alpha" / "__init__.py").read_text()
    assert code == "from tool._vendor import six\nfrom tool._vendor.six import X\n\nVALUE = X * 2\n"
    recorded = (cwd / "patches" / "alpha" / "0001-alpha-double-the-value.patch").read_text()
    assert "+from tool._vendor.six import X\n" in recorded  # carried over to the rewritten tree
    assert "Forkman-Stage" not in recorded
    # the migrated files became the series: nothing is left waiting beside it
    assert sorted(p.name for p in (cwd / "patches" / "alpha").iterdir()) == [
        "0001-alpha-double-the-value.patch"
    ]
    six_patch = (cwd / "patches" / "six" / "0001-six.patch").read_text()
    assert six_patch.startswith(
        "Description: six\n The vendoring tool's patch tools/patches/six.patch"
    )
    assert "Forkman-Stage" not in six_patch
    lock = load_lock(cwd / "forkman.lock")
    assert [p.file for p in lock.forks["six"].patches] == ["patches/six/0001-six.patch"]
    assert (vendor / "bom.cdx.json").read_text() == '{"bomFormat": "CycloneDX"}\n'
    assert not (vendor / "alpha" / "stale.py").exists()
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0
    res = run("sync", "--all", "--yes")
    assert res.exit_code == 0 and "every fork is up to date" in res.stdout


def test_a_migrated_patch_that_does_not_apply_is_left_waiting(
    cwd: Path, local_index: LocalIndex
) -> None:
    (cwd / "pyproject.toml").write_text(
        '[project]\nname = "tool"\nversion = "1.0"\n\n'
        f'[tool.forkman]\nindex-url = "{local_index.url}"\n\n'
        '[tool.vendoring]\ndestination = "src/tool/_vendor/"\n'
        'requirements = "src/tool/_vendor/vendor.txt"\nnamespace = "tool._vendor"\n'
        'protected-files = ["__init__.py", "vendor.txt"]\npatches-dir = "tools/patches"\n'
    )
    vendor = cwd / "src" / "tool" / "_vendor"
    vendor.mkdir(parents=True)
    (vendor / "__init__.py").write_text("")
    (vendor / "vendor.txt").write_text("six==1.16.0\n")
    local_index.add_wheel("six", "1.16.0", {"six.py": "X = 1\n"})
    (cwd / "tools" / "patches").mkdir(parents=True)
    (cwd / "tools" / "patches" / "six.patch").write_text(
        "diff --git a/src/tool/_vendor/six.py b/src/tool/_vendor/six.py\n"
        "--- a/src/tool/_vendor/six.py\n+++ b/src/tool/_vendor/six.py\n"
        "@@ -1 +1 @@\n-X = 9\n+X = 2\n"
    )
    assert run("migrate", "vendoring").exit_code == 0
    res = run("sync", "--all", "--yes")
    assert res.exit_code == 2, res
    assert "forked six 1.16.0" in res.stdout
    assert "error: six: its patch files in patches/six were not imported" in res.stderr
    assert "0001-six.patch does not apply" in res.stderr
    assert (vendor / "six.py").read_text() == "X = 1\n"
    assert (cwd / "patches/six/0001-six.patch").exists()
    res = run("check")
    assert res.exit_code == 1 and "patch unrecorded: patches/six/0001-six.patch" in res.stdout


def test_declared_forks_are_made_together_and_never_share_a_name(
    cwd: Path, local_index: LocalIndex
) -> None:
    """Declared namespace forks are made in parallel; two that vendor the same top-level name
    cannot both own it: one is refused, cleanly, and the rest are made."""
    (cwd / "pyproject.toml").write_text(
        '[project]\nname = "tool"\nversion = "1.0"\n\n'
        f'[tool.forkman]\nindex-url = "{local_index.url}"\nprefer = "wheel"\n\n'
        '[tool.forkman.vendoring]\nnamespace = "tool._vendor"\ndestination = "src/tool/_vendor"\n'
        + "".join(
            f'\n[tool.forkman.forks.{n}]\nrequirement = "{n}==1.0"\nlayout = "namespace"\n'
            for n in ("one", "two", "three", "four")
        )
    )
    vendor = cwd / "src" / "tool" / "_vendor"
    vendor.mkdir(parents=True)
    (vendor / "__init__.py").write_text("")
    local_index.add_wheel("one", "1.0", {"one/__init__.py": "import four\n"})
    local_index.add_wheel("two", "1.0", {"shared/__init__.py": "TWO = 2\n"})
    local_index.add_wheel("three", "1.0", {"shared/__init__.py": "THREE = 3\n"})
    local_index.add_wheel("four", "1.0", {"four.py": "import one\n"})
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "declared")
    res = run("sync", "--all", "--yes", "--jobs", "4")
    assert res.exit_code == 2, res
    lock = load_lock(cwd / "forkman.lock")
    made = set(lock.forks)
    assert {"one", "four"} <= made and len(made & {"two", "three"}) == 1, made
    loser = ({"two", "three"} - made).pop()
    assert f"error: {loser}: " in res.stderr and "already belongs to fork" in res.stderr
    # each import of the other was rewritten at once: nothing vendored again
    assert "vendored again" not in res.stdout
    assert (vendor / "one" / "__init__.py").read_text() == "from tool._vendor import four\n"
    assert (vendor / "four.py").read_text() == "from tool._vendor import one\n"
    # the declaration that could not be made is no false clean
    res = run("check")
    assert res.exit_code == 1 and f"not forked: {loser}" in res.stdout, res
    assert "forkman sync --all" in res.stderr
    assert run("verify").exit_code == 0


def test_a_declared_fork_that_cannot_be_made_says_why(cwd: Path, local_index: LocalIndex) -> None:
    (cwd / "pyproject.toml").write_text(
        '[project]\nname = "tool"\nversion = "1.0"\n\n'
        f'[tool.forkman]\nindex-url = "{local_index.url}"\n\n'
        '[tool.forkman.forks.ghost]\nrequirement = "ghost==9.9"\n'
    )
    local_index.add_sdist("ghost", "1.0")
    res = run("sync", "ghost", "--yes")
    assert res.exit_code == 2, res
    assert "error: ghost: no release of ghost matches '==9.9'" in res.stderr
    assert "ghost" not in load_lock(cwd / "forkman.lock").forks
