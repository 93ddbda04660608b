"""The `forkman` command line: parse, make one API call, render, pick the exit code.

Commands are loaded lazily (only the module of the command being run is
imported). `forkman check`, which pre-commit hooks run on every commit, is
dispatched before click is even imported (see :mod:`forkman.cli._check`).
Add a line to :data:`COMMANDS` (:mod:`forkman.cli._commands`) to expose a new command.
"""

from __future__ import annotations

import sys

MYPY = False  # importing typing at run time would slow `forkman check` down
if MYPY:
    from typing import Any

    from ._commands import COMMANDS


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


__all__ = ["COMMANDS", "main"]


def __getattr__(name: str) -> Any:
    if name == "COMMANDS":  # not imported up front: `forkman check` never needs it
        from ._commands import COMMANDS

        return COMMANDS
    if name in ("cli", "LazyGroup", "Context"):
        from . import _app

        return getattr(_app, name)
    raise AttributeError(name)
