"""Patch series of namespace-layout forks: record, restore, sync, conflicts, vendoring again.

Namespace forks share one folder (``src/consumer/_vendor``) with each other
and with the project's own files; every series command must change the
fork's own members there and nothing else.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from forkman.model.lock import load_lock
from tests.conftest import git
from tests.support.cli import run, snapshot
from tests.support.index import LocalIndex

VENDOR = "src/consumer/_vendor"
FILLER = "# three lines\n# between the name\n# and the limit\n"

ALPHA_1 = "import os\nimport beta\n\n\ndef who():\n    return 'alpha sees ' + beta.NAME\n"


@pytest.fixture
def ns(cwd: Path, local_index: LocalIndex) -> Path:
    """A consumer with a namespace, alpha 1.0 (imports beta) and beta 2.0 / 2.1 on the index."""
    (cwd / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\n\n'
        f'[tool.forkman]\nindex-url = "{local_index.url}"\n\n'
        '[tool.forkman.vendoring]\nnamespace = "consumer._vendor"\n'
        f'destination = "{VENDOR}"\nprotected-files = ["__init__.py", "vendor.txt"]\n'
    )
    (cwd / VENDOR).mkdir(parents=True)
    (cwd / "src/consumer/__init__.py").write_text("")
    (cwd / VENDOR / "__init__.py").write_text("# the project's own file\n")
    (cwd / VENDOR / "vendor.txt").write_text("alpha==1.0\nbeta==2.0\n")
    (cwd / ".gitignore").write_text("__pycache__/\n")  # the tests run the vendored code
    assert run("init").exit_code == 0
    local_index.add_wheel(
        "beta",
        "2.0",
        {
            "beta/__init__.py": f"NAME = 'beta 2.0'\n{FILLER}LIMIT = 10\n",
            "beta/util.py": "".join(f"value{i} = {i}\n" for i in range(1, 21)),
            "beta/py.typed": "",
        },
    )
    local_index.add_wheel(
        "beta",
        "2.1",
        {
            "beta/__init__.py": f"NAME = 'beta 2.1'\n{FILLER}LIMIT = 10\n",
            "beta/util.py": "".join(f"value{i} = {i}\n" for i in range(1, 20))
            + "value20 = 'upstream'\n",
            "beta/extra.py": "EXTRA = True\n",
            "beta/py.typed": "",
        },
    )
    local_index.add_wheel("alpha", "1.0", {"alpha/__init__.py": ALPHA_1})
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "namespace project")
    return cwd


def _lock(root: Path) -> dict[str, object]:
    lock = load_lock(root / "forkman.lock")
    return {name: entry for name, entry in lock.forks.items()}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new, 1))


def _alpha_runs(root: Path) -> str:
    return subprocess.run(
        [sys.executable, "-c", "from consumer._vendor import alpha; print(alpha.who())"],
        env={"PYTHONPATH": str(root / "src")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_record_a_patch_on_a_namespace_fork(ns: Path) -> None:
    assert run("fork", "beta==2.0").exit_code == 0
    assert run("fork", "alpha==1.0").exit_code == 0
    vendor = ns / VENDOR
    _edit(vendor / "beta/__init__.py", "LIMIT = 10", "LIMIT = 99  # ours")
    # running the vendored code writes bytecode: never an edit
    assert _alpha_runs(ns) == "alpha sees beta 2.0"
    assert list(vendor.rglob("__pycache__"))
    before_alpha = snapshot(vendor / "alpha")
    res = run("check")
    assert res.exit_code == 1 and f"modified: {VENDOR}/beta/__init__.py" in res.stdout
    res = run("patch", "beta", "-m", "Raise the limit")
    assert res.exit_code == 0, res
    assert "recorded patches/beta/0001-raise-the-limit.patch" in res.stdout
    text = (ns / "patches/beta/0001-raise-the-limit.patch").read_text()
    # paths are relative to the namespace folder, like the vendoring tool's patches
    assert "diff --git a/beta/__init__.py b/beta/__init__.py" in text
    assert "+LIMIT = 99  # ours" in text and "__pycache__" not in text
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0
    assert snapshot(vendor / "alpha") == before_alpha
    assert (vendor / "__init__.py").read_text() == "# the project's own file\n"
    res = run("patches", "beta")
    assert res.exit_code == 0 and "Raise the limit" in res.stdout
    diff = run("diff", "beta").stdout
    assert diff.startswith("diff --git a/beta/__init__.py") and "+LIMIT = 99" in diff
    # nothing left to record, and an edit of another fork is not this fork's
    _edit(vendor / "alpha/__init__.py", "import os", "import os  # alpha's")
    res = run("patch", "beta", "-m", "Nothing")
    assert res.exit_code == 2 and "no unrecorded edits of beta" in res.stderr
    # a fresh clone has no .forkman: the history is rebuilt, then the series goes on
    shutil.rmtree(ns / ".forkman")
    _edit(vendor / "beta/util.py", "value3 = 3", "value3 = 'three'")
    res = run("patch", "beta", "-m", "Name value three")
    assert res.exit_code == 0, res
    assert [p.file for p in load_lock(ns / "forkman.lock").forks["beta"].patches] == [
        "patches/beta/0001-raise-the-limit.patch",
        "patches/beta/0002-name-value-three.patch",
    ]
    assert run("verify", "beta").exit_code == 0


def test_restore_touches_only_the_forks_members(ns: Path) -> None:
    assert run("fork", "beta==2.0").exit_code == 0
    assert run("fork", "alpha==1.0").exit_code == 0
    vendor = ns / VENDOR
    recorded_beta = snapshot(vendor / "beta")
    _edit(vendor / "beta/util.py", "value1 = 1", "value1 = 'x'")
    (vendor / "beta/new.py").write_text("added = 1\n")
    (vendor / "beta/py.typed").unlink()
    _edit(vendor / "alpha/__init__.py", "import os", "import os  # keep me")
    (vendor / "notes.txt").write_text("the project's scratch file\n")
    res = run("restore", "beta")
    assert res.exit_code == 0, res
    assert set(res.stdout.split()) >= {"beta/util.py", "beta/new.py", "beta/py.typed"}
    assert snapshot(vendor / "beta") == recorded_beta
    assert "# keep me" in (vendor / "alpha/__init__.py").read_text()
    assert (vendor / "notes.txt").exists()
    assert run("restore", "beta").stdout.strip() == "beta: nothing to restore"


def test_a_patch_that_deletes_a_member(ns: Path) -> None:
    assert run("fork", "beta==2.0").exit_code == 0
    vendor = ns / VENDOR
    shutil.rmtree(vendor / "beta")
    res = run("check")
    assert res.exit_code == 1
    assert run("patch", "beta", "-m", "Drop beta entirely").exit_code == 0
    entry = load_lock(ns / "forkman.lock").forks["beta"]
    assert entry.sections["namespace"]["members"] == []
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0


def test_sync_carries_a_namespace_series(ns: Path) -> None:
    assert run("fork", "beta==2.0").exit_code == 0
    vendor = ns / VENDOR
    _edit(vendor / "beta/__init__.py", "LIMIT = 10", "LIMIT = 99")
    assert run("patch", "beta", "-m", "Raise the limit").exit_code == 0
    protected = (vendor / "__init__.py").read_bytes()
    res = run("sync", "beta", "--dry-run")
    assert res.exit_code == 0 and "would move 2.0 -> 2.1" in res.stdout
    res = run("sync", "beta", "--yes")
    assert res.exit_code == 0, res
    assert "beta: 2.0 -> 2.1, 1 patch(es) carried" in res.stdout
    init = (vendor / "beta/__init__.py").read_text()
    assert init == f"NAME = 'beta 2.1'\n{FILLER}LIMIT = 99\n"
    assert (vendor / "beta/extra.py").exists()
    assert (vendor / "__init__.py").read_bytes() == protected
    entry = load_lock(ns / "forkman.lock").forks["beta"]
    assert entry.version == "2.1" and len(entry.patches) == 1
    assert "+LIMIT = 99" in (ns / entry.patches[0].file).read_text()
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0


def test_namespace_sync_conflict_pauses_aborts_and_continues(ns: Path) -> None:
    assert run("fork", "beta==2.0").exit_code == 0
    assert run("fork", "alpha==1.0").exit_code == 0
    vendor = ns / VENDOR
    _edit(vendor / "beta/util.py", "value20 = 20", "value20 = 'ours'")
    assert run("patch", "beta", "-m", "Our value twenty").exit_code == 0
    git(ns, "add", "-A")
    git(ns, "commit", "-qm", "forks")
    before = snapshot(ns, skip=(".git", ".forkman"))
    res = run("sync", "beta", "--yes")
    assert res.exit_code == 1, res
    assert f"{VENDOR}/beta/util.py" in res.stdout
    conflicted = (vendor / "beta/util.py").read_text()
    assert "<<<<<<< upstream 2.1" in conflicted and ">>>>>>> patch 1: Our value" in conflicted
    assert (vendor / "beta/extra.py").exists()  # the new release's members are in place
    res = run("check")
    assert res.exit_code == 1 and "sync paused at a conflict" in res.stdout
    # another fork in the same folder is not blocked
    _edit(vendor / "alpha/__init__.py", "import os", "import os  # alpha")
    assert run("patch", "alpha", "-m", "Comment").exit_code == 0
    res = run("sync", "beta", "--abort")
    assert res.exit_code == 0 and "sync to 2.1 aborted; back at 2.0" in res.stdout
    after = snapshot(ns, skip=(".git", ".forkman"))
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed == {
        "forkman.lock",
        f"{VENDOR}/alpha/__init__.py",
        "patches/alpha/0001-comment.patch",
    }
    assert not (vendor / "beta/extra.py").exists()
    # again, resolved this time
    assert run("sync", "beta", "--yes").exit_code == 1
    res = run("sync", "beta", "--continue")
    assert res.exit_code == 2 and "conflict markers remain" in res.stderr
    text = (vendor / "beta/util.py").read_text()
    (vendor / "beta/util.py").write_text(
        text.split("<<<<<<<")[0] + "value20 = 'ours and upstream'\n"
    )
    res = run("sync", "beta", "--continue")
    assert res.exit_code == 0, res
    entry = load_lock(ns / "forkman.lock").forks["beta"]
    assert entry.version == "2.1"
    assert "extra.py" not in entry.sections["namespace"]["members"]  # a member is top-level
    assert entry.sections["namespace"]["members"] == ["beta"]
    assert "value20 = 'ours and upstream'" in (ns / entry.patches[0].file).read_text()
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0


def test_forking_and_unforking_vendors_the_others_again(ns: Path) -> None:
    """alpha imports beta: alpha follows beta into and out of the namespace, patches carried."""
    vendor = ns / VENDOR
    assert run("fork", "alpha==1.0").exit_code == 0
    assert "import beta\n" in (vendor / "alpha/__init__.py").read_text()
    _edit(vendor / "alpha/__init__.py", "'alpha sees '", "'patched alpha sees '")
    assert run("patch", "alpha", "-m", "Say it is patched").exit_code == 0
    res = run("fork", "beta==2.0")
    assert res.exit_code == 0, res
    assert "alpha 1.0: vendored again (now vendored: beta), 1 patch(es) carried" in res.stdout
    code = (vendor / "alpha/__init__.py").read_text()
    assert "from consumer._vendor import beta\n" in code and "'patched alpha sees '" in code
    assert _alpha_runs(ns) == "patched alpha sees beta 2.0"
    lock = load_lock(ns / "forkman.lock")
    assert lock.forks["alpha"].sections["namespace"]["transform"]["other-modules"] == ["beta"]
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0
    res = run("unfork", "beta")
    assert res.exit_code == 0, res
    assert "alpha 1.0: vendored again (no longer vendored: beta)" in res.stdout
    code = (vendor / "alpha/__init__.py").read_text()
    assert "import beta\n" in code and "consumer._vendor" not in code
    assert "'patched alpha sees '" in code
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0


def test_vendoring_again_pauses_on_a_conflicting_patch(ns: Path) -> None:
    vendor = ns / VENDOR
    assert run("fork", "alpha==1.0").exit_code == 0
    _edit(vendor / "alpha/__init__.py", "import beta\n", "import beta  # top-level beta\n")
    assert run("patch", "alpha", "-m", "Annotate the import").exit_code == 0
    before = (vendor / "alpha/__init__.py").read_bytes()
    res = run("fork", "beta==2.0")
    assert res.exit_code == 1, res  # beta is forked; alpha waits at the conflict
    assert "does not merge into 1.0 vendored again" in res.stdout
    text = (vendor / "alpha/__init__.py").read_text()
    assert "<<<<<<< 1.0 vendored again" in text
    assert set(load_lock(ns / "forkman.lock").forks) == {"alpha", "beta"}
    res = run("sync", "alpha", "--abort")
    assert res.exit_code == 0 and "vendoring 1.0 again aborted" in res.stdout
    assert (vendor / "alpha/__init__.py").read_bytes() == before
    # the next command that looks at the namespace tries again; resolve it this time
    res = run("sync", "--all", "--yes")
    assert res.exit_code == 1
    text = (vendor / "alpha/__init__.py").read_text()
    (vendor / "alpha/__init__.py").write_text(
        "import os\nfrom consumer._vendor import beta  # vendored beta\n"
        + text.split(">>>>>>>")[1].split("\n", 1)[1]
    )
    res = run("sync", "alpha", "--continue")
    assert res.exit_code == 0, res
    assert _alpha_runs(ns) == "alpha sees beta 2.1"  # sync --all took beta 2.1 meanwhile
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0
    assert run("sync", "--all", "--yes").exit_code == 0


def test_check_json_names_the_namespace_edit(ns: Path) -> None:
    assert run("fork", "beta==2.0").exit_code == 0
    (ns / VENDOR / "beta/util.py").write_text("gone = True\n")
    res = run("check", "--format", "json")
    assert res.exit_code == 1
    findings = json.loads(res.stdout)["findings"]
    assert [(f["kind"], f["path"]) for f in findings] == [("modified", f"{VENDOR}/beta/util.py")]


def test_import_a_patch_written_before_import_rewriting(ns: Path, local_index: LocalIndex) -> None:
    """The vendoring tool's patches speak of the tree before its imports were rewritten."""
    assert run("fork", "beta==2.0").exit_code == 0
    assert run("fork", "alpha==1.0").exit_code == 0
    patch = ns / "tool-alpha.patch"
    patch.write_text(
        "diff --git a/alpha/__init__.py b/alpha/__init__.py\n"
        "--- a/alpha/__init__.py\n+++ b/alpha/__init__.py\n"
        "@@ -1,5 +1,6 @@\n import os\n import beta\n+import beta as b\n \n \n def who():\n"
    )
    before = snapshot(ns, skip=(".git", ".forkman"))
    res = run("patch", "alpha", "--import", str(patch))
    assert res.exit_code == 2 and "does not apply on alpha" in res.stderr
    assert snapshot(ns, skip=(".git", ".forkman")) == before
    res = run("patch", "alpha", "--import", "--before-rewrite", str(patch))
    assert res.exit_code == 0, res
    code = (ns / VENDOR / "alpha/__init__.py").read_text()
    assert code.startswith(
        "import os\nfrom consumer._vendor import beta\nfrom consumer._vendor import beta as b\n"
    )
    recorded = (ns / "patches/alpha/0001-tool-alpha.patch").read_text()
    assert "+from consumer._vendor import beta as b\n" in recorded
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0
    # a project-layout fork has no rewritten imports to carry a patch over
    local_index.add_sdist("demo", "1.0")
    assert run("fork", "demo==1.0", "--layout", "project").exit_code == 0
    res = run("patch", "demo", "--import", "--before-rewrite", str(patch))
    assert res.exit_code == 2 and "forkman rewrites no imports in it" in res.stderr
    res = run("patch", "demo", "--before-rewrite", "-m", "x")
    assert res.exit_code == 2 and "--before-rewrite goes with --import" in res.stderr


def test_check_reports_names_no_fork_owns(ns: Path) -> None:
    assert run("fork", "beta==2.0").exit_code == 0
    vendor = ns / VENDOR
    (vendor / "stray.py").write_text("x = 1\n")
    (vendor / "__pycache__").mkdir(exist_ok=True)
    res = run("check")
    assert res.exit_code == 1
    assert res.stdout.strip() == f"owned by no fork: {VENDOR}/stray.py"
    assert "protected-files" in res.stderr
    # a fork does not take over a name no fork owns (only a migrated tree's, when adopted)
    (vendor / "stray.py").rename(vendor / "alpha")
    res = run("fork", "alpha==1.0")
    assert res.exit_code == 2 and "exists and belongs to no fork" in res.stderr
    (vendor / "alpha").unlink()
    assert run("check").exit_code == 0
