"""The documentation site: the CLI reference is generated, and `mkdocs build --strict` passes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from forkman.cli import COMMANDS
from forkman.cli._app import cli
from tests.conftest import REPO_ROOT


def _hook() -> object:
    spec = importlib.util.spec_from_file_location(
        "mkdocs_cli_reference", REPO_ROOT / "scripts" / "mkdocs_cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_covers_every_command_and_option() -> None:
    page = _hook().render_reference()  # type: ignore[attr-defined]
    ctx = click.Context(cli, info_name="forkman")
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        assert f"## `forkman {name}`" in page
        assert f"Usage: forkman {name}" in page
        for param in command.params:
            if isinstance(param, click.Option):
                assert f"`{param.opts[0]}`" in page, (name, param.opts)
    assert page.count("Example") >= len(COMMANDS)


def test_nav_lists_every_page_and_links_the_other_subsystems() -> None:
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())

    def pages(nav: object) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, list):
            return [p for item in nav for p in pages(item)]
        if isinstance(nav, dict):
            return [p for value in nav.values() for p in pages(value)]
        return []

    listed = set(pages(config["nav"]))
    for page in (
        "index.md",
        "tutorial.md",
        "reference/cli.md",
        "api.md",
        "configuration.md",
        "lock-format.md",
        "sandbox.md",
        "architecture.md",
        "sources.md",
        "audit.md",
        "wiring.md",
        "patches-and-sync.md",
        "integrations.md",
        "agents.md",
    ):
        assert page in listed, page
    on_disk = {
        p.relative_to(REPO_ROOT / "docs").as_posix() for p in (REPO_ROOT / "docs").rglob("*.md")
    }
    assert on_disk <= listed, f"pages missing from the nav: {on_disk - listed}"


def test_lock_format_page_documents_every_key_the_lock_writes() -> None:
    from forkman.model import lock as _lock

    text = (REPO_ROOT / "docs" / "lock-format.md").read_text()
    for key in _lock._CORE_KEYS | {
        "index-url",
        "requirement",
        "filename",
        "sha256",
        "ref",
        "commit",
        "subdirectory",
        "fixes",
    }:
        assert f"`{key}`" in text, key
    assert f"`{_lock.LOCK_VERSION}`" in text


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists():
        pytest.skip("mkdocs is not installed (pip install forkman[docs])")
    res = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(tmp_path)},
    )
    assert res.returncode == 0, res.stderr
    cli_page = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    for name in COMMANDS:
        assert f"forkman {name}" in cli_page
    assert (tmp_path / "site" / "tutorial" / "index.html").exists()
