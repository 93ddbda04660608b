"""``forkman sandbox run``: one command in the no-network sandbox, under the project's
``[tool.forkman.sandbox]`` policy (the defaults outside a project)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import BadInput
from ..model.config import Config
from ..sandbox import ForkServer, RunResult, SandboxPolicy
from .config import sandbox_policy


@dataclass(frozen=True)
class CommandRun:
    """A command run in the sandbox, and the policy it ran under."""

    result: RunResult
    """How it ended: exit status, output, the limits it broke, the isolation it had."""
    policy: SandboxPolicy
    """The policy it ran under (its ``timeout`` is the limit a timed-out run broke)."""


def run_command(
    argv: Sequence[str],
    config: Config | None,
    cwd: Path,
    *,
    timeout: float | None = None,
    memory: int | None = None,
    writable: Sequence[Path] = (),
    no_sandbox: bool = False,
) -> CommandRun:
    """Run `argv` in `cwd` under `config`'s sandbox policy with these overrides, from a
    fork server of its own (preloading nothing). `writable` defaults to `cwd`."""
    if not argv:
        raise BadInput("give a command to run after --")
    policy = sandbox_policy(
        config,
        timeout=timeout,
        memory=memory,
        writable=tuple(p.resolve() for p in writable) or (cwd.resolve(),),
    )
    with ForkServer(preload=()) as server:
        result = server.run(list(argv), policy, cwd=cwd, disabled=no_sandbox)
    return CommandRun(result, policy)
