"""Patch and sync commands: patch, patches, diff, restore, sync."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..core.errors import BadInput
from ._actors import actor_options
from ._output import table

if TYPE_CHECKING:
    from ..operations.results import SyncReport, SyncRun


@click.command("patch")
@click.argument("name")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-m", "--message", default=None, help="The patch's description.")
@click.option("--fixes", multiple=True, help="A vulnerability id the patch fixes (repeatable).")
@click.option("--origin", default=None, help="Where the change comes from (URL, upstream, ...).")
@click.option("--forwarded", default=None, help="`no`, `not-needed`, or where it was sent.")
@click.option("--author", default=None, help='"Name <email>" (default: your git identity).')
@click.option("--drop", "drop", type=int, default=None, metavar="N", help="Drop patch N.")
@click.option("--move", "move", type=int, default=None, metavar="N", help="Move patch N ...")
@click.option("--to", "to", type=int, default=None, metavar="M", help="... to position M.")
@click.option("--edit", "edit", type=int, default=None, metavar="N", help="Edit patch N's header.")
@click.option("--import", "import_", is_flag=True, help="Import FILES as new patches.")
@click.option(
    "--before-rewrite",
    is_flag=True,
    help="With --import: FILES were written against the namespace tree before its imports "
    "were rewritten (the vendoring tool's patches); forkman carries them over.",
)
@actor_options
@click.pass_obj
def patch_cmd(
    obj: Any,
    name: str,
    files: tuple[Path, ...],
    message: str | None,
    fixes: tuple[str, ...],
    origin: str | None,
    forwarded: str | None,
    author: str | None,
    drop: int | None,
    move: int | None,
    to: int | None,
    edit: int | None,
    import_: bool,
    before_rewrite: bool,
    jobs: int | None,
    wait: float,
) -> int:
    """Record the edits in NAME's vendored tree as the next patch, or change the series.

    \b
    Examples:
      forkman patch attrs -m "Fix slots pickling" --fixes PYSEC-2024-1
      forkman patch attrs --drop 2
      forkman patch attrs --move 3 --to 1
      forkman patch attrs --edit 1 -m "Better description"
      forkman patch attrs --import fix-a.patch fix-b.patch
      forkman patch six --import --before-rewrite tools/vendoring/patches/six.patch
    """
    modes = [m for m in (drop, move, edit) if m is not None] + ([1] if import_ else [])
    if len(modes) > 1:
        raise BadInput("use one of --drop, --move, --edit, --import at a time")
    if files and not import_:
        raise BadInput(
            "patch files are only read with --import", hint="forkman patch NAME --import FILE..."
        )
    if to is not None and move is None:
        raise BadInput("--to goes with --move", hint="forkman patch NAME --move 3 --to 1")
    if move is not None and to is None:
        raise BadInput("--move needs --to", hint="forkman patch NAME --move 3 --to 1")
    if import_ and not files:
        raise BadInput("no patch files given", hint="forkman patch NAME --import FILE...")
    if before_rewrite and not import_:
        raise BadInput(
            "--before-rewrite goes with --import",
            hint="forkman patch NAME --import --before-rewrite FILE...",
        )
    if drop is None and move is None and edit is None and not import_ and not message:
        raise BadInput("the patch needs a description", hint=f'forkman patch {name} -m "..."')
    fm = obj.api(jobs=jobs, wait=wait)
    header = {"fixes": fixes, "origin": origin, "forwarded": forwarded, "author": author}
    if drop is not None:
        fm.drop_patch(name, drop)
        click.echo(f"dropped patch {drop} of {name}")
    elif move is not None:
        assert to is not None
        fm.move_patch(name, move, to)
        click.echo(f"moved patch {move} of {name} to position {to}")
    elif edit is not None:
        fm.edit_patch(name, edit, message=message, **header)
        click.echo(f"edited patch {edit} of {name}")
    elif import_:
        for file in fm.import_patches(name, files, before_rewrite=before_rewrite).files:
            click.echo(f"imported {file}")
    else:
        assert message is not None
        click.echo(f"recorded {fm.patch(name, message, **header).files[0]}")
    return 0


@click.command("patches")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def patches_cmd(obj: Any, name: str, fmt: str) -> int:
    """List NAME's patch series: order, file, status, fixes.

    Exit 1 when a patch file differs from the lock or is missing.

    \b
    Example:
      forkman patches attrs
    """
    from ..operations.patches import PatchStatus

    rows = obj.api().patches(name)
    if fmt == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "number": r.number,
                        "file": r.file,
                        "subject": r.subject,
                        "status": r.status.value,
                        "applied": r.applied,
                        "fixes": list(r.fixes),
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
    elif not rows:
        click.echo(f"{name} has no patches: edit its files, then `forkman patch {name} -m MSG`")
    else:
        click.echo(
            table(
                ["#", "patch", "status", "applied", "fixes", "description"],
                [
                    [
                        r.number,
                        r.file,
                        r.status.value,
                        "yes" if r.applied else "no",
                        ", ".join(r.fixes) or "-",
                        r.subject,
                    ]
                    for r in rows
                ],
            )
        )
    return 0 if all(r.status is PatchStatus.OK for r in rows) else 1


@click.command("diff")
@click.argument("name")
@click.option("--upstream", "span", default=None, metavar="A..B", help="Upstream's own changes.")
@click.pass_obj
def diff_cmd(obj: Any, name: str, span: str | None) -> int:
    """Show NAME's patches as one diff against pristine upstream, or upstream's delta.

    \b
    Examples:
      forkman diff attrs
      forkman diff attrs --upstream 23.1.0..23.2.0
    """
    click.echo(obj.api().diff(name, upstream=span), nl=False)
    return 0


@click.command("restore")
@click.argument("name")
@actor_options
@click.pass_obj
def restore_cmd(obj: Any, name: str, jobs: int | None, wait: float) -> int:
    """Discard unrecorded edits in NAME's vendored tree (back to the recorded series).

    \b
    Example:
      forkman restore attrs
    """
    changed = obj.api(jobs=jobs, wait=wait).restore(name)
    if not changed:
        click.echo(f"{name}: nothing to restore")
    for path in changed:
        click.echo(f"restored {path}")
    return 0


def _risk_line(risk: Mapping[str, Any]) -> str:
    where = f"{risk['file']}:{risk['line']}" if risk.get("line") else risk["file"]
    return f"risk ({risk['severity']}, {risk['rule']}): {where}: {risk['message']}"


def _render(result: SyncReport) -> None:
    """Show one fork's sync result."""
    from ..operations.sync import SyncOutcome

    click.echo(result.message)
    if result.delta and result.outcome is not SyncOutcome.DECLINED:
        for line in result.delta:
            click.echo(f"  {line}")
    for risk in result.risks:
        click.echo(f"  {_risk_line(risk)}")
    for subject in result.dropped:
        click.echo(f"  dropped (already upstream): {subject}")
    c = result.conflict
    if c is not None:
        verb = "would conflict" if result.outcome is SyncOutcome.DRY_RUN else "conflicts"
        click.echo(f"  patch {c.number} ({c.file}) {verb} in:")
        for path in c.files:
            note = (
                "  (no conflict markers: binary, or deleted on one side; choose its content)"
                if path in c.unmarked
                else ""
            )
            click.echo(f"    {path}{note}")
        if result.outcome is SyncOutcome.CONFLICT:
            name = result.name
            click.echo(
                f"  resolve the conflict markers in those files, then run "
                f"`forkman sync {name} --continue`; "
                f"`forkman sync {name} --abort` puts everything back"
            )


