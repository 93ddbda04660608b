"""`forkman check` as a click command (for --help, --project; the plain form is faster)."""

from __future__ import annotations

from typing import Any

import click


@click.command("check")
@click.argument("names", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
def check_cmd(obj: Any, names: tuple[str, ...], fmt: str) -> int:
    """Do the vendored trees still match forkman.lock? (fast, offline)

    Reports every unrecorded difference: modified, added, deleted, renamed
    files, mode and symlink changes, edited patch files, a hand-edited lock,
    lock entries whose tree is gone, bytecode under a fork that git tracks or
    does not ignore, declared forks not made yet. Exit 0 clean, 1 findings,
    2 error.

    \b
    Example:
      forkman check
      forkman check attrs --format json
    """
    from ._check import run_check

    return run_check(obj.project().root, names, fmt)
