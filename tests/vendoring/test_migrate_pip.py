"""The migration proof on a real project that vendors with the vendoring tool: pip.

:func:`tests.support.pip_project.build_pip_project` rebuilds pip 26.2 as its
repository has it (its patches recovered and proven with the real vendoring
tool, which then reproduces pip's shipped tree exactly). On that project,
``forkman migrate vendoring`` and ``forkman sync --all`` must leave
``src/pip/_vendor`` byte for byte as committed (``git status`` says nothing),
with ``forkman check`` and ``forkman verify`` passing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from forkman._config import load_config
from forkman._lock import load_lock
from forkman._project import Project
from forkman.vendoring._config import vendoring_config
from forkman.vendoring.migrate import migrate_vendoring
from tests.conftest import git
from tests.support.cli import run
from tests.support.pip_project import DEST, build_pip_project

pytestmark = [pytest.mark.network, pytest.mark.slow]


@pytest.fixture(scope="module")
def pip_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = build_pip_project(tmp_path_factory.mktemp("pip"))
    patches = sorted((project / "tools" / "vendoring" / "patches").iterdir())
    assert len(patches) >= 5, patches  # pip patches several of its vendored packages
    return project


def test_migrate_reads_pips_table(pip_project: Path, tmp_path: Path) -> None:
    root = tmp_path / "pip"
    shutil.copytree(pip_project, root, symlinks=True)
    project = Project(root)
    result = migrate_vendoring(project)
    pins = {}
    for line in (root / DEST / "vendor.txt").read_text().splitlines():
        if line.strip():
            name, version = line.strip().split("==")
            pins[name.lower().replace("_", "-")] = version
    assert result.pins == pins and len(pins) == 18
    assert result.namespace == "pip._vendor" and result.destination == DEST
    vcfg = vendoring_config(load_config(project.pyproject))
    # the tool's SBOM stays the project's file
    assert vcfg.protected_files == ("__init__.py", "README.rst", "vendor.txt", "bom.cdx.json")
    assert vcfg.license_source == "archive" and vcfg.rewrite_mode.value == "vendoring-compat"
    # the drop rules, as the tool applied them, left nothing they match in the tree
    vendor = root / DEST
    for path in vendor.rglob("*"):
        rel = path.relative_to(vendor).as_posix()
        assert not any(rule.matches(rel) for rule in vcfg.drop), rel
    assert (vendor / "pygments/lexers/python.py").exists()
    assert any(r.matches("pygments/lexers/rust.py") for r in vcfg.drop)
    # every patch of pip's became a fork's, marked as written before import rewriting
    assert {p.fork for p in result.patches} >= {"requests", "urllib3", "setuptools"}
    for patch in result.patches:
        assert "Forkman-Stage: before-rewrite" in (root / patch.file).read_text()


def test_migrate_then_sync_reproduces_pip_byte_for_byte(pip_project: Path, tmp_path: Path) -> None:
    root = tmp_path / "pip"
    shutil.copytree(pip_project, root, symlinks=True)
    res = run("migrate", "vendoring", cwd=root)
    assert res.exit_code == 0, res
    res = run("sync", "--all", "--yes", cwd=root)
    assert res.exit_code == 0, res
    # byte for byte what the project committed: nothing changed, nothing added or removed
    assert git(root, "status", "--porcelain", "--untracked-files=all", "--", DEST) == ""
    lock = load_lock(root / "forkman.lock")
    assert len(lock.forks) == 18
    patched = sorted(name for name, entry in lock.forks.items() if entry.patches)
    assert {"requests", "urllib3", "setuptools", "pygments"} <= set(patched), patched
    res = run("check", cwd=root)
    assert res.exit_code == 0 and "ok: 18 fork(s) match forkman.lock" in res.stdout, res
    res = run("verify", cwd=root)
    assert res.exit_code == 0, res
    assert res.stdout.count(": ok") == 18
    # from now on releases come in through a reviewed sync; a dry run changes nothing
    res = run("sync", "--all", "--dry-run", cwd=root)
    assert res.exit_code == 0, res
    assert git(root, "status", "--porcelain", "--untracked-files=all", "--", DEST) == ""
