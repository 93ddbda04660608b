"""Session-wide isolation and shared fixtures.

Every test gets its own cache and HOME in tmp_path, a fixed git identity,
NO_COLOR and fixed COLUMNS, so no test reads or writes the developer's files.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.index import LocalIndex

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


def shared_fixture(*parts: str) -> Path:
    """A file under ../shared/fixtures; skip the test with a reason when absent."""
    path = SHARED_FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared fixture {path} is absent (real-world data lives beside the repo)")
    return path


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("FORKMAN_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)  # the cache key: under HOME
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Forkman Tests")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "tests@forkman.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Forkman Tests")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "tests@forkman.invalid")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("FORKMAN_INDEX_URL", raising=False)


@pytest.fixture
def local_index(tmp_path: Path) -> Iterator[LocalIndex]:
    """A real package index on 127.0.0.1 (empty; tests add files)."""
    index = LocalIndex(tmp_path / "index").start()
    try:
        yield index
    finally:
        index.stop()


@pytest.fixture
def needs_namespaces() -> None:
    """Skip where the host offers no user namespaces (the sandbox's strongest tier)."""
    from forkman.sandbox import Tier, detect

    support = detect()
    if support.best_tier is not Tier.NAMESPACES:
        pytest.skip(f"this host offers no user namespaces: {support.namespaces.detail}")


@pytest.fixture
def runner_on_index(local_index: LocalIndex) -> None:
    """pytest and setuptools as wheels on the local index, as a real index offers them
    (`forkman test` fetches its build backend and test runner as wheels)."""
    from tests.support.wheels import serve_test_runner

    serve_test_runner(local_index)


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` and return its stdout."""
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def project(tmp_path: Path, local_index: LocalIndex) -> Path:
    """A consumer project: a git repository with a pyproject.toml, set up for `local_index`."""
    root = tmp_path / "consumer"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\n\n'
        f'[tool.forkman]\nindex-url = "{local_index.url}"\n'
    )
    git(root, "add", "pyproject.toml")
    git(root, "commit", "-q", "-m", "init")
    return root


@pytest.fixture
def cwd(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside `project`."""
    monkeypatch.chdir(project)
    return project


os.environ.setdefault("FORKMAN_TESTING", "1")