def _ask(review: SyncReport) -> bool:
    """The interactive review of one fork's release: its delta and risks, then a question."""
    click.echo(f"{review.name}: {review.old_version} -> {review.new_version}", err=True)
    for line in review.delta or ():
        click.echo(f"  {line}", err=True)
    for risk in review.risks:
        click.echo(f"  {_risk_line(risk)}", err=True)
    return click.confirm(f"take {review.name} {review.new_version}?", err=True)


@click.command("sync")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Sync every fork.")
@click.option("--to", default=None, metavar="VERSION", help="Move to this release (or git ref).")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Take the release without asking.")
@click.option("--continue", "continue_", is_flag=True, help="Go on after resolving a conflict.")
@click.option("--abort", is_flag=True, help="Undo a sync stopped at a conflict.")
@click.option(
    "--accept-publisher-change",
    is_flag=True,
    help="Take a release published by someone else than the recorded publisher, or one "
    "without the provenance the previous release had.",
)
@click.option(
    "--accept-risk",
    is_flag=True,
    help="Take a release whose upstream delta has risky changes the policy blocks on.",
)
@actor_options
@click.pass_obj
def sync_cmd(
    obj: Any,
    name: str | None,
    all_: bool,
    to: str | None,
    dry_run: bool,
    yes: bool,
    continue_: bool,
    abort: bool,
    accept_publisher_change: bool,
    accept_risk: bool,
    jobs: int | None,
    wait: float,
) -> int:
    """Move a fork to a newer upstream release, carrying its patches (three-way merges).

    Shows what upstream changed and asks before taking it (--yes in automation;
    without a terminal and without --yes the sync is refused). Exit 0 when done
    or nothing is newer, 1 when a patch conflicts (the sync waits for
    --continue or --abort), 2 on errors.

    \b
    Examples:
      forkman sync attrs
      forkman sync attrs --to 23.2.0 --yes
      forkman sync --all --dry-run
      forkman sync attrs --continue
    """
    from ..operations.sync import SyncOutcome

    if all_ == bool(name):
        raise BadInput(
            "name one fork or pass --all", hint="forkman sync attrs | forkman sync --all"
        )
    if continue_ and abort:
        raise BadInput("--continue and --abort exclude each other")
    if (continue_ or abort) and (all_ or to or dry_run):
        raise BadInput("--continue and --abort take only the fork's name")
    if all_ and to is not None:
        raise BadInput("--to names one release of one fork", hint="forkman sync NAME --to VERSION")
    fm = obj.api(jobs=jobs, wait=wait)
    if abort:
        assert name is not None
        _render(fm.sync_abort(name))
        return 0  # the fork is back as it was; the next command brings it up to date
    if continue_:
        assert name is not None
        return render_run(fm.sync_continue(name))
    interactive = not yes and not dry_run and sys.stdin.isatty()
    run = fm.sync(
        name,
        to=to,
        dry_run=dry_run,
        yes=yes,
        confirm=_ask if interactive else None,
        accept_publisher_change=accept_publisher_change,
        accept_risk=accept_risk,
    )
    for made in run.forked:
        click.echo(f"forked {made.name} {made.version} into {made.path} (declared: {made.spec})")
    for report in run.revendored:
        click.echo(report.message)
    for imported in run.imported:
        for file in imported.files:
            click.echo(f"{imported.name}: imported {file}")
    if not run.considered:
        if not run.results:
            click.echo("no forks to sync" if not run.forked else "every declared fork is forked")
        return render_run(run)
    looked = [r for r in run.results if r.name in run.considered]
    if all_ and all(r.outcome in (SyncOutcome.UP_TO_DATE, SyncOutcome.PINNED) for r in looked):
        click.echo("no newer releases: every fork is up to date")
    return render_run(run)


def render_results(results: Sequence[SyncReport]) -> int:
    """Show sync results; the exit code they make.

    2 when one failed, 1 when one conflicts, was declined or was refused for
    what its review found (a finding), else 0.
    """
    from ..operations.results import SyncRun
    from ..operations.sync import SyncOutcome

    for result in sorted(results, key=lambda r: r.name):
        if result.outcome is SyncOutcome.FAILED:
            click.echo(f"error: {result.name}: {result.message}", err=True)
            if result.error is not None and result.error.hint:
                click.echo(f"hint: {result.error.hint}", err=True)
        else:
            _render(result)
    return SyncRun(tuple(results)).exit_code


def render_run(run: SyncRun) -> int:
    """Show a sync run's results; its exit code."""
    return render_results(run.results)
