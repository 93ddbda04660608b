"""`forkman fork` verifies PEP 740 provenance offered by the index (real Sigstore material)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from forkman.model.lock import load_lock
from tests.conftest import shared_fixture
from tests.support.cli import run, snapshot
from tests.support.index import LocalIndex

SDIST = "pypi_attestations-0.0.19.tar.gz"


@pytest.fixture
def attested(tmp_path: Path, local_index: LocalIndex) -> LocalIndex:
    folder = shared_fixture("attestations")
    files = tmp_path / "attested"
    files.mkdir()
    shutil.copy(folder / SDIST, files / SDIST)
    local_index.add_file(
        "pypi-attestations",
        files / SDIST,
        provenance=(folder / f"{SDIST}.provenance").read_bytes(),
    )
    return local_index


def test_fork_records_the_verified_publisher(cwd: Path, attested: LocalIndex) -> None:
    assert run("init").exit_code == 0
    res = run("fork", "pypi-attestations==0.0.19")
    assert res.exit_code == 0, res
    assert "published by github: trailofbits/pypi-attestations" in res.stderr
    entry = load_lock(cwd / "forkman.lock").forks["pypi-attestations"]
    provenance = entry.sections["provenance"]
    assert provenance["kind"] == "github"
    assert provenance["repository"] == "trailofbits/pypi-attestations"
    assert provenance["workflow"] == "release.yml"
    assert provenance["file"] == SDIST
    assert run("check").exit_code == 0


def test_fork_refuses_provenance_for_another_file(
    cwd: Path, attested: LocalIndex, tmp_path: Path
) -> None:
    assert run("init").exit_code == 0
    entry = attested.projects["pypi-attestations"][0]
    # the index now serves a different file under the same name, with the old provenance
    other = attested.add_sdist("decoy", "0.0.19")
    data = other.path.read_bytes()
    entry.path.write_bytes(data)
    before = snapshot(cwd, skip=(".git", ".forkman"))
    res = run("fork", "pypi-attestations==0.0.19")
    assert res.exit_code == 2, res
    assert "error:" in res.stderr
    assert snapshot(cwd, skip=(".git", ".forkman")) == before


def test_require_provenance_refuses_unattested_release(cwd: Path, local_index: LocalIndex) -> None:
    assert run("init").exit_code == 0
    pyproject = cwd / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text() + "\n[tool.forkman.audit]\nrequire-provenance = true\n"
    )
    local_index.add_sdist("demo", "1.0")
    res = run("fork", "demo==1.0")
    assert res.exit_code == 2, res
    assert "provenance" in res.stderr
    assert not (cwd / "vendor").exists()
