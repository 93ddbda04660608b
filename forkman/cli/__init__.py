"""The `forkman` command line: parse, call one core function, render, pick the exit code.

Commands are loaded lazily (only the module of the command being run is
imported). `forkman check`, which pre-commit hooks run on every commit, is
dispatched before click is even imported (see :mod:`forkman.cli._check`).
Add a line to :data:`COMMANDS` to expose a new command.
"""

from __future__ import annotations

import sys

MYPY = False  # importing typing at run time would slow `forkman check` down
if MYPY:
    from typing import Any

# command name -> "module:attribute" (module relative to forkman.cli)
COMMANDS: dict[str, str] = {
    "init": "_core:init_cmd",
    "fork": "_core:fork_cmd",
    "unfork": "_core:unfork_cmd",
    "status": "_core:status_cmd",
    "check": "_check_cmd:check_cmd",
    "verify": "_core:verify_cmd",
    "db": "_audit:db_group",
    "audit": "_audit:audit_cmd",
    "provenance": "_audit:provenance_cmd",
    "review": "_audit:review_cmd",
    "licenses": "_vendoring:licenses_cmd",
    "sbom": "_vendoring:sbom_cmd",
    "migrate": "_vendoring:migrate_group",
    "wire": "_vendoring:wire_cmd",
    "doctor": "_vendoring:doctor_cmd",
    "ci": "_ci_cmd:ci_cmd",
    "card": "_ci_cmd:card_cmd",
    "watch": "_actors:watch_cmd",
    "sandbox": "_sandbox:sandbox_group",
    "test": "_sandbox:test_cmd",
    "patch": "_patch:patch_cmd",
    "patches": "_patch:patches_cmd",
    "diff": "_patch:diff_cmd",
    "restore": "_patch:restore_cmd",
    "sync": "_patch:sync_cmd",
    "mcp": "_agent:mcp_cmd",
    "agent": "_agent:agent_group",
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `forkman` console script and `python -m forkman`."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["check"]:
        from ._check import fast_check

        code = fast_check(args)
        if code is not None:
            sys.exit(code)
    from ._app import cli

    cli.main(args=args, prog_name="forkman")


def __getattr__(name: str) -> Any:
    if name in ("cli", "LazyGroup", "Context"):
        from . import _app

        return getattr(_app, name)
    raise AttributeError(name)
