"""Patch and sync commands: patch, patches, diff, restore, sync."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from .._errors import BadInput
from ._actors import actor_options
from ._output import table


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
    from .._forks import require_fork
    from ._actors import on_fork

    project = obj.project()
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
    project.require_git()
    fork = require_fork(project, name).name
    header = {
        "message": message,
        "fixes": list(fixes),
        "origin": origin,
        "forwarded": forwarded,
        "author": author,
    }
    if drop is not None:
        on_fork(obj, project, fork, "patch", {"mode": "drop", "number": drop}, wait=wait)
        click.echo(f"dropped patch {drop} of {name}")
    elif move is not None:
        on_fork(obj, project, fork, "patch", {"mode": "move", "number": move, "to": to}, wait=wait)
        click.echo(f"moved patch {move} of {name} to position {to}")
    elif edit is not None:
        on_fork(obj, project, fork, "patch", {"mode": "edit", "number": edit, **header}, wait=wait)
        click.echo(f"edited patch {edit} of {name}")
    elif import_:
        # absolute: the fork's actor may not share this process's working directory
        paths = [os.path.abspath(f) for f in files]
        args = {"mode": "import", "files": paths, "before_rewrite": before_rewrite}
        result = on_fork(obj, project, fork, "patch", args, wait=wait)
        for file in result["patches"]:
            click.echo(f"imported {file}")
    else:
        result = on_fork(obj, project, fork, "patch", {"mode": "record", **header}, wait=wait)
        click.echo(f"recorded {result['file']}")
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
    from .._patches import PatchStatus, list_patches

    rows = list_patches(obj.project(), name)
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
    from .._patches import fork_diff, upstream_diff

    project = obj.project()
    text = upstream_diff(project, name, span) if span else fork_diff(project, name)
    click.echo(text, nl=False)
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
    from .._forks import require_fork
    from ._actors import on_fork

    project = obj.project()
    project.require_git()
    fork = require_fork(project, name).name
    changed = on_fork(obj, project, fork, "restore", wait=wait)["restored"]
    if not changed:
        click.echo(f"{name}: nothing to restore")
    for path in changed:
        click.echo(f"restored {path}")
    return 0


def _risk_line(risk: dict[str, Any]) -> str:
    where = f"{risk['file']}:{risk['line']}" if risk.get("line") else risk["file"]
    return f"risk ({risk['severity']}, {risk['rule']}): {where}: {risk['message']}"


def _render(result: dict[str, Any]) -> None:
    """Show one fork's sync result (as the fork actor replied it)."""
    click.echo(result["message"])
    if result.get("delta") and result["outcome"] != "declined":
        for line in result["delta"]:
            click.echo(f"  {line}")
    for risk in result.get("risks") or []:
        click.echo(f"  {_risk_line(risk)}")
    for subject in result.get("dropped", []):
        click.echo(f"  dropped (already upstream): {subject}")
    c = result.get("conflict")
    if c is not None:
        verb = "would conflict" if result["outcome"] == "dry-run" else "conflicts"
        click.echo(f"  patch {c['number']} ({c['file']}) {verb} in:")
        for path in c["files"]:
            note = (
                "  (no conflict markers: binary, or deleted on one side; choose its content)"
                if path in c["unmarked"]
                else ""
            )
            click.echo(f"    {path}{note}")
        if result["outcome"] == "conflict":
            name = result["name"]
            click.echo(
                f"  resolve the conflict markers in those files, then run "
                f"`forkman sync {name} --continue`; "
                f"`forkman sync {name} --abort` puts everything back"
            )


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
    from packaging.utils import canonicalize_name

    from .._forks import require_fork
    from ._actors import on_fork, on_forks

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
    project = obj.project()
    project.require_git()
    if continue_ or abort:
        assert name is not None
        fork = require_fork(project, name).name
        mode = "continue" if continue_ else "abort"
        result = on_fork(obj, project, fork, "sync", {"mode": mode}, wait=wait)
        _render(result)
        if result["outcome"] == "conflict":
            return 1
        if abort:
            return 0  # the fork is back as it was; the next command brings it up to date
        return render_results(revendor_stale(obj, project, jobs=jobs))
    adopted, adoption = _fork_declared(obj, project, name, jobs)
    if name is not None and any(r["name"] == canonicalize_name(name) for r in adoption):
        return render_results(adoption)  # the declared fork could not be made: say why
    names = [require_fork(project, name).name] if name else sorted(project.load_lock().forks)
    names = [n for n in names if n not in adopted]
    if not names:
        if not adoption:
            click.echo("no forks to sync" if not adopted else "every declared fork is forked")
        return render_results(adoption)
    accept = {"accept_publisher_change": accept_publisher_change, "accept_risk": accept_risk}
    args: dict[str, Any] = {"to": to, "yes": yes, "dry_run": dry_run, **accept}
    if not yes and not dry_run and sys.stdin.isatty():
        # Review first (a dry run through the actors), ask, then take exactly what was confirmed.
        reviews = _results(
            on_forks(obj, project, names, "sync", {**args, "dry_run": True}, jobs=jobs)
        )
        confirmed: dict[str, str] = {}
        for result in reviews:
            if result["outcome"] != "dry-run":
                continue
            click.echo(
                f"{result['name']}: {result['old_version']} -> {result['new_version']}", err=True
            )
            for line in result.get("delta") or []:
                click.echo(f"  {line}", err=True)
            for risk in result.get("risks") or []:
                click.echo(f"  {_risk_line(risk)}", err=True)
            if click.confirm(f"take {result['name']} {result['new_version']}?", err=True):
                confirmed[result["name"]] = str(result["new_version"])
        results = [r for r in reviews if r["outcome"] != "dry-run"]
        results += [
            {**r, "outcome": "declined", "message": f"{r['name']}: {r['new_version']} not taken"}
            for r in reviews
            if r["outcome"] == "dry-run" and r["name"] not in confirmed
        ]
        if confirmed:
            taken = {"to": to, "yes": True, "expect_versions": confirmed, **accept}
            results += _results(on_forks(obj, project, sorted(confirmed), "sync", taken, jobs=jobs))
    else:
        results = _results(on_forks(obj, project, names, "sync", args, jobs=jobs, wait=wait))
    if all_ and all(r["outcome"] in ("up-to-date", "pinned") for r in results):
        click.echo("no newer releases: every fork is up to date")
    if not dry_run:
        # a release that vendors other modules changes what the other namespace forks rewrite
        adoption += revendor_stale(obj, project, jobs=jobs)
    return render_results(adoption + results)


