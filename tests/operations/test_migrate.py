"""`forkman migrate vendoring`: config, pins and patch series from [tool.vendoring]."""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from forkman.cli import cli
from forkman.core.errors import BadInput, ConfigError, NotFound
from forkman.model.config import load_config
from forkman.model.project import Project
from forkman.model.vendoring import vendoring_config
from forkman.operations.migrate import migrate_vendoring, split_patch
from tests.conftest import git

PYPROJECT = """\
[project]
name = "tool"
version = "1.0"

[tool.vendoring]
destination = "src/tool/_vendor/"
requirements = "src/tool/_vendor/vendor.txt"
namespace = "tool._vendor"
protected-files = ["__init__.py", "README.rst", "vendor.txt"]
patches-dir = "tools/vendoring/patches"

[tool.vendoring.transformations]
substitute = [
  { match='pkg_resources\\.extern', replace="tool._vendor" },
]
drop = [
  "*.dist-info/",
  "bin/",
  "msgpack/*.so",
  "pygments/styles/[!_]*.py",
  '^pygments/lexers/(?!python|__init__|_mapping).*\\.py$',
]

[tool.vendoring.typing-stubs]
six = ["six.__init__", "six.moves.__init__"]
distro = []

[tool.vendoring.license.directories]
setuptools = "pkg_resources"

[tool.vendoring.license.fallback-urls]
distlib = "https://example.invalid/distlib/LICENSE.txt"
"""

VENDOR_TXT = """\
CacheControl==0.14.1  # Make sure to update the license in pyproject.toml for this.
requests==2.32.3
    certifi==2024.8.30
setuptools==70.3.0
six==1.16.0
"""


def diff(path: str, old: str = "x = 1", new: str = "x = 2") -> str:
    return (
        f"diff --git a/{path} b/{path}\nindex 1111111..2222222 100644\n"
        f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{old}\n+{new}\n"
    )


