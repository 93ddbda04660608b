"""The migration proof on a real project that vendors with the vendoring tool: pip.

:func:`tests.support.pip_project.build_pip_project` rebuilds pip 26.2 as its
repository has it (its patches recovered and proven with the real vendoring
tool, which then reproduces pip's shipped tree exactly). On that project,
``forkman migrate vendoring`` and ``forkman sync --all`` must leave
``src/pip/_vendor`` byte for byte as committed (``git status`` says nothing),
with ``forkman check`` and ``forkman verify`` passing. Then ``forkman sync``
carries pip's patches onto the newer releases pip 26.3 ships, and gives
exactly pip 26.3's trees.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path

import pytest
import requests

from forkman.model.config import load_config
from forkman.model.lock import load_lock
from forkman.model.project import Project
from forkman.model.vendoring import vendoring_config
from forkman.operations.migrate import migrate_vendoring
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


PIP_NEXT = (
    "https://files.pythonhosted.org/packages/53/c7/"
    "f8d9e2e0e7c1ed8a22a10eeb3b5bf7860bc07d8446c7a978a882c5c8214b/pip-26.3.tar.gz",
    "6c36ae7da8695be67e3cd9f7d87919667ced53f57ce2ede75d89b5912ed2bc4c",
)


def test_sync_carries_pips_patches_to_what_pip_ships_next(
    pip_project: Path, tmp_path: Path
) -> None:
    """pip 26.3 moved urllib3, pygments and truststore to newer releases and kept its
    patches on them: forkman's sync, carrying the 26.2 patches by three-way merges onto
    the same releases, gives byte for byte the trees pip 26.3 ships."""
    url, sha256 = PIP_NEXT
    data = requests.get(url, timeout=120).content
    assert hashlib.sha256(data).hexdigest() == sha256
    (tmp_path / "pip-26.3.tar.gz").write_bytes(data)
    with tarfile.open(tmp_path / "pip-26.3.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    shipped = tmp_path / "pip-26.3" / DEST
    root = tmp_path / "pip"
    shutil.copytree(pip_project, root, symlinks=True)
    assert run("migrate", "vendoring", cwd=root).exit_code == 0
    assert run("sync", "--all", "--yes", cwd=root).exit_code == 0
    for name, version in (("urllib3", "2.8.0"), ("pygments", "2.21.0"), ("truststore", "0.10.5")):
        assert f"{name}=={version}" in (shipped / "vendor.txt").read_text()
        res = run("sync", name, "--to", version, "--yes", cwd=root)
        assert res.exit_code == 0, res
        assert "1 patch(es) carried" in res.stdout, res
        ours = {p.relative_to(root / DEST): p.read_bytes() for p in _files(root / DEST / name)}
        theirs = {p.relative_to(shipped): p.read_bytes() for p in _files(shipped / name)}
        assert ours == theirs, f"{name}: differs from what pip 26.3 ships"
    assert run("check", cwd=root).exit_code == 0
    assert run("verify", "urllib3", "pygments", "truststore", cwd=root).exit_code == 0


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
