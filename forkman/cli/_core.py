"""Core commands: init, fork, unfork, status, verify."""

from __future__ import annotations

import json
from typing import Any

import click

from ._actors import actor_options
from ._output import table


@click.command("init")
@click.option("--index-url", default=None, help="The package index to fork from.")
@click.option(
    "--ci",
    "ci_provider",
    type=click.Choice(["github", "gitlab"]),
    default=None,
    help="Also render a CI pipeline running `forkman ci` and a pre-commit config.",
)
@click.option("--cards", is_flag=True, help="Also render every fork's FORK.md card.")
@click.option("--force", is_flag=True, help="Overwrite files rendered by --ci that exist.")
@click.pass_obj
def init_cmd(
    obj: Any, index_url: str | None, ci_provider: str | None, cards: bool, force: bool
) -> int:
    """Add [tool.forkman] to pyproject.toml and create forkman.lock.

    \b
    Example:
      forkman init --index-url https://pypi.org/simple/
      forkman init --ci github
    """
    from .._config import edit_pyproject, init_table
    from .._lock import Lock, write_lock

    project = obj.project()
    project.require_git()
    added = False

    def change(doc: Any) -> None:
        nonlocal added
        added = init_table(doc, index_url=index_url)

    edit_pyproject(project.pyproject, change)
    if not project.lock_path.exists():
        write_lock(project.lock_path, Lock())
    project.ensure_state_dir()
    from .._project import ignore_bytecode

    ignores = ignore_bytecode(project)
    click.echo(
        "added [tool.forkman] to pyproject.toml" if added else "[tool.forkman] already present"
    )
    click.echo(f"lock: {project.lock_path.name}")
    if ignores:
        click.echo(
            f"added {' and '.join(ignores)} to .gitignore: bytecode under a fork that git "
            "does not ignore is a `forkman check` finding (Python may run it instead of "
            "the source)"
        )
    if ci_provider is not None or cards:
        from ._ci_cmd import render_integrations

        return render_integrations(project, ci_provider, cards=cards, force=force)
    return 0


@click.command("fork")
@click.argument("spec")
@click.option("--name", default=None, help="Name of the fork (default: the package name).")
@click.option("--index-url", default=None, help="Fetch from this simple-API index instead.")
@click.option("--wheel", "prefer_wheel", is_flag=True, help="Fork the wheel, not the sdist.")
@click.option("--pre", "prereleases", is_flag=True, default=None, help="Allow pre-releases.")
@click.option(
    "--layout",
    type=click.Choice(["project", "namespace"]),
    default=None,
    help="project: the whole project tree, installed by path (default); namespace: "
    "importable packages vendored under [tool.forkman.vendoring] namespace.",
)
@actor_options
@click.pass_obj
def fork_cmd(
    obj: Any,
    spec: str,
    name: str | None,
    index_url: str | None,
    prefer_wheel: bool,
    prereleases: bool | None,
    layout: str | None,
    jobs: int | None,
    wait: float,
) -> int:
    """Fork SPEC: a requirement from the index, or git+URL@REF.

    \b
    Examples:
      forkman fork attrs==23.1.0
      forkman fork 'packaging>=24,<25'
      forkman fork git+https://github.com/org/repo@v1.2.0 --name foo
    """
    from .._forks import fork_name_for, layout_and_reason, require_initialized
    from ._actors import on_fork

    project = obj.project()
    project.require_git()
    require_initialized(project)
    fork_name = fork_name_for(spec, name)
    chosen, why = layout_and_reason(project, fork_name, layout)
    result = on_fork(
        obj,
        project,
        fork_name,
        "fork",
        {
            "spec": spec,
            "index_url": index_url,
            "prefer": "wheel" if prefer_wheel else None,
            "prereleases": prereleases,
            "layout": layout,
        },
        wait=wait,
    )
    click.echo(f"forked {fork_name} {result['version']} into {result['path']}")
    click.echo(f"layout: {chosen} ({why})")
    from ._patch import render_results, revendor_stale

    # the other namespace forks' imports of this one are rewritten now
    return render_results(revendor_stale(obj, project, jobs=jobs))