def _fork_declared(
    obj: Any, project: Any, name: str | None, jobs: int | None = None
) -> tuple[set[str], list[Any]]:
    """Fork what ``[tool.forkman.forks.NAME] requirement`` declares and the lock lacks.

    This is how a configuration written by `forkman migrate vendoring` (or by
    hand) becomes forks: the first sync fetches each declared release, all
    at once. Namespace forks take over the names the tool they replace left
    in the namespace folder, and are vendored knowing every other declared
    namespace fork's modules (:mod:`forkman._declared`); any that still
    misses one is vendored again. Then the patch files waiting in each new
    fork's series folder (written by the migration) are imported as its
    series. Returns the forks made, and the results of those that failed
    (a failed import leaves the fork made and its files waiting).
    """
    from .._declared import declared_forks, expected_modules
    from .._forks import layout_for
    from ._actors import failure, on_forks

    declared = declared_forks(project, name)
    if not declared:
        return set(), []
    expect = expected_modules(project, declared)
    per_fork = {
        d.name: {
            "spec": d.spec,
            "layout": d.layout,
            # a migrated namespace's tree was written by the tool forkman takes over from
            "adopt": layout_for(project, d.name, d.layout) == "namespace",
        }
        for d in declared
    }
    # forks that edit pyproject.toml (a range recorded as the constraint, project-layout
    # wiring) are made one after the other: each edit reads what the one before wrote
    together = all(
        args["adopt"] and _records_no_constraint(str(args["spec"])) for args in per_fork.values()
    )
    replies = on_forks(
        obj,
        project,
        [d.name for d in declared],
        "fork",
        {"expect_modules": expect},
        jobs=jobs if together else 1,
        per_fork=per_fork,
    )
    results: list[Any] = []
    adopted = []
    for fork in declared:
        reply = replies[fork.name]
        if not reply.ok:
            results.append(
                {"name": fork.name, "outcome": "failed", "message": failure(reply, "fork")}
            )
            continue
        for warning in reply.result.get("warnings", []):
            click.echo(f"warning: {warning}", err=True)
        result = reply.result
        click.echo(
            f"forked {fork.name} {result['version']} into {result['path']} (declared: {fork.spec})"
        )
        adopted.append(fork.name)
    for result in revendor_stale(obj, project, jobs=jobs):
        if result["outcome"] == "synced":
            click.echo(result["message"])  # as it happens: the imports below build on it
        else:
            results.append(result)
    waiting = {
        fork: [str(p.resolve()) for p in sorted(project.patches_path(fork).glob("*.patch"))]
        for fork in adopted
    }
    waiting = {fork: files for fork, files in waiting.items() if files}
    if waiting:
        replies = on_forks(
            obj,
            project,
            sorted(waiting),
            "patch",
            {"mode": "import"},
            jobs=jobs,
            per_fork={fork: {"files": files} for fork, files in waiting.items()},
        )
        for series in sorted(waiting):
            reply = replies[series]
            if reply.ok:
                for file in reply.result["patches"]:
                    click.echo(f"{series}: imported {file}")
                continue
            folder = project.relpath(project.patches_path(series))
            message = failure(reply, "import")
            results.append(
                {
                    "name": series,
                    "outcome": "failed",
                    "message": f"its patch files in {folder} were not imported: {message}",
                }
            )
    return set(adopted), results


