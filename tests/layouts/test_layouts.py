"""Fork, check, verify and unfork in both layouts, through the core."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from forkman.model.lock import load_lock
from tests.support.cli import run
from tests.support.index import LocalIndex


def test_project_layout_is_wired_and_unwired(cwd: Path, local_index: LocalIndex) -> None:
    assert run("init").exit_code == 0
    local_index.add_sdist("demo", "1.0")
    before = (cwd / "pyproject.toml").read_text()
    assert run("fork", "demo==1.0").exit_code == 0
    pyproject = (cwd / "pyproject.toml").read_text()
    assert "[tool.uv.sources]" in pyproject
    assert 'demo = {path = ".forkman/dist/demo/demo.tar.gz"}' in pyproject
    assert 'constraint-dependencies = ["demo"]' in pyproject
    assert (
        (cwd / "forkman-requirements.txt")
        .read_text()
        .endswith("./.forkman/dist/demo/demo.tar.gz  # fork: demo\n")
    )
    assert (cwd / ".forkman/dist/demo/demo.tar.gz").is_file()
    assert run("check").exit_code == 0
    assert run("unfork", "demo").exit_code == 0
    assert (cwd / "pyproject.toml").read_text() == before
    assert not (cwd / "forkman-requirements.txt").exists()
    assert not (cwd / ".forkman/dist/demo").exists()


def test_wiring_can_be_turned_off(cwd: Path, local_index: LocalIndex) -> None:
    assert run("init").exit_code == 0
    (cwd / "pyproject.toml").write_text((cwd / "pyproject.toml").read_text() + "wire = false\n")
    local_index.add_sdist("demo", "1.0")
    assert run("fork", "demo==1.0").exit_code == 0
    assert "uv.sources" not in (cwd / "pyproject.toml").read_text()
    assert not (cwd / "forkman-requirements.txt").exists()
    assert not (cwd / ".forkman/dist/demo").exists()


@pytest.fixture
def namespace_project(cwd: Path, local_index: LocalIndex) -> Path:
    (cwd / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\n\n'
        f'[tool.forkman]\nindex-url = "{local_index.url}"\n\n'
        '[tool.forkman.vendoring]\nnamespace = "consumer._vendor"\n'
        'destination = "src/consumer/_vendor"\n'
    )
    (cwd / "src" / "consumer" / "_vendor").mkdir(parents=True)
    (cwd / "src" / "consumer" / "__init__.py").write_text("")
    (cwd / "src" / "consumer" / "_vendor" / "__init__.py").write_text("")
    assert run("init").exit_code == 0
    local_index.add_wheel(
        "beta",
        "2.0",
        {"beta/__init__.py": "NAME = 'vendored beta'\n", "beta/py.typed": ""},
    )
    local_index.add_wheel(
        "alpha",
        "1.0",
        {
            "alpha/__init__.py": "import beta\nimport beta.sub as sub\n\n"
            "def who():\n    return beta.NAME + ' via ' + sub.X\n",
            "alpha/LICENSE": "MIT\n",
        },
    )
    local_index.add_wheel("beta", "2.0.1", {"beta/__init__.py": "NAME = 'x'\n"})
    return cwd


def test_namespace_layout_rewrites_imports_and_checks_members(
    namespace_project: Path, local_index: LocalIndex
) -> None:
    root = namespace_project
    # beta gets a submodule for `import beta.sub as sub`
    local_index.projects["beta"] = []
    local_index.add_wheel(
        "beta",
        "2.0",
        {"beta/__init__.py": "NAME = 'vendored beta'\n", "beta/sub.py": "X = 'sub'\n"},
    )
    assert run("fork", "beta==2.0").exit_code == 0
    res = run("fork", "alpha==1.0")
    assert res.exit_code == 0, res
    vendor = root / "src/consumer/_vendor"
    lock = load_lock(root / "forkman.lock")
    alpha = lock.forks["alpha"]
    assert alpha.layout == "namespace"
    assert alpha.path == "src/consumer/_vendor"
    assert "alpha" in alpha.sections["namespace"]["members"]
    code = (vendor / "alpha/__init__.py").read_text()
    assert "import beta" not in code.splitlines()
    assert "from consumer._vendor import beta" in code.splitlines()
    assert not list(vendor.glob("*.dist-info"))
    # the rewritten code imports the vendored beta, not a top-level one
    decoy = root / "decoy"
    (decoy / "beta").mkdir(parents=True)
    (decoy / "beta/__init__.py").write_text("NAME = 'DECOY'\n")
    out = subprocess.run(
        [sys.executable, "-c", "from consumer._vendor import alpha; print(alpha.who())"],
        env={**os.environ, "PYTHONPATH": f"{root / 'src'}:{decoy}"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "vendored beta via sub"
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0, run("verify")
    (vendor / "beta/sub.py").write_text("X = 'edited'\n")
    res = run("check", "--format", "json")
    assert res.exit_code == 1
    paths = {f["path"] for f in json.loads(res.stdout)["findings"]}
    assert paths == {"src/consumer/_vendor/beta/sub.py"}
    (vendor / "beta/sub.py").write_text("X = 'sub'\n")
    assert run("unfork", "alpha").exit_code == 0
    assert not (vendor / "alpha").exists()
    assert (vendor / "beta/__init__.py").exists() and (vendor / "__init__.py").exists()
    assert run("check").exit_code == 0


def test_namespace_refuses_a_member_owned_by_another_fork(
    namespace_project: Path, local_index: LocalIndex
) -> None:
    assert run("fork", "beta==2.0").exit_code == 0
    local_index.add_wheel("beta-again", "1.0", {"beta/__init__.py": "NAME = 'other'\n"})
    before = (namespace_project / "src/consumer/_vendor/beta/__init__.py").read_text()
    res = run("fork", "beta-again==1.0")
    assert res.exit_code == 2
    assert "already belongs to fork beta" in res.stderr
    assert (namespace_project / "src/consumer/_vendor/beta/__init__.py").read_text() == before
    assert set(load_lock(namespace_project / "forkman.lock").forks) == {"beta"}


def test_wiring_into_a_uv_table_that_is_not_contiguous(cwd: Path, local_index: LocalIndex) -> None:
    """[tool.uv] with [tool.uv.sources] further down the file (tomlkit proxies it)."""
    assert run("init").exit_code == 0
    text = (cwd / "pyproject.toml").read_text()
    (cwd / "pyproject.toml").write_text(
        text.replace("[tool.forkman]", "[tool.uv]\npackage = true\n\n[tool.forkman]", 1)
        + '\n[tool.uv.sources]\nother = { path = "elsewhere/other" }\n'
    )
    local_index.add_sdist("demo", "1.0")
    res = run("fork", "demo==1.0")
    assert res.exit_code == 0, res
    pyproject = (cwd / "pyproject.toml").read_text()
    assert 'demo = {path = ".forkman/dist/demo/demo.tar.gz"}' in pyproject
    assert 'other = { path = "elsewhere/other" }' in pyproject
    assert tomllib.loads(pyproject)["tool"]["uv"]["constraint-dependencies"] == ["demo"]
    assert run("unfork", "demo").exit_code == 0
    after = (cwd / "pyproject.toml").read_text()
    assert "demo" not in after and 'other = { path = "elsewhere/other" }' in after
