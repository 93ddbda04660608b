"""`forkman ci` and `forkman card`: the pipeline command and the FORK.md provenance cards."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._output import StderrObserver, table

if TYPE_CHECKING:
    from ..ci.report import CiReport


@click.command("ci")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "sarif", "junit"]),
    default=None,
    help="Also write machine-readable results in this format.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write them (default: forkman-ci.json, .sarif or .xml; '-' for stdout).",
)
@click.option(
    "--base",
    default=None,
    help="The pull request's target: take the security settings from it, report the ones "
    "the checked-out tree changes, and test only forks changed since the merge base "
    "(default: $GITHUB_BASE_REF or $CI_MERGE_REQUEST_TARGET_BRANCH_NAME; without a base "
    "the checked-out settings apply and every fork is tested).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Verify from the local download cache and git mirrors only; never the network.",
)
@click.pass_obj
def ci_cmd(obj: Any, fmt: str | None, output: Path | None, base: str | None, offline: bool) -> int:
    """Run every gate a pipeline needs: check, verify, audit, tests of changed forks.

    With a base revision, every stage uses the base's security settings (the
    sandbox, the indexes, the audit policy, each fork's test settings, ...): a
    pull request's own changes to them are findings to review, not applied.
    Forks whose check or verify failed are not tested.

    Prints the findings and a summary table; exit 0 when every stage passes,
    1 when a stage found something, 2 when a stage could not run (a fork not
    audited, an unreachable index: CI fails closed). With $GITHUB_STEP_SUMMARY
    set, a Markdown summary is appended to it.

    \b
    Example:
      forkman ci
      forkman ci --format sarif --output forkman.sarif --base origin/main
      forkman ci --offline
    """
    from ..ci.formats import CiFormat, render, to_markdown
    from ..core.fs import atomic_write_text

    report: CiReport = obj.api(observer=StderrObserver()).ci(base=base, offline=offline)
    to_stdout = output is not None and str(output) == "-"
    if fmt is not None:
        text = render(report, CiFormat(fmt))
        if to_stdout:
            click.echo(text, nl=False)
        else:
            ext = {"json": "json", "sarif": "sarif", "junit": "xml"}[fmt]
            target = output or Path(f"forkman-ci.{ext}")
            atomic_write_text(target, text)
            click.echo(f"wrote {target}", err=True)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a", encoding="utf-8") as fh:
            fh.write(to_markdown(report))
    click.echo(_text(report), nl=False, err=to_stdout)
    return report.exit_code


def _text(report: CiReport) -> str:
    lines = []
    for f in report.findings():
        lines.append(f"{f.stage}: {f.message}")
        if f.hint:
            lines.append(f"  fix: {f.hint}")
    if lines:
        lines.append("")
    lines.append(
        table(
            ["stage", "status", "time", "summary"],
            [[s.name, s.status.value, f"{s.duration:.1f}s", s.summary] for s in report.stages],
        )
    )
    lines.append("")
    lines.append(
        "forkman ci: passed" if report.ok else f"forkman ci: FAILED (exit {report.exit_code})"
    )
    return "\n".join(lines) + "\n"


@click.command("card")
@click.argument("names", nargs=-1)
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the card instead of writing it.")
@click.pass_obj
def card_cmd(obj: Any, names: tuple[str, ...], to_stdout: bool) -> int:
    """Render the FORK.md provenance card of NAMES (default: every fork).

    A card says where a fork comes from (source, hashes, publisher), which
    patches it carries and why (their DEP-3 Description), and its last audit
    and test run. It is written beside the patch series
    (patches/NAME/FORK.md) and rendered again whenever you run this.

    \b
    Example:
      forkman card attrs
      forkman card attrs --stdout
    """
    fm = obj.api()
    if to_stdout:
        click.echo("\n".join(fm.cards(names)), nl=False)
        return 0
    written = fm.write_cards(names)
    if not written:
        click.echo("no forks yet: `forkman fork NAME==VERSION` makes one")
    for item in written:
        click.echo(f"{item.action.value} {fm.core.relpath(item.path)}")
    return 0


def render_integrations(fm: Any, provider: str | None, *, cards: bool, force: bool) -> int:
    """`forkman init --ci/--cards`: render the templates and say what happened to each file.

    `fm` is the :class:`forkman.api.Project` (or the project it opens).
    """
    from ..api import Project
    from ..reports.templates import WriteAction

    if not isinstance(fm, Project):
        fm = Project(fm)
    written = fm.write_ci(provider, force=force) if provider else ()
    for item in written:
        note = " (exists; --force overwrites it)" if item.action is WriteAction.KEPT else ""
        click.echo(f"{item.action.value} {fm.core.relpath(item.path)}{note}")
    if cards:
        for item in fm.write_cards():
            click.echo(f"{item.action.value} {fm.core.relpath(item.path)}")
    return 0