def _records_no_constraint(spec: str) -> bool:
    """Whether forking `spec` leaves pyproject.toml alone (an exact pin, or a bare name)."""
    from .._forks import _is_exact_pin
    from ..sources.index import parse_requirement

    try:
        specifier = parse_requirement(spec)[1]
    except Exception:  # a git spec or a bad one: forked alone, its error reported there
        return False
    return not specifier or _is_exact_pin(specifier)


def revendor_stale(obj: Any, project: Any, *, jobs: int | None = None) -> list[Any]:
    """Vendor again the namespace forks whose imports no longer match the namespace.

    Run after every command that adds or removes namespace forks; the results
    are sync results (``synced``, ``conflict``, ``failed``), nothing when no
    fork is stale.
    """
    from .._sync import stale_namespace_forks
    from ._actors import on_forks

    stale = stale_namespace_forks(project)
    if not stale:
        return []
    return _results(on_forks(obj, project, stale, "sync", {"mode": "revendor"}, jobs=jobs))


def render_results(results: list[Any]) -> int:
    """Show sync results; the exit code they make.

    2 when one failed, 1 when one conflicts, was declined or was refused for
    what its review found (a finding), else 0.
    """
    for result in sorted(results, key=lambda r: r["name"]):
        if result["outcome"] == "failed":
            click.echo(f"error: {result['name']}: {result['message']}", err=True)
            if result.get("hint"):
                click.echo(f"hint: {result['hint']}", err=True)
        else:
            _render(result)
    failed = [r for r in results if r["outcome"] == "failed"]
    if any(r.get("exit_code", 2) != 1 for r in failed):
        return 2
    if failed or any(r["outcome"] in ("conflict", "declined") for r in results):
        return 1
    return 0


def _results(replies: dict[str, Any]) -> list[dict[str, Any]]:
    """Sync results from actor replies; a failed reply is a ``failed`` result."""
    out = []
    for fork, reply in sorted(replies.items()):
        if reply.ok:
            out.append(dict(reply.result))
        else:
            result = reply.result
            out.append(
                {
                    "name": fork,
                    "outcome": "failed",
                    "message": str(result.get("error_message") or reply.error or "failed"),
                    "hint": result.get("error_hint"),
                    "exit_code": int(result.get("exit_code") or 2),
                }
            )
    return out
