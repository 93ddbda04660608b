"""`.pre-commit-hooks.yaml` run by the real `pre-commit` in real git repositories.

The default tests take the hook definitions from this repository's
`.pre-commit-hooks.yaml` and run them as `repo: local` hooks with
`language: system` calling this interpreter, so they need no network. The
`network` test lets pre-commit install forkman from a tagged clone of this
repository, the way users get it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from forkman.cli import COMMANDS
from tests.conftest import REPO_ROOT, git
from tests.support.cli import run
from tests.support.index import LocalIndex

PRE_COMMIT = Path(sys.executable).with_name("pre-commit")


def hook_definitions() -> dict[str, dict[str, Any]]:
    hooks = yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text())
    return {h["id"]: h for h in hooks}


def local_config(ids: tuple[str, ...] = ("forkman-check",)) -> str:
    """A .pre-commit-config.yaml running our hooks with this interpreter, offline."""
    hooks = []
    for hook_id in ids:
        hook = dict(hook_definitions()[hook_id])
        hook["language"] = "system"
        hook["entry"] = f"{sys.executable} -m forkman {hook['entry'].split(' ', 1)[1]}"
        hooks.append(hook)
    return yaml.safe_dump({"repos": [{"repo": "local", "hooks": hooks}]}, sort_keys=False)


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
    }


def commit(root: Path, env: dict[str, str], message: str) -> subprocess.CompletedProcess[str]:
    """`git commit` with the installed pre-commit hook (what a developer runs)."""
    return subprocess.run(
        ["git", "commit", "-q", "-m", message],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def hooked(cwd: Path, local_index: LocalIndex, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A forkman project with fork demo and the forkman-check hook installed."""
    if not PRE_COMMIT.exists():
        pytest.skip(f"pre-commit is not installed beside {sys.executable}")
    local_index.add_sdist("demo", "1.0")
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    (cwd / ".pre-commit-config.yaml").write_text(local_config(("forkman-check", "forkman-verify")))
    env = _env(tmp_path)
    subprocess.run([str(PRE_COMMIT), "install"], cwd=cwd, env=env, check=True, capture_output=True)
    git(cwd, "add", "-A")
    return cwd, env


def test_hooks_file_offers_check_and_a_manual_verify() -> None:
    hooks = hook_definitions()
    check = hooks["forkman-check"]
    assert check["entry"] == "forkman check" and check["language"] == "python"
    assert check["pass_filenames"] is False and check["always_run"] is True
    verify = hooks["forkman-verify"]
    assert verify["entry"] == "forkman verify" and verify["stages"] == ["manual"]


def test_clean_commit_passes(hooked: tuple[Path, dict[str, str]]) -> None:
    root, env = hooked
    res = commit(root, env, "fork demo")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "forkman check" in res.stdout + res.stderr
    assert git(root, "log", "--format=%s", "-1").strip() == "fork demo"


def test_hand_edited_vendored_file_is_refused(hooked: tuple[Path, dict[str, str]]) -> None:
    root, env = hooked
    assert commit(root, env, "fork demo").returncode == 0
    (root / "vendor/demo/README.md").write_text("edited by hand\n")
    git(root, "add", "vendor/demo/README.md")
    res = commit(root, env, "sneaky edit")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "demo: modified: vendor/demo/README.md" in out
    assert "forkman patch demo -m MESSAGE" in out
    assert git(root, "log", "--format=%s", "-1").strip() == "fork demo"


def test_unstaged_edit_does_not_block_a_commit_that_excludes_it(
    hooked: tuple[Path, dict[str, str]],
) -> None:
    root, env = hooked
    assert commit(root, env, "fork demo").returncode == 0
    (root / "vendor/demo/README.md").write_text("work in progress\n")
    (root / "notes.txt").write_text("unrelated\n")
    git(root, "add", "notes.txt")
    res = commit(root, env, "notes")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (root / "vendor/demo/README.md").read_text() == "work in progress\n"  # kept


def test_hand_edited_lock_is_refused(hooked: tuple[Path, dict[str, str]]) -> None:
    root, env = hooked
    assert commit(root, env, "fork demo").returncode == 0
    lock = root / "forkman.lock"
    lock.write_text(lock.read_text().replace('version = "1.0"', 'version = "1.0"  # pinned'))
    git(root, "add", "forkman.lock")
    res = commit(root, env, "edit lock")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "lock edited: forkman.lock" in out
    assert "git checkout -- forkman.lock" in out


@pytest.mark.skipif("patch" not in COMMANDS, reason="`forkman patch` is not on this branch yet")
def test_recorded_patch_passes(hooked: tuple[Path, dict[str, str]]) -> None:
    root, env = hooked
    assert commit(root, env, "fork demo").returncode == 0
    (root / "vendor/demo/README.md").write_text("patched\n")
    res = run("patch", "demo", "-m", "Say patched", cwd=root)
    assert res.exit_code == 0, res
    git(root, "add", "-A")
    res2 = commit(root, env, "patch demo")
    assert res2.returncode == 0, res2.stdout + res2.stderr


def test_manual_verify_hook(hooked: tuple[Path, dict[str, str]]) -> None:
    root, env = hooked
    assert commit(root, env, "fork demo").returncode == 0
    res = subprocess.run(
        [str(PRE_COMMIT), "run", "--hook-stage", "manual", "forkman-verify"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Passed" in res.stdout


def test_outside_a_forkman_project(tmp_path: Path) -> None:
    if not PRE_COMMIT.exists():
        pytest.skip(f"pre-commit is not installed beside {sys.executable}")
    root = tmp_path / "plain"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "pyproject.toml").write_text('[project]\nname = "plain"\n')
    (root / ".pre-commit-config.yaml").write_text(local_config())
    git(root, "add", "-A")
    res = subprocess.run(
        [str(PRE_COMMIT), "run", "--all-files"],
        cwd=root,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 1  # pre-commit's own code for a failed hook
    assert "exit code: 2" in res.stdout  # forkman's: an error, not findings
    assert "is not a forkman project" in res.stdout
    assert "run `forkman init`" in res.stdout


@pytest.mark.network
@pytest.mark.slow
def test_hook_installed_from_a_tagged_clone(
    cwd: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    """pre-commit installs forkman from the repository (dependencies from PyPI)."""
    if not PRE_COMMIT.exists():
        pytest.skip(f"pre-commit is not installed beside {sys.executable}")
    clone = tmp_path / "forkman-clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    git(clone, "tag", "v0.0.0-test")
    local_index.add_sdist("demo", "1.0")
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    (cwd / ".pre-commit-config.yaml").write_text(
        yaml.safe_dump(
            {
                "repos": [
                    {"repo": str(clone), "rev": "v0.0.0-test", "hooks": [{"id": "forkman-check"}]}
                ]
            }
        )
    )
    git(cwd, "add", "-A")
    env = {k: v for k, v in _env(tmp_path).items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [str(PRE_COMMIT), "run", "--all-files"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    (cwd / "vendor/demo/README.md").write_text("edited\n")
    res = subprocess.run(
        [str(PRE_COMMIT), "run", "--all-files"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 1 and "vendor/demo/README.md" in res.stdout
    shutil.rmtree(tmp_path / "pre-commit-home", ignore_errors=True)
