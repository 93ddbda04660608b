"""The one git runner: which configuration and commands each kind of repository gets.

Real git repositories; the hook and fsmonitor commands write a marker file, so
a test sees whether git ran them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from forkman.core import git
from forkman.core.errors import GitError


def _repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def _plant_commands(repo: Path, marker: Path) -> None:
    """A repository whose own configuration runs commands: a hook and an fsmonitor."""
    hooks = repo / ".git" / "hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    hook = hooks / "pre-commit"
    hook.write_text(f"#!/bin/sh\necho hook >> {marker}\n")
    hook.chmod(0o755)
    monitor = repo / "monitor.sh"
    monitor.write_text(f"#!/bin/sh\necho fsmonitor >> {marker}\n")
    monitor.chmod(0o755)
    subprocess.run(["git", "-C", str(repo), "config", "core.fsmonitor", str(monitor)], check=True)


@pytest.mark.parametrize("kind", ["owned", "remote"])
def test_repositories_forkman_keeps_run_no_command_of_their_own(tmp_path: Path, kind: str) -> None:
    owned, remote = kind == "owned", kind == "remote"
    repo = _repo(tmp_path / "kept")
    marker = tmp_path / "ran"
    _plant_commands(repo, marker)
    (repo / "a.txt").write_text("a\n")
    git.run("add", "a.txt", cwd=repo, owned=owned, remote=remote)
    git.run("status", "--porcelain", cwd=repo, owned=owned, remote=remote)
    git.run(
        *("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x"),
        cwd=repo,
        owned=owned,
        remote=remote,
    )
    assert not marker.exists(), marker.read_text()


def test_the_planted_commands_do_run_without_the_runner(tmp_path: Path) -> None:
    """The attack of the test above works against plain git (so that test can fail)."""
    repo = _repo(tmp_path / "plain")
    marker = tmp_path / "ran"
    _plant_commands(repo, marker)
    (repo / "a.txt").write_text("a\n")
    subprocess.run(["git", "-C", str(repo), "add", "a.txt"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
        check=True,
    )
    assert "hook" in marker.read_text()


def _with_global_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gitconfig"
    config.write_text("[forkmantest]\n\tmarker = from-the-user\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))


def test_owned_repositories_ignore_the_users_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_global_config(tmp_path, monkeypatch)
    repo = _repo(tmp_path / "kept")
    proc = git.run("config", "--get", "forkmantest.marker", cwd=repo, owned=True, check=False)
    assert proc.returncode == 1 and proc.stdout == b""
    # and a fixed identity, whatever the user's
    assert git.output("var", "GIT_AUTHOR_IDENT", cwd=repo, owned=True).startswith(
        "forkman <forkman@localhost>"
    )


@pytest.mark.parametrize("remote", [False, True])
def test_the_consumer_and_mirrors_keep_the_users_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, remote: bool
) -> None:
    """Credential helpers, proxies and URL rewrites live there: a mirror needs them
    to reach a private remote."""
    _with_global_config(tmp_path, monkeypatch)
    repo = _repo(tmp_path / "repo")
    assert git.output("config", "--get", "forkmantest.marker", cwd=repo, remote=remote).strip() == (
        "from-the-user"
    )


def test_a_calling_hooks_repository_does_not_leak_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a pre-commit hook, git's GIT_DIR points at the hook's repository; the
    runner finds the repository from `cwd` instead."""
    other = _repo(tmp_path / "other")
    repo = _repo(tmp_path / "repo")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    top = git.output("rev-parse", "--show-toplevel", cwd=repo).strip()
    assert Path(top).resolve() == repo.resolve()


def test_a_failure_names_the_command_and_gits_message(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    with pytest.raises(GitError) as failed:
        git.run("rev-parse", "--verify", "no-such-ref", cwd=repo)
    assert "git rev-parse --verify failed (exit 128)" in str(failed.value)
    assert failed.value.returncode == 128
    proc = git.run("rev-parse", "--verify", "no-such-ref", cwd=repo, check=False)
    assert proc.returncode == 128


def test_the_quick_path_sees_what_the_runner_sees(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    (repo / "a.txt").write_text("a\n")
    git.run("add", "a.txt", cwd=repo)
    pid, fd = git.spawn(["git", "ls-files", "-z"], cwd=os.fspath(repo))
    code, out = git.finish(pid, fd)
    assert code == 0 and out == git.run("ls-files", "-z", cwd=repo).stdout == b"a.txt\0"
