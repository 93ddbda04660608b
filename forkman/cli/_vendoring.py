"""`forkman licenses`, `forkman sbom` and `forkman migrate vendoring`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from ..core.fs import atomic_write_text
from . import Context


@click.command("licenses")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def licenses_cmd(obj: Context, as_json: bool) -> int:
    """List each fork's license (SPDX where known) and the files it comes from.

    Exits 1 when [tool.forkman.licenses] refuses a fork's license.

    \b
    Example:
      forkman licenses
      forkman licenses --json
    """
    found = obj.api().licenses()
    if as_json:
        rows = [{**asdict(f), "origin": f.origin.value} for f in found]
        click.echo(json.dumps(rows, indent=2))
    else:
        for f in found:
            mark = "REFUSED " if f.refused else ""
            expr = f.expression or "unknown"
            click.echo(f"{mark}{f.fork} {f.version}: {expr} ({f.origin.value})")
            for file in f.files:
                click.echo(f"    {file}")
            if f.refused:
                click.echo(f"    refused: {f.reason}")
        if not found:
            click.echo("no forks")
    return 1 if any(f.refused for f in found) else 0


@click.command("sbom")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to FILE instead of stdout.",
)
@click.pass_obj
def sbom_cmd(obj: Context, output: Path | None) -> int:
    """Write a CycloneDX 1.5 SBOM of every fork: source, hashes, publisher, patches.

    \b
    Example:
      forkman sbom -o forks.cdx.json
    """
    from ..reports.sbom import dump_sbom

    text = dump_sbom(obj.api().sbom())
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write_text(output, text)
        click.echo(f"wrote {output}", err=True)
    return 0


@click.group("migrate")
def migrate_group() -> None:
    """Take over a project from another vendoring tool.

    \b
    Example:
      forkman migrate vendoring --dry-run
    """


@migrate_group.command("vendoring")
@click.option("--dry-run", is_flag=True, help="Show what would be written; write nothing.")
@click.pass_obj
def migrate_vendoring_cmd(obj: Context, dry_run: bool) -> int:
    """Turn [tool.vendoring] into forkman config and patch series.

    Then run `forkman sync --all`: it forks each pinned release declared in
    [tool.forkman.forks] and writes the lock.

    \b
    Example:
      forkman migrate vendoring
      forkman sync --all
    """
    result = obj.api().migrate_vendoring(dry_run=dry_run)
    verb = "would write" if dry_run else "wrote"
    click.echo(f"namespace {result.namespace} in {result.destination}")
    click.echo(f"{verb} {len(result.pins)} forks:")
    for name, version in sorted(result.pins.items()):
        click.echo(f"  {name}=={version}")
    for patch in result.patches:
        click.echo(f"{verb} {patch.file} (from {patch.source})")
    for skipped in result.skipped:
        click.echo(f"skipped {skipped}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if not dry_run:
        click.echo(
            "next: forkman sync --all (forks the pinned releases, imports their patches, "
            "writes the lock)",
            err=True,
        )
    return 0


@click.command("wire")
@click.pass_obj
def wire_cmd(obj: Context) -> int:
    """Wire every project-layout fork and make its installable archive.

    Writes forkman-requirements.txt, [tool.uv.sources] and [tool.uv]
    constraint-dependencies, and packs each fork's vendored tree into
    .forkman/dist/ (not committed: run this after a clone). Installers build
    from those archives, never inside vendor/.

    \b
    Example:
      forkman wire && pip install -r forkman-requirements.txt -e .
    """
    lines = obj.api().wire()
    for line in lines:
        click.echo(line)
    if not lines:
        click.echo("no project-layout forks")
    return 0


@click.command("doctor")
@click.option(
    "--python",
    "python",
    default=None,
    metavar="PATH",
    help="Also check the environment of this interpreter (e.g. .venv/bin/python).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def doctor_cmd(obj: Context, python: str | None, as_json: bool) -> int:
    """Check that every installer resolves each forked name to its fork.

    Reads the wiring, the archives in .forkman/dist/, uv.lock and (with
    --python) an environment. Exits 1 naming each fork that resolves to
    something else: another version, the index, a stale archive.

    \b
    Example:
      forkman doctor --python .venv/bin/python
    """
    report = obj.api().doctor(python=python)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "problems": [asdict(p) for p in report.problems],
                    "notes": list(report.notes),
                },
                indent=2,
            )
        )
    else:
        for p in report.problems:
            click.echo(f"{p.fork}: {p.where}: {p.message}")
            click.echo(f"    hint: {p.hint}")
        for note in report.notes:
            click.echo(note)
        if report.ok:
            click.echo("ok: every forked name resolves to its fork")
    return 0 if report.ok else 1
