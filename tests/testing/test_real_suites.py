"""Real releases' own suites, forked from the real PyPI and tested with no configuration.

Each test forks a release whose sdist ships its tests and runs `forkman test` on
it, zero-config: forkman must find the suite's test dependencies, build the fork
in the sandbox, and prove the suite imported that build. The counts are those
of an unsandboxed run of the same suite (benchmarks/real_suites.py measures
them); the assertions leave room for the interpreter (six's dbm test needs a
``_dbm`` this Python may lack).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from forkman.model.lock import load_lock
from forkman.model.project import cache_root
from forkman.sandbox import Tier, detect
from tests.support.cli import run

pytestmark = [pytest.mark.network, pytest.mark.sandbox]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One forkman and pip cache for the module: build venvs and downloads are shared
    (content-keyed), which keeps the module's time on the real index short."""
    return tmp_path_factory.mktemp("real-suites-cache")


@pytest.fixture
def pypi_project(tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A consumer project on the real PyPI (forkman's default index), as cwd."""
    support = detect()
    if support.best_tier is not Tier.NAMESPACES:
        pytest.skip(f"this host offers no user namespaces: {support.namespaces.detail}")
    monkeypatch.setenv("FORKMAN_CACHE_DIR", str(shared_cache / "forkman"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared_cache))
    root = tmp_path / "consumer"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    (root / "pyproject.toml").write_text('[project]\nname = "consumer"\nversion = "0.1.0"\n')
    monkeypatch.chdir(root)
    assert run("init").exit_code == 0
    return root


def _test(*names: str) -> dict[str, dict[str, Any]]:
    res = run("test", *names, "--format", "json")
    assert res.exit_code in (0, 1), res
    return {row["name"]: row for row in json.loads(res.stdout)}


def _proof(root: Path, name: str, module: str) -> list[str]:
    """The fork's ``imported-from`` in the lock, checked to name `module` in the venv."""
    section = load_lock(root / "forkman.lock").forks[name].sections["test"]
    proof = list(section["imported-from"])
    assert f"{module}: {module}/__init__.py" in proof or f"{module}: {module}.py" in proof, proof
    assert not any(".." in p or p.split(": ", 1)[1].startswith("/") for p in proof), proof
    return proof


def _site(section: dict[str, Any]) -> Path:
    """The site-packages of the test environment a lock's test section names."""
    key = str(section["env"]).removeprefix("sha256:")
    (site,) = (cache_root() / "envs" / key[:32]).glob("lib/python*/site-packages")
    return site


def test_six_runs_with_no_configuration(pypi_project: Path) -> None:
    assert run("fork", "six==1.16.0").exit_code == 0
    row = _test("six")["six"]
    assert row["status"] in ("passed", "failed"), row
    assert row["passed"] >= 190, row
    # the one known failure, where it happens, is the interpreter's missing _dbm
    assert all("_dbm" in f["message"] for f in row["failures"]), row["failures"]
    _proof(pypi_project, "six", "six")


def test_idna_runs_with_no_configuration(pypi_project: Path) -> None:
    assert run("fork", "idna==3.6").exit_code == 0
    row = _test("idna")["idna"]
    assert row["status"] == "passed", row
    assert row["passed"] >= 30, row
    _proof(pypi_project, "idna", "idna")


def test_charset_normalizer_gets_the_coverage_plugin_its_addopts_need(
    pypi_project: Path,
) -> None:
    # setup.cfg's addopts say --cov: without pytest-cov the suite stops with a usage error
    assert run("fork", "charset-normalizer==3.3.2").exit_code == 0
    explained = run("test", "charset-normalizer", "--explain")
    assert "pytest-cov" in explained.stdout, explained
    row = _test("charset-normalizer")["charset-normalizer"]
    assert row["status"] == "passed", row
    assert row["passed"] >= 130, row
    _proof(pypi_project, "charset-normalizer", "charset_normalizer")


def test_jinja2_is_tested_against_the_projects_markupsafe_fork(pypi_project: Path) -> None:
    assert run("fork", "markupsafe==2.1.3").exit_code == 0
    assert run("fork", "jinja2==3.1.2").exit_code == 0
    # a change only the project's fork of markupsafe has (a pull request's, on disk)
    init = pypi_project / "vendor/markupsafe/src/markupsafe/__init__.py"
    init.write_text(init.read_text() + "\nFORKMAN_FORK_MARK = 'the project fork'\n")
    rows = _test("markupsafe", "jinja2")
    assert rows["markupsafe"]["status"] == "passed", rows["markupsafe"]
    assert rows["markupsafe"]["passed"] >= 50, rows["markupsafe"]
    assert rows["jinja2"]["status"] == "passed", rows["jinja2"]
    assert rows["jinja2"]["passed"] >= 800, rows["jinja2"]
    _proof(pypi_project, "markupsafe", "markupsafe")
    _proof(pypi_project, "jinja2", "jinja2")
    # jinja2's suite ran with markupsafe built from the project's fork, not PyPI's
    section = load_lock(pypi_project / "forkman.lock").forks["jinja2"].sections["test"]
    site = _site(section)
    assert "FORKMAN_FORK_MARK" in (site / "markupsafe" / "__init__.py").read_text()
    (dist,) = site.glob("[Mm]ark[Uu]p[Ss]afe-*.dist-info")
    direct = json.loads((dist / "direct_url.json").read_text())
    assert direct["url"].startswith((cache_root() / "wheels").resolve().as_uri())
