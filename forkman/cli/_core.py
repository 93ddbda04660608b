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
    fm = obj.api()
    done = fm.init(index_url=index_url)
    click.echo(
        "added [tool.forkman] to pyproject.toml" if done.added else "[tool.forkman] already present"
    )
    click.echo(f"lock: {done.lock}")
    if done.ignored:
        click.echo(
            f"added {' and '.join(done.ignored)} to .gitignore: bytecode under a fork that git "
            "does not ignore is a `forkman check` finding (Python may run it instead of "
            "the source)"
        )
    if ci_provider is not None or cards:
        from ._ci_cmd import render_integrations

        return render_integrations(fm.core, ci_provider, cards=cards, force=force)
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
    from ._patch import render_results

    made = obj.api(jobs=jobs, wait=wait).fork(
        spec,
        name=name,
        index_url=index_url,
        wheel=prefer_wheel,
        prereleases=prereleases,
        layout=layout,
    )
    click.echo(f"forked {made.name} {made.version} into {made.path}")
    click.echo(f"layout: {made.layout} ({made.layout_reason})")
    # the other namespace forks' imports of this one were rewritten
    return render_results(made.revendored)


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
    from ._patch import render_results

    done = obj.api(jobs=jobs, wait=wait).unfork(*names)
    for result in done.results:
        if result.error is None:
            click.echo(f"removed {result.name} ({result.path})")
        else:
            click.echo(f"error: {result.name}: {result.error.message}", err=True)
            if result.error.hint:
                click.echo(f"hint: {result.error.hint}", err=True)
    # the other namespace forks import the removed ones from the top level again
    code = render_results(done.revendored)
    return 2 if any(r.error is not None for r in done.results) else code


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
    from ..operations.status import DECLARED, DECLARED_HINT

    rows = obj.api().status()
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
    results = obj.api(jobs=jobs, wait=wait).verify(names)
    if fmt == "json":
        rows = [
            {
                "name": r.name,
                "ok": r.ok,
                "stage": r.stage.value if r.stage else None,
                "message": r.message,
                "hint": r.hint,
            }
            for r in results
        ]
        click.echo(json.dumps(rows, indent=2))
    else:
        for r in results:
            click.echo(
                f"{r.name}: ok"
                if r.ok
                else f"{r.name}: FAILED ({r.stage.value if r.stage else '?'}): {r.message}"
            )
            if not r.ok and r.hint:
                click.echo(f"  hint: {r.hint}")
    return 0 if all(r.ok for r in results) else 1
