"""`forkman db`, `forkman audit`, `forkman provenance`, `forkman review`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..core.errors import ProjectError, SecurityError
from ._output import StderrObserver

OSV_PYPI_EXPORT = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"


def _api_or_none(ctx: click.Context) -> Any:
    """The project's API (progress on stderr), or None outside a project."""
    try:
        return ctx.obj.api(observer=StderrObserver(verbose=ctx.obj.verbose))
    except ProjectError:
        return None


@click.group("db")
def db_group() -> None:
    """The local advisory database that `forkman audit` reads.

    \b
    Example:
      forkman db update --from ./advisory-database/vulns
      forkman db info
    """


@db_group.command("update")
@click.option(
    "--from",
    "source",
    default=OSV_PYPI_EXPORT,
    show_default=True,
    help="A folder of OSV YAML/JSON files, an OSV all.zip export, or its URL.",
)
@click.option("--db", "db_path", type=click.Path(path_type=Path), help="The database file.")
@click.pass_context
def db_update(ctx: click.Context, source: str, db_path: Path | None) -> int:
    """Import an OSV advisory database (replaces the previous one atomically).

    \b
    Example:
      forkman db update --from https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip
      forkman db update --from ../advisory-database/vulns
    """
    from ..api import update_database

    observer = StderrObserver(verbose=ctx.obj.verbose)
    info = update_database(source, project=_api_or_none(ctx), database=db_path, observer=observer)
    click.echo(
        f"{info.advisories} advisories for {info.packages} packages imported into {info.path} "
        f"({info.withdrawn} withdrawn left out, {info.skipped} malformed skipped)"
    )
    return 0


@db_group.command("info")
@click.option("--db", "db_path", type=click.Path(path_type=Path), help="The database file.")
@click.pass_context
def db_info(ctx: click.Context, db_path: Path | None) -> int:
    """Show where the database came from and what it holds.

    \b
    Example:
      forkman db info
    """
    from ..api import database_info

    info = database_info(project=_api_or_none(ctx), database=db_path)
    click.echo(f"database:   {info.path}")
    click.echo(f"source:     {info.source}")
    click.echo(f"imported:   {info.imported_at}")
    click.echo(f"advisories: {info.advisories} ({info.packages} packages)")
    return 0


@click.command("audit")
@click.argument("names", nargs=-1)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["columns", "json", "markdown", "cyclonedx", "sarif"]),
    default="columns",
    show_default=True,
    help="Output format.",
)
@click.option("--online", is_flag=True, help="Also ask PyPI's and OSV's online services.")
@click.option(
    "--allow-unaudited",
    is_flag=True,
    help="Do not fail when a fork could not be audited (it is still reported).",
)
@click.option("--db", "db_path", type=click.Path(path_type=Path), help="The database file.")
@click.pass_context
def audit_cmd(
    ctx: click.Context,
    names: tuple[str, ...],
    fmt: str,
    online: bool,
    allow_unaudited: bool,
    db_path: Path | None,
) -> int:
    """Known vulnerabilities of the forks (all, or NAME...), through pip-audit.

    Exits 1 when a vulnerability is neither patched locally nor ignored, or when a
    fork could not be audited (unless --allow-unaudited). Exits 2 when the audit
    of a fork could not run at all (another command holds the fork, the database
    is unreadable): the other forks are still audited and reported.

    \b
    Example:
      forkman db update
      forkman audit
      forkman audit jinja2 --format sarif > audit.sarif
    """
    from ..audit.vulnerabilities import AuditFormat, ForkStatus, render

    run = ctx.obj.api().audit(names, online=online, database=db_path)
    report = run.report
    if not report.forks:
        click.echo("no forks to audit (forkman.lock lists none)", err=True)
    click.echo(render(report, AuditFormat(fmt)))
    for fork in report.forks:
        if fork.status is ForkStatus.UNAUDITED or fork.unaudited:
            note = " (allowed)" if allow_unaudited else ""
            click.echo(f"warning: {fork.name} {fork.version} was NOT audited{note}", err=True)
    for name, error in run.errors:
        hint = f"\nhint: {error.hint}" if error.hint else ""
        click.echo(f"error: {name}: {error.message}{hint}", err=True)
    # 2: the audit of a fork could not run at all: never a pass, whatever is allowed
    return int(run.exit_code(allow_unaudited=allow_unaudited))


@click.command("provenance")
@click.argument("name")
@click.option(
    "--attestation",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A PEP 740 provenance or attestation, or a Sigstore bundle, for the fork's file.",
)
@click.option(
    "--accept-publisher-change",
    is_flag=True,
    help="Record a publisher that differs from the recorded one.",
)
@click.pass_context
def provenance_cmd(
    ctx: click.Context, name: str, attestation: Path | None, accept_publisher_change: bool
) -> int:
    """Verify who published a fork's release file (offline, Sigstore) and record it.

    Exits 1 when the provenance does not verify or the publisher changed.

    \b
    Example:
      forkman provenance attrs
      forkman provenance rfc8785 --attestation rfc8785-0.1.2-py3-none-any.whl.sigstore
    """
    try:
        check = ctx.obj.api().provenance(
            name, attestation=attestation, accept_publisher_change=accept_publisher_change
        )
    except SecurityError as exc:
        click.echo(exc.diagnostics(), err=True)
        return 1
    click.echo(f"{check.filename}: verified")
    click.echo(f"published by {check.publisher.describe()}")
    click.echo(f"provenance from {check.source}")
    return 0


@click.command("review")
@click.argument("name")
@click.option("--upstream", help="The upstream versions to compare, A..B (default: the last two).")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--record",
    is_flag=True,
    help="Also write the result to the fork's review table in forkman.lock.",
)
@click.pass_context
def review_cmd(ctx: click.Context, name: str, upstream: str | None, fmt: str, record: bool) -> int:
    """Risky changes in an upstream delta of a fork (install hooks, exec of decoded
    data, new network or process use, credential reads, blobs, new dependencies).

    Exits 1 when a finding reaches `[tool.forkman.audit] block-on` (default: high).
    A release named in --upstream that the fork has not imported yet (the one a
    refused sync or a dry run looked at) is fetched as sync would. Reading
    writes nothing: only --record writes the result into forkman.lock (sync
    records its own review when it takes a release).

    \b
    Example:
      forkman review attrs
      forkman review attrs --upstream 23.1.0..23.2.0 --format json
    """
    report = ctx.obj.api().review(name, upstream=upstream, record=record)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "name": report.name,
                    "old": report.old,
                    "new": report.new,
                    "block_on": report.block_on.name.lower(),
                    "blocked": bool(report.blocking),
                    "findings": [f.to_dict() for f in report.findings],
                },
                indent=2,
            )
        )
    else:
        click.echo(f"{report.name} {report.old or '(nothing)'} -> {report.new}")
        if not report.findings:
            click.echo("no risky changes found")
        for f in report.findings:
            where = f"{f.file}:{f.line}" if f.line else f.file
            click.echo(f"{f.severity.name.lower():8} {f.rule:28} {where}: {f.message}")
            click.echo(f"{'':8} {'':28} why: {f.why}")
        if report.blocking:
            click.echo(
                f"{len(report.blocking)} finding(s) at or above {report.block_on.name.lower()}",
                err=True,
            )
    return 1 if report.blocking else 0


__all__ = ["audit_cmd", "db_group", "provenance_cmd", "review_cmd"]
