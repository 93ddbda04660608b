"""`forkman check` (kept light: it runs in pre-commit hooks)."""

from __future__ import annotations

from typing import Any

import click


@click.command("check")
@click.argument("names", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
def check_cmd(obj: Any, names: tuple[str, ...], fmt: str) -> int:
    """Do the vendored trees still match forkman.lock? (fast, offline)

    Exit 0 when clean, 1 when something changed without being recorded.

    \b
    Example:
      forkman check
      forkman check attrs --format json
    """
    from .._check import check
    from .._config import load_config

    project = obj.project()
    config = load_config(project.pyproject)
    report = check(
        project.root,
        vendor_dir=config.vendor_dir,
        patches_dir=config.patches_dir,
        names=names,
    )
    if fmt == "json":
        click.echo(report.to_json())
        return 0 if report.ok else 1
    if report.ok:
        click.echo(f"ok: {report.forks_checked} fork(s) match forkman.lock")
        return 0
    for finding in report.findings:
        where = f"{finding.fork}: " if finding.fork else ""
        click.echo(f"{where}{finding.message()}")
    for hint in report.hints():
        click.echo(f"hint: {hint}", err=True)
    return 1
