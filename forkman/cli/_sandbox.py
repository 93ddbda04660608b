"""`forkman sandbox run|doctor` and `forkman test`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..core.errors import BadInput, ProjectError
from ._actors import actor_options

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..operations.results import TestResult


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


def _api_or_none(ctx: click.Context) -> Any:
    """The project's API, or None outside a project (the sandbox's defaults apply)."""
    try:
        return ctx.obj.api() if ctx.obj is not None else None
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
    from ..api import sandbox_run
    from ..model.config import parse_size

    if not argv:
        raise BadInput("give a command to run after --")
    fm = _api_or_none(ctx)
    size = parse_size(memory) if memory else None
    if no_sandbox:
        click.echo(
            "warning: --no-sandbox: the command runs with your network, files and secrets", err=True
        )
    run = sandbox_run(
        argv, project=fm, timeout=timeout, memory=size, writable=writable, no_sandbox=no_sandbox
    )
    result, policy = run.result, run.policy
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
@click.option(
    "--explain",
    is_flag=True,
    help="Show the test dependencies found and where from; run nothing.",
)
@click.option(
    "--show-output",
    is_flag=True,
    help="Print each suite's output after its run (to stderr with --format json).",
)
@actor_options
@click.pass_context
def test_cmd(
    ctx: click.Context,
    names: tuple[str, ...],
    all_forks: bool,
    no_sandbox: bool,
    fmt: str,
    explain: bool,
    show_output: bool,
    jobs: int | None,
    wait: float,
) -> int:
    """Run forks' own test suites in the no-network sandbox; exit 1 when tests fail,
    2 when a suite could not run (usage or collection error, timeout, limit).

    A fork without tests to run is reported ("no-tests", saying where forkman
    looked) and is not a failure (exit 0); a suite that could not run exits 2.

    Each fork's run is a message to its actor: forks are tested in parallel
    (--jobs), one run at a time per fork, from one warm fork server. The
    output and JUnit report of each run are kept in .forkman/test-logs/NAME/;
    the first failing tests are listed (all of them with -v or --format json).
    --explain shows the test dependencies found in each fork's tree (and
    where), the configured ones and what was seen but not used.

    \b
    Example:
      forkman test attrs
      forkman test attrs --explain
      forkman test attrs --show-output
      forkman test --all --jobs 2 --format json
    """
    import json

    from ..testing.junit import clean_line

    if names and all_forks:
        raise BadInput("name forks or pass --all, not both")
    if not names and not all_forks:
        raise BadInput("name at least one fork, or pass --all")
    fm = ctx.obj.api(jobs=jobs, wait=wait)
    if explain:
        return _explain([r.to_json() for r in fm.test_dependencies(names)], fmt)
    results = fm.test(names, no_sandbox=no_sandbox)
    rows = [_row(result) for result in results]
    if show_output:
        _show_output(rows, err=fmt == "json")
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        _print_rows(rows, verbose=ctx.obj is not None and ctx.obj.verbose)
    for row in rows:
        if row["status"] in ("error", "timeout"):
            click.echo(f"error: {row['name']}: {clean_line(str(row['message']), 2000)}", err=True)
    return _exit_code(results)


def _row(result: TestResult) -> dict[str, Any]:
    """One fork's test result as ``forkman test --format json`` prints it."""
    if result.error is not None:
        return {"name": result.name, "status": "error", "message": result.message, "tier": "-"}
    return {
        "name": result.name,
        "status": result.status,
        "ok": result.ok,
        "message": result.message,
        "tier": result.tier,
        **result.counts,
        "failures": [dict(f) for f in result.failures],
        "failures_not_listed": result.failures_not_listed,
        "output_log": result.output_log,
        **result.details,
    }


def _exit_code(results: Sequence[TestResult]) -> int:
    """2 when a suite could not run, else 1 when one failed; a fork with no tests to run
    is not a failure of the fork (its message says where forkman looked)."""
    if any(r.could_not_run for r in results):
        return 2
    return int(any(not r.ok and r.status != "no-tests" for r in results))


def _show_output(rows: Sequence[dict[str, Any]], *, err: bool) -> None:
    from ..testing.junit import clean_output

    for row in rows:
        log = row.get("output_log")
        if not log:
            continue
        try:
            data = Path(log).read_bytes()
        except OSError as exc:
            click.echo(f"warning: cannot read {log}: {exc.strerror}", err=True)
            continue
        click.echo(f"---- output of {row['name']} ({log}) ----", err=err)
        click.echo(clean_output(data).rstrip("\n"), err=err)


def _print_rows(rows: Sequence[dict[str, Any]], *, verbose: bool) -> None:
    from ..testing.junit import clean_line

    for row in rows:
        click.echo(
            f"{row['name']}: {row['status']}: {clean_line(str(row['message']), 2000)} "
            f"[sandbox: {row['tier']}]"
        )
        failures = row.get("failures") or []
        shown = failures if verbose else failures[:FAILURES_SHOWN]
        for f in shown:
            label = "FAILED" if f["kind"] == "failed" else "ERROR"
            click.echo(f"  {label} {clean_line(f['id'], 1000)}: {clean_line(f['message'])}")
        more = len(failures) - len(shown) + int(row.get("failures_not_listed") or 0)
        if more:
            click.echo(f"  ... and {more} more (-v or --format json lists them)")
        if row.get("output_log"):
            click.echo(f"  log: {row['output_log']}")


def _explain(reports: list[dict[str, Any]], fmt: str) -> int:
    """`forkman test --explain`: the test dependencies of each fork; runs nothing."""
    import json

    from ._output import table

    if fmt == "json":
        click.echo(json.dumps(reports, indent=2))
        return 0
    for i, report in enumerate(reports):
        if i:
            click.echo()
        found, constraints = report["found"], report["constraints"]
        state = "on" if report["discover"] else "off (discover = false)"
        click.echo(f"{report['name']} ({report['path']}): test dependencies, discovery {state}")
        if found:
            rows = [(f["requirement"], f["source"]) for f in found]
            click.echo(table(["requirement", "source"], rows))
        else:
            click.echo("no test dependencies found")
        if constraints:
            click.echo("constraints:")
            click.echo(
                table(
                    ["constraint", "source"], [(c["requirement"], c["source"]) for c in constraints]
                )
            )
        configured = report["configured"]
        reqs = ", ".join(configured["requirements"]) or "none"
        extras = ", ".join(configured["extras"]) or "none"
        click.echo(f"configured: requirements: {reqs}; extras: {extras}")
        for note in report["notes"]:
            click.echo(f"note: {note}")
    return 0


FAILURES_SHOWN = 5
"""Failing tests listed per fork in the text output (all of them with -v)."""
