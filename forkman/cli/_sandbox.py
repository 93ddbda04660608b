"""`forkman sandbox run|doctor` and `forkman test`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .._errors import BadInput, NotFound, ProjectError
from ._actors import actor_options


@click.group("sandbox")
def sandbox_group() -> None:
    """Run commands in the no-network sandbox; show what isolation this host offers.

    \b
    Example:
      forkman sandbox doctor
      forkman sandbox run --timeout 60 --memory 1G -- python script.py
    """


@sandbox_group.command("doctor")
def doctor_cmd() -> int:
    """Show which isolation tier this host offers, and why not more.

    \b
    Example:
      forkman sandbox doctor
    """
    from ..sandbox import detect

    support = detect()
    for m in support.mechanisms():
        mark = "yes" if m.available else "NO "
        click.echo(f"{mark}  {m.name}: {m.detail}")
    click.echo(f"tier: {support.best_tier.value}")
    return 0


def _config_or_none(ctx: click.Context) -> object:
    try:
        return ctx.obj.project().config if ctx.obj is not None else None
    except ProjectError:
        return None


@sandbox_group.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--timeout", type=float, default=None, help="Wall-clock seconds (default 60).")
@click.option("--memory", default=None, help="Memory limit, e.g. 512M or 1G.")
@click.option(
    "--writable",
    "writable",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A directory the command may write (repeatable); default: the current directory.",
)
@click.option("--no-sandbox", is_flag=True, help="Run without isolation (trusted code only).")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def run_cmd(
    ctx: click.Context,
    timeout: float | None,
    memory: str | None,
    writable: tuple[Path, ...],
    no_sandbox: bool,
    argv: tuple[str, ...],
) -> int:
    """Run any command under the sandbox policy; exit with its status (2 when refused).

    \b
    Example:
      forkman sandbox run --timeout 60 --memory 1G --writable out -- python script.py
    """
    from .._testrun import parse_size, sandbox_policy
    from ..sandbox import ForkServer

    if not argv:
        raise BadInput("give a command to run after --")
    config = _config_or_none(ctx)
    policy = sandbox_policy(
        config,  # type: ignore[arg-type]
        timeout=timeout,
        memory=parse_size(memory) if memory else None,
        writable=tuple(p.resolve() for p in writable) or (Path.cwd().resolve(),),
    )
    if no_sandbox:
        click.echo(
            "warning: --no-sandbox: the command runs with your network, files and secrets", err=True
        )
    with ForkServer(preload=()) as server:
        result = server.run(list(argv), policy, cwd=Path.cwd(), disabled=no_sandbox)
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    if result.timed_out:
        click.echo(
            f"forkman sandbox: timed out after {policy.timeout:g}s; the process tree was killed",
            err=True,
        )
    if result.memory_exceeded:
        click.echo("forkman sandbox: memory limit exceeded; the process tree was killed", err=True)
    if result.processes_exceeded:
        click.echo("forkman sandbox: process limit exceeded; the process tree was killed", err=True)
    if ctx.obj is not None and ctx.obj.verbose:
        click.echo(
            f"forkman sandbox: tier {result.tier_label}: {', '.join(result.enforced)}", err=True
        )
    return result.returncode


@click.command("test")
@click.argument("names", nargs=-1)
@click.option("--all", "all_forks", is_flag=True, help="Test every fork.")
@click.option("--no-sandbox", is_flag=True, help="Run without isolation (trusted code only).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@actor_options
@click.pass_context
def test_cmd(
    ctx: click.Context,
    names: tuple[str, ...],
    all_forks: bool,
    no_sandbox: bool,
    fmt: str,
    jobs: int | None,
    wait: float,
) -> int:
    """Run forks' own test suites in the no-network sandbox; exit 1 when tests fail.

    A fork without tests to run is reported ("no-tests", saying where forkman
    looked) and is not a failure (exit 0); a suite that could not run exits 2.

    Each fork's run is a message to its actor: forks are tested in parallel
    (--jobs), one run at a time per fork, from one warm fork server.

    \b
    Example:
      forkman test attrs
      forkman test --all --jobs 2
    """
    import json

    from .._forks import require_fork
    from .._operations import stop_test_server
    from ._actors import on_forks

    if names and all_forks:
        raise BadInput("name forks or pass --all, not both")
    if not names and not all_forks:
        raise BadInput("name at least one fork, or pass --all")
    project = ctx.obj.project()
    wanted = [require_fork(project, n).name for n in names] or sorted(project.load_lock().forks)
    if not wanted:
        raise NotFound("the project has no forks", hint="fork something first: forkman fork NAME")
    if no_sandbox:
        click.echo(
            "warning: the sandbox is disabled: the tests run with your network, files and secrets",
            err=True,
        )
    try:
        replies = on_forks(
            ctx.obj, project, wanted, "test", {"no_sandbox": no_sandbox}, jobs=jobs, wait=wait
        )
    finally:
        stop_test_server()
    worst = 0
    rows = []
    for name in wanted:
        reply = replies[name]
        if not reply.ok:
            rows.append({"name": name, "status": "error", "message": reply.error, "tier": "-"})
            worst = 2
            continue
        rows.append({"name": name, **reply.result})
        if reply.result.get("status") == "error":  # the suite could not run: not a finding
            worst = 2
        elif reply.result.get("status") == "no-tests":
            pass  # nothing to run is not a failure of the fork: its message says where we looked
        elif not reply.result.get("ok"):
            worst = max(worst, 1)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            click.echo(f"{row['name']}: {row['status']}: {row['message']} [sandbox: {row['tier']}]")
    for row in rows:
        if row["status"] == "error":
            click.echo(f"error: {row['name']}: {row['message']}", err=True)
    return worst
