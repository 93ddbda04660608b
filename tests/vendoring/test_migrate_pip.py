"""Migration against a real project that vendors with the vendoring tool: pip.

pip's sdist carries ``src/pip/_vendor`` (the vendored tree pip committed),
``vendor.txt`` and ``[tool.vendoring]``, but not the patches directory. The
test migrates it, checks the config and pins against the real files, checks
the drop rules against the real tree, and re-creates several vendored
packages from their PyPI wheels (and sdists, for licenses) with the migrated
configuration, comparing them byte for byte with what pip ships.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
import requests
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from forkman._config import load_config
from forkman._errors import NotFound
from forkman._observer import RecordingObserver
from forkman._project import Project
from forkman.vendoring._config import vendoring_config
from forkman.vendoring.migrate import migrate_vendoring
from forkman.vendoring.transform import transform_tree

pytestmark = pytest.mark.network

PIP_VERSION = "26.3"
# vendored packages pip does not patch (9 of 18): forkman must reproduce them exactly;
# the others differ from their releases by pip's patches, which the sdist does not ship
UNPATCHED = tuple(
    os.environ.get(
        "FORKMAN_PIP_UNPATCHED",
        "tomli,tomli-w,idna,platformdirs,pyproject-hooks,resolvelib,distro,distlib,packaging",
    ).split(",")
)


def _download(dest: Path, spec: str, *, binary: bool) -> Path:
    """Fetch a pure wheel or the sdist of `spec` (NAME==VERSION) through PyPI's simple API."""
    name, version = spec.split("==")
    response = requests.get(
        f"https://pypi.org/simple/{canonicalize_name(name)}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        timeout=60,
    )
    response.raise_for_status()
    for file in response.json()["files"]:
        filename = file["filename"]
        if binary:
            if not filename.endswith("-none-any.whl"):
                continue
            if parse_wheel_filename(filename)[1] != Version(version):
                continue
        else:
            if not filename.endswith(".tar.gz"):
                continue
            if parse_sdist_filename(filename)[1] != Version(version):
                continue
        data = requests.get(file["url"], timeout=120).content
        assert hashlib.sha256(data).hexdigest() == file["hashes"]["sha256"]
        dest.mkdir(parents=True, exist_ok=True)
        (dest / filename).write_bytes(data)
        return dest / filename
    raise AssertionError(f"no {'wheel' if binary else 'sdist'} for {spec} on PyPI")


@pytest.fixture(scope="module")
def pip_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pip")
    sdist = _download(base / "dl", f"pip=={PIP_VERSION}", binary=False)
    with tarfile.open(sdist) as tar:
        tar.extractall(base, filter="data")
    return base / f"pip-{PIP_VERSION}"


def test_migrate_pip(pip_tree: Path, tmp_path: Path) -> None:
    project = Project(pip_tree)
    # the sdist does not ship tools/vendoring/patches: a clear error, nothing written
    before = project.pyproject.read_bytes()
    with pytest.raises(NotFound, match="patches-dir tools/vendoring/patches does not exist"):
        migrate_vendoring(project)
    assert project.pyproject.read_bytes() == before
    (pip_tree / "tools" / "vendoring" / "patches").mkdir(parents=True)
    result = migrate_vendoring(project)

    vendor = pip_tree / "src" / "pip" / "_vendor"
    pins = {}
    for line in (vendor / "vendor.txt").read_text().splitlines():
        if line.strip():
            name, version = line.strip().split("==")
            pins[name.lower().replace("_", "-")] = version
    assert result.pins == pins
    assert result.namespace == "pip._vendor" and result.destination == "src/pip/_vendor"
    vcfg = vendoring_config(load_config(project.pyproject))
    assert vcfg.protected_files == ("__init__.py", "README.rst", "vendor.txt")
    # every vendored top-level package belongs to a pinned fork
    tops = {p.name for p in vendor.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert tops <= set(result.modules), tops - set(result.modules)
    # the drop rules, applied by the vendoring tool, left nothing they match in the tree
    for path in vendor.rglob("*"):
        rel = path.relative_to(vendor).as_posix()
        assert not any(rule.matches(rel) for rule in vcfg.drop), rel
    # and they do drop what pip dropped (lexers pip keeps vs one it does not)
    assert (vendor / "pygments/lexers/python.py").exists()
    assert any(r.matches("pygments/lexers/rust.py") for r in vcfg.drop)

    # re-create unpatched packages with the migrated configuration, compare byte for byte
    config = load_config(project.pyproject)
    all_modules = tops | {p.stem for p in vendor.glob("*.py") if p.name != "__init__.py"}
    for name in UNPATCHED:
        spec = f"{name}=={pins[name]}"
        wheel = _download(tmp_path / "wheels" / name, spec, binary=True)
        pristine = tmp_path / "pristine" / name
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(pristine)

        def fetch_sdist(dist: str, version: str, name: str = name) -> Path:
            return _download(tmp_path / "sdists" / name, f"{dist}=={version}", binary=False)

        out = tmp_path / "out" / name
        record = transform_tree(
            pristine,
            out,
            fork_name=name,
            config=config,
            observer=RecordingObserver(),
            other_modules=all_modules,
            fetch_sdist=fetch_sdist,
        )
        for member in record["members"]:
            if member.endswith(".pyi"):
                continue  # pip's sdist does not ship the generated stubs
            ours, theirs = out / member, vendor / member
            assert theirs.exists(), f"{name}: {member} is not in pip's tree"
            if ours.is_dir():
                cmp = filecmp.dircmp(ours, theirs)
                _assert_same(cmp, name)
            else:
                assert ours.read_bytes() == theirs.read_bytes(), f"{name}: {member} differs"


def _assert_same(cmp: filecmp.dircmp[str], name: str) -> None:
    extra = [f for f in cmp.left_only if f != "__pycache__"]
    assert not extra and not cmp.right_only, (name, cmp.left, extra, cmp.right_only)
    _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
    assert not mismatch and not errors, (name, cmp.left, mismatch, errors)
    for sub in cmp.subdirs.values():
        _assert_same(sub, name)
