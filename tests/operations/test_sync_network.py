"""Sync a real package from the real PyPI, carrying a real local patch."""

from __future__ import annotations

from pathlib import Path

import pytest

from forkman.model.lock import load_lock
from tests.support.cli import run

PYPI = "https://pypi.org/simple/"


@pytest.mark.network
def test_sync_attrs_with_a_local_patch(cwd: Path) -> None:
    assert run("init").exit_code == 0
    # sync and verify use only configured indexes: PyPI is one of them
    pyproject = cwd / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.forkman]\n", f'[tool.forkman]\nextra-index-urls = ["{PYPI}"]\n', 1
        )
    )
    res = run("fork", "attrs==23.1.0", "--index-url", PYPI)
    assert res.exit_code == 0, res
    target = cwd / "vendor/attrs/src/attr/exceptions.py"
    text = target.read_text()
    assert "class FrozenError" in text
    target.write_text(
        text.replace("class FrozenError", "# forkman: local note\nclass FrozenError", 1)
    )
    res = run("patch", "attrs", "-m", "Document FrozenError locally")
    assert res.exit_code == 0, res
    res = run("sync", "attrs", "--dry-run")
    assert res.exit_code == 0, res
    assert "would move 23.1.0 -> " in res.stdout
    res = run("sync", "attrs", "--to", "23.2.0", "--yes")
    assert res.exit_code == 0, res
    assert "attrs: 23.1.0 -> 23.2.0, 1 patch(es) carried" in res.stdout
    entry = load_lock(cwd / "forkman.lock").forks["attrs"]
    assert entry.version == "23.2.0"
    assert entry.source.filename == "attrs-23.2.0.tar.gz"  # type: ignore[union-attr]
    assert entry.sections["sync"]["from"] == "23.1.0"
    assert "# forkman: local note\nclass FrozenError" in target.read_text()
    assert run("check").exit_code == 0
    res = run("verify")
    assert res.exit_code == 0, res
    res = run("diff", "attrs", "--upstream", "23.1.0..23.2.0")
    assert res.exit_code == 0 and "diff --git" in res.stdout