@pytest.fixture
def tool(tmp_path: Path) -> Project:
    root = tmp_path / "tool"
    (root / "src" / "tool" / "_vendor").mkdir(parents=True)
    (root / "tools" / "vendoring" / "patches").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "src" / "tool" / "_vendor" / "vendor.txt").write_text(VENDOR_TXT)
    patches = root / "tools" / "vendoring" / "patches"
    (patches / "certifi.patch").write_text(
        "From: someone\nSubject: certifi: use the system store\n\n"
        + diff("src/tool/_vendor/certifi/core.py")
    )
    (patches / "requests.patch").write_text(
        diff("src/tool/_vendor/requests/__init__.py")
        + diff("src/tool/_vendor/cachecontrol/adapter.py")
        + diff("src/tool/_vendor/__init__.py")
        + diff("src/tool/_vendor/pkg_resources/__init__.py")
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return Project(root)


def test_migrate_writes_config_and_patch_series(tool: Project) -> None:
    result = migrate_vendoring(tool)
    assert result.pins == {
        "cachecontrol": "0.14.1",
        "requests": "2.32.3",
        "certifi": "2024.8.30",
        "setuptools": "70.3.0",
        "six": "1.16.0",
    }
    data = tomllib.loads(tool.pyproject.read_text())
    assert data["tool"]["vendoring"]["namespace"] == "tool._vendor"  # the old table stays
    forkman = data["tool"]["forkman"]
    assert forkman["prefer"] == "wheel"
    assert forkman["forks"]["certifi"] == {
        "requirement": "certifi==2024.8.30",
        "layout": "namespace",
    }
    vt = forkman["vendoring"]
    assert vt["destination"] == "src/tool/_vendor"
    assert vt["drop"] == [
        "*.dist-info",
        "bin",
        "msgpack/*.so",
        "pygments/styles/[!_]*.py",
        {"regex": "^pygments/lexers/(?!python|__init__|_mapping).*\\.py$"},
    ]
    assert vt["license-overrides"] == {
        "setuptools": {"directory": "pkg_resources"},
        "distlib": {"url": "https://example.invalid/distlib/LICENSE.txt"},
    }
    assert vt["typing-stubs"]["distro"] == []
    assert vt["rewrite-mode"] == "vendoring-compat"
    # the new table is a valid forkman configuration
    vcfg = vendoring_config(load_config(tool.pyproject))
    assert vcfg.namespace == "tool._vendor" and len(vcfg.drop) == 5
    dropped = [r for r in vcfg.drop if r.matches("pygments/lexers/rust.py")]
    assert dropped and not any(r.matches("pygments/lexers/python.py") for r in vcfg.drop)
    assert any(r.matches("pygments/styles/monokai.py") for r in vcfg.drop)
    assert not any(r.matches("pygments/styles/__init__.py") for r in vcfg.drop)
    # patches, split per fork, paths relative to the namespace directory
    files = sorted(p.file for p in result.patches)
    assert files == [
        "patches/cachecontrol/0001-requests.patch",
        "patches/certifi/0001-certifi.patch",
        "patches/requests/0001-requests.patch",
        "patches/setuptools/0001-requests.patch",
    ]
    certifi = (tool.root / "patches/certifi/0001-certifi.patch").read_text()
    # the tool applies its patches before rewriting imports: the header says so
    assert certifi.startswith(
        "Description: certifi: use the system store\nAuthor: someone\nForwarded: no\n"
        "Forkman-Stage: before-rewrite\n---\n"
    )
    assert "diff --git a/certifi/core.py b/certifi/core.py\n" in certifi
    assert "+++ b/certifi/core.py\n" in certifi
    setuptools = (tool.root / "patches/setuptools/0001-requests.patch").read_text()
    header, _, body = setuptools.partition("\n---\n")
    # a bare diff gets a header naming the tool's patch it came from
    assert header == (
        "Description: requests\n The vendoring tool's patch "
        "tools/vendoring/patches/requests.patch, split per package by forkman migrate vendoring."
        "\nForwarded: no\nForkman-Stage: before-rewrite"
    )
    assert "a/pkg_resources/__init__.py" in body and "requests" not in body
    assert result.skipped == (
        "tools/vendoring/patches/requests.patch: __init__.py (protected: the project's own file)",
    )


def test_migrated_patch_applies_inside_the_namespace_dir(tool: Project, tmp_path: Path) -> None:
    migrate_vendoring(tool)
    ns = tmp_path / "ns"
    (ns / "certifi").mkdir(parents=True)
    (ns / "certifi" / "core.py").write_text("x = 1\n")
    subprocess.run(
        ["git", "apply", str(tool.root / "patches/certifi/0001-certifi.patch")],
        cwd=ns,
        check=True,
        capture_output=True,
    )
    assert (ns / "certifi" / "core.py").read_text() == "x = 2\n"


def test_dry_run_writes_nothing(tool: Project) -> None:
    before = tool.pyproject.read_text()
    result = migrate_vendoring(tool, dry_run=True)
    assert len(result.patches) == 4
    assert tool.pyproject.read_text() == before
    assert not (tool.root / "patches").exists()


def _status(project: Project) -> str:
    return git(project.root, "status", "--porcelain", "--untracked-files=all")


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda r: (r / "src/tool/_vendor/vendor.txt").unlink(), NotFound, "vendor.txt does not"),
        (lambda r: _rm_tree(r / "tools"), NotFound, "patches-dir"),
        (
            lambda r: (r / "src/tool/_vendor.py").write_text(""),
            BadInput,
            "collides with the module",
        ),
        (
            lambda r: (r / "src/tool/_vendor/vendor.txt").write_text("requests>=2\n"),
            BadInput,
            "not an exact pin",
        ),
        (
            lambda r: (r / "tools/vendoring/patches/zz.patch").write_text(
                diff("src/tool/_vendor/mystery/x.py")
            ),
            BadInput,
            "which pinned package provides mystery",
        ),
        (
            lambda r: (r / "tools/vendoring/patches/zz.patch").write_text(diff("setup.py")),
            BadInput,
            "outside src/tool/_vendor",
        ),
        (
            lambda r: (r / "pyproject.toml").write_text(
                PYPROJECT.replace(
                    'namespace = "tool._vendor"', 'namespace = "six._vendor"'
                ).replace('destination = "src/tool/_vendor/"', 'destination = "six/_vendor"')
            ),
            None,
            "",
        ),
        (
            lambda r: (r / "pyproject.toml").write_text("[project]\nname='x'\n"),
            ConfigError,
            "no [tool.vendoring]",
        ),
    ],
)
def test_bad_input_changes_nothing(
    tool: Project,
    edit: Callable[[Path], object],
    error: type[Exception] | None,
    message: str,
) -> None:
    edit(tool.root)
    git(tool.root, "add", "-A")
    before = _status(tool)
    with pytest.raises(error or BadInput, match=message.replace("[", r"\[") or "collides"):
        migrate_vendoring(Project(tool.root))
    assert _status(tool) == before
    assert not (tool.root / "patches").exists()


def _rm_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def test_second_migration_is_refused(tool: Project) -> None:
    migrate_vendoring(tool)
    with pytest.raises(BadInput, match="migrated"):
        migrate_vendoring(Project(tool.root))


def test_split_patch_needs_git_headers() -> None:
    with pytest.raises(BadInput, match="not a git patch"):
        split_patch("--- a\n+++ b\n", "d", {}, set())


def test_cli(tool: Project) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["--project", str(tool.root), "migrate", "vendoring", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "would write 5 forks:" in res.output and "  six==1.16.0" in res.output
    res = runner.invoke(cli, ["--project", str(tool.root), "migrate", "vendoring"])
    assert res.exit_code == 0
    assert "wrote patches/certifi/0001-certifi.patch" in res.output
    res = runner.invoke(cli, ["--project", str(tool.root), "migrate", "vendoring"])
    assert res.exit_code == 2
    assert "error: [tool.forkman.vendoring] exists already" in res.output
    help_text = runner.invoke(cli, ["migrate", "vendoring", "--help"]).output
    assert "Example:" in help_text
