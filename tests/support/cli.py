"""Run the forkman CLI in-process, the way a user would, and snapshot project trees."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from forkman.cli._app import cli


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def __repr__(self) -> str:  # shown by pytest on failure
        return f"Result(exit={self.exit_code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def run(*args: str, cwd: Path | None = None, input: str | None = None) -> Result:
    """Invoke `forkman ARGS` in `cwd` and return exit code, stdout and stderr."""
    runner = CliRunner()
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        res = runner.invoke(cli, list(args), input=input, catch_exceptions=False)
    finally:
        os.chdir(old)
    return Result(res.exit_code, res.stdout, res.stderr)


# The fork actors' own runtime state (their database and process locks) records every
# command, including one that changed nothing else: it is not part of the project.
ACTOR_RUNTIME = (".forkman/actors.sqlite", ".forkman/locks/")


def snapshot(root: Path, *, skip: tuple[str, ...] = (".git",)) -> dict[str, str]:
    """Every file under `root` (except `skip` top-level names) -> sha256 (or link target)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir.parts and rel_dir.parts[0] in skip:
            continue
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = Path(dirpath) / name
            rel = (rel_dir / name).as_posix()
            if rel.split("/")[0] in skip or rel.startswith(ACTOR_RUNTIME):
                continue
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
