"""Every command's --help has an example; shell completion works through click."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from forkman.cli import COMMANDS
from forkman.cli._app import cli
from tests.conftest import REPO_ROOT
from tests.support.cli import run


def _forkman(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forkman", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
    )


def _all_commands() -> list[tuple[str, ...]]:
    """Every command path, including the subcommands of groups."""
    paths: list[tuple[str, ...]] = []
    ctx = click.Context(cli, info_name="forkman")
    for name in sorted(COMMANDS):
        command = cli.get_command(ctx, name)
        assert command is not None, f"COMMANDS lists {name!r} but it does not load"
        paths.append((name,))
        if isinstance(command, click.Group):
            sub_ctx = click.Context(command, info_name=name, parent=ctx)
            paths += [(name, sub) for sub in command.list_commands(sub_ctx)]
    return paths


@pytest.mark.parametrize("path", _all_commands(), ids=" ".join)
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    res = run(*path, "--help")
    assert res.exit_code == 0, res
    assert "Example" in res.stdout, f"`forkman {' '.join(path)} --help` shows no example"


def test_top_level_help_lists_every_command() -> None:
    res = run("--help")
    for name in COMMANDS:
        assert f"  {name} " in res.stdout or f"  {name}\n" in res.stdout, name


def test_bash_completion_script_through_the_entry_point() -> None:
    res = _forkman(env={"_FORKMAN_COMPLETE": "bash_source"})
    assert res.returncode == 0, res.stderr
    assert "_forkman_completion()" in res.stdout
    assert "complete -o nosort -F _forkman_completion forkman" in res.stdout


def test_completion_of_commands_and_choices() -> None:
    res = _forkman(
        env={"_FORKMAN_COMPLETE": "bash_complete", "COMP_WORDS": "forkman c", "COMP_CWORD": "1"}
    )
    assert res.stdout.split() == ["plain,card", "plain,check", "plain,ci"]
    res = _forkman(
        env={
            "_FORKMAN_COMPLETE": "bash_complete",
            "COMP_WORDS": "forkman ci --format ",
            "COMP_CWORD": "3",
        }
    )
    assert res.stdout.split() == ["plain,json", "plain,sarif", "plain,junit"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shells(shell: str) -> None:
    res = _forkman(env={"_FORKMAN_COMPLETE": f"{shell}_source"})
    assert res.returncode == 0 and "forkman" in res.stdout


# -- errors a user meets: one clear message, exit 2 --------------------------------------


@pytest.mark.parametrize("command", [("check",), ("status",), ("ci",), ("card",), ("verify",)])
def test_no_pyproject(tmp_path: Path, command: tuple[str, ...]) -> None:
    res = _forkman(*command, cwd=tmp_path)
    assert res.returncode == 2, res
    assert res.stderr.startswith(f"error: no pyproject.toml in {tmp_path.resolve()}")
    assert "hint: run forkman inside your project, or pass --project DIR" in res.stderr
    assert res.stdout == ""


@pytest.mark.parametrize("command", [("init",), ("ci",), ("init", "--ci", "github")])
def test_not_a_git_repository(tmp_path: Path, command: tuple[str, ...]) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    before = (tmp_path / "pyproject.toml").read_text()
    res = _forkman(*command, cwd=tmp_path)
    assert res.returncode == 2, res
    assert f"error: {tmp_path.resolve()} is not inside a git repository" in res.stderr
    assert "hint: run `git init` first" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pyproject.toml"]
    assert (tmp_path / "pyproject.toml").read_text() == before


@pytest.mark.parametrize("command", ["check", "ci"])
def test_outside_a_forkman_project(tmp_path: Path, command: str) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    res = _forkman(command, cwd=tmp_path)
    assert res.returncode == 2, res
    assert "is not a forkman project" in res.stderr
    assert "run `forkman init`" in res.stderr
    assert res.stdout == ""