@click.command("unfork")
@click.argument("names", nargs=-1, required=True)
@actor_options
@click.pass_obj
def unfork_cmd(obj: Any, names: tuple[str, ...], jobs: int | None, wait: float) -> int:
    """Remove forks NAMES: their vendored trees, patches, history and lock entries.

    Every name is checked first: an unknown name removes nothing. A fork that
    cannot be removed (another command holds it) is reported and the others
    are removed (exit 2).

    \b
    Example:
      forkman unfork attrs
      forkman unfork attrs idna six
    """
    from .._forks import require_fork
    from ._actors import failure, on_forks

    project = obj.project()
    project.require_git()
    entries = [require_fork(project, name) for name in names]
    wanted = list(dict.fromkeys(entry.name for entry in entries))
    # one after the other: each removal edits the lock and pyproject.toml the next one reads
    failed = []
    for name in wanted:
        reply = on_forks(obj, project, [name], "unfork", wait=wait)[name]
        if reply.ok:
            click.echo(f"removed {name} ({reply.result['path']})")
        else:
            failed.append(name)
            hint = reply.result.get("error_hint")
            click.echo(f"error: {name}: {failure(reply, 'unfork')}", err=True)
            if hint:
                click.echo(f"hint: {hint}", err=True)
    from ._patch import render_results, revendor_stale

    # the other namespace forks import the removed ones from the top level again
    code = render_results(revendor_stale(obj, project, jobs=jobs))
    return 2 if failed else code


@click.command("status")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def status_cmd(obj: Any, fmt: str) -> int:
    """Show every fork: version, source, patches, state, last test and audit.

    A test result recorded for another version or tree of the fork shows as
    stale; forks declared in [tool.forkman.forks] but not made yet show as
    "declared, not forked". The JSON rows carry the whole error of a failed
    operation (the table shortens it).

    \b
    Example:
      forkman status --format json
    """
    from .._status import DECLARED, DECLARED_HINT, status
    from .._txn import recover
    from ..actors import actor_states

    project = obj.project()
    for line in recover(project):
        click.echo(f"recovered: {line}", err=True)
    rows = status(project, actor_states=actor_states(project))
    if fmt == "json":
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    elif not rows:
        click.echo("no forks yet: `forkman fork NAME==VERSION` makes one")
    else:
        click.echo(
            table(
                ["fork", "version", "source", "patches", "state", "tests", "audit"],
                [[r.name, r.version, r.source, r.patches, r.state, r.tests, r.audit] for r in rows],
            )
        )
        declared = sum(1 for r in rows if r.state == DECLARED)
        if declared:
            click.echo(f"{declared} declared fork(s) not forked yet: {DECLARED_HINT}")
    return 0


@click.command("verify")
@click.argument("names", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@actor_options
@click.pass_obj
def verify_cmd(obj: Any, names: tuple[str, ...], fmt: str, jobs: int | None, wait: float) -> int:
    """Rebuild forks from their recorded sources and patches, and compare (slow).

    Exit 0 when every fork rebuilds bit for bit, 1 otherwise.

    \b
    Example:
      forkman verify attrs
    """
    from .._errors import ForkmanError
    from .._forks import require_fork
    from ._actors import on_forks

    project = obj.project()
    wanted = [require_fork(project, n).name for n in names] or sorted(project.load_lock().forks)
    replies = on_forks(obj, project, wanted, "verify", jobs=jobs, wait=wait)
    results = []
    for name in wanted:
        reply = replies[name]
        if not reply.ok:
            raise ForkmanError(f"{name}: {reply.error}")
        results.append({"name": name, **reply.result})
    if fmt == "json":
        click.echo(json.dumps(results, indent=2))
    else:
        for r in results:
            click.echo(
                f"{r['name']}: ok"
                if r["ok"]
                else f"{r['name']}: FAILED ({r['stage'] or '?'}): {r['message']}"
            )
            if not r["ok"] and r.get("hint"):
                click.echo(f"  hint: {r['hint']}")
    return 0 if all(r["ok"] for r in results) else 1
