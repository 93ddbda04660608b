"""One command in the no-network sandbox: :func:`forkman.api.sandbox_run`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._base import ProjectBase

if TYPE_CHECKING:  # absolute: forkman.agent reads these names to describe the results
    from forkman.testing.command import CommandRun

__all__ = ["sandbox_run"]


def sandbox_run(
    argv: Sequence[str],
    *,
    project: ProjectBase | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    memory: int | None = None,
    writable: Sequence[str | os.PathLike[str]] = (),
    no_sandbox: bool = False,
) -> CommandRun:
    """Run `argv` in the no-network sandbox (what ``forkman sandbox run`` does), under
    `project`'s ``[tool.forkman.sandbox]`` policy (the defaults without one).

    `timeout` (seconds) and `memory` (bytes) override the policy; `writable` are the
    directories the command may write (default: `cwd`, itself the current directory
    by default). A run that breaks a limit is killed; its result says which.

    Example::

        run = forkman.api.sandbox_run(["python", "-c", "print(1)"], timeout=10)
        run.result.returncode, run.result.stdout
    """
    from ..testing.command import run_command

    return run_command(
        argv,
        project.core.config if project is not None else None,
        Path(cwd) if cwd is not None else Path.cwd(),
        timeout=timeout,
        memory=memory,
        writable=tuple(Path(w) for w in writable),
        no_sandbox=no_sandbox,
    )
