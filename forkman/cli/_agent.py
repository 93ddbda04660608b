"""`forkman mcp` (the MCP server for agents) and `forkman agent approve|reject|log`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from ..core.errors import ForkmanError


def _root(ctx: click.Context) -> Path:
    project = ctx.obj.project()
    return Path(project.root)


@click.command("mcp")
@click.option(
    "--allow-writes",
    is_flag=True,
    help="Perform calls that change the project directly (default: record them as plans).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Wall-clock seconds one execute call may run before it is stopped.",
)
@click.option(
    "--http",
    "http_port",
    type=click.IntRange(1, 65535),
    default=None,
    metavar="PORT",
    help="Serve streamable HTTP on 127.0.0.1:PORT instead of stdio.",
)
@click.pass_context
def mcp_cmd(ctx: click.Context, allow_writes: bool, timeout: float, http_port: int | None) -> int:
    """Serve this project to agents over MCP: two tools, `search` and `execute`.

    `search` finds forkman API methods for a task; `execute` runs Python with
    `fm` (the project's API) in the no-network sandbox. Calls that change the
    project become plans that `forkman agent approve ID` applies, unless
    --allow-writes. See docs/agents.md for registering it in MCP clients.

    \b
    Example:
      forkman mcp                       # stdio, read-only (plans for writes)
      forkman mcp --allow-writes --timeout 60
      forkman mcp --http 8765           # streamable HTTP on 127.0.0.1:8765
    """
    from ..agent.server import AgentServer, open_executor, require_sdk, serve_http, serve_stdio

    require_sdk()
    executor = open_executor(_root(ctx), allow_writes=allow_writes, timeout=timeout)
    agent = AgentServer(executor)
    try:
        if http_port is not None:
            click.echo(
                f"forkman mcp: streamable HTTP on http://127.0.0.1:{http_port}/mcp "
                f"({'writes allowed' if allow_writes else 'read-only: writes become plans'})",
                err=True,
            )
            serve_http(agent, http_port)
        else:
            serve_stdio(agent)
    finally:
        executor.close()
    return 0


@click.group("agent")
def agent_group() -> None:
    """Review what agents did through `forkman mcp`: apply or reject their planned writes.

    \b
    Example:
      forkman agent log
      forkman agent approve 3
      forkman agent reject 4
    """


def _store(ctx: click.Context) -> Any:
    from ..agent._store import AgentStore

    project = ctx.obj.project()
    return AgentStore(project.state_dir)


def _clean(text: str, limit: int = 400) -> str:
    from ..testing.run import clean_line

    return clean_line(text, limit)


def _conflicts(value: Any) -> list[str]:
    """Names of forks a sync result says stopped at a conflict."""
    found: list[str] = []
    if isinstance(value, dict):
        if value.get("outcome") == "conflict" and isinstance(value.get("name"), str):
            found.append(value["name"])
        for v in value.values():
            found += _conflicts(v)
    elif isinstance(value, list):
        for v in value:
            found += _conflicts(v)
    return list(dict.fromkeys(found))


@agent_group.command("approve")
@click.argument("plan_id", type=int, metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def approve_cmd(ctx: click.Context, plan_id: int, yes: bool, fmt: str) -> int:
    """Apply plan ID: perform the write an agent asked for, as it asked.

    Exit 0 when applied, 1 when a sync stopped at a conflict (the fork stays
    there, as with `forkman sync`), 2 when it failed.

    \b
    Example:
      forkman agent approve 3
      forkman agent approve 3 --yes --format json
    """
    from ..agent._host import apply_plan

    store = _store(ctx)
    try:
        plan = store.plan(plan_id)
    finally:
        store.close()
    if plan.status != "pending":
        raise ForkmanError(
            f"plan {plan_id} ({_clean(plan.call_text())}) is {plan.status}, not pending",
            hint="`forkman agent log` shows what became of it",
        )
    if not yes:
        click.echo(f"plan {plan_id}: {_clean(plan.call_text(), 2000)}", err=True)
        if not click.confirm("apply it?", default=False, err=True):
            click.echo("not applied", err=True)
            return 0
    value, error = apply_plan(_root(ctx), plan_id)
    if error is not None:
        if fmt == "json":
            click.echo(json.dumps({"plan": plan_id, "status": "failed", "error": error.to_json()}))
        raise error
    conflicts = _conflicts(value)
    if fmt == "json":
        click.echo(json.dumps({"plan": plan_id, "status": "applied", "result": value}, indent=1))
    else:
        click.echo(f"plan {plan_id} applied: {_clean(plan.call_text())}")
        for name in conflicts:
            click.echo(
                f"fork {name} stopped at a conflict: resolve its files, then "
                f"`forkman sync {name} --continue` (or `--abort`)"
            )
    return 1 if conflicts else 0


@agent_group.command("reject")
@click.argument("plan_id", type=int, metavar="ID")
@click.pass_context
def reject_cmd(ctx: click.Context, plan_id: int) -> int:
    """Reject plan ID: it is never performed.

    \b
    Example:
      forkman agent reject 4
    """
    store = _store(ctx)
    try:
        plan = store.claim(plan_id, "rejected")
    finally:
        store.close()
    click.echo(f"plan {plan_id} rejected: {_clean(plan.call_text())}")
    return 0


@agent_group.command("log")
@click.option(
    "-n",
    "limit",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Executions shown, newest first.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def log_cmd(ctx: click.Context, limit: int, fmt: str) -> int:
    """List agents' executions, their API calls and results, and the plans.

    \b
    Example:
      forkman agent log
      forkman agent log -n 50 --format json
    """
    store = _store(ctx)
    try:
        executions = store.executions(limit)
        plans = store.plans()
    finally:
        store.close()
    if fmt == "json":
        data = {
            "executions": [e.to_json() for e in executions],
            "plans": [p.to_json() for p in plans],
        }
        click.echo(json.dumps(data, indent=1, default=str))
        return 0
    pending = [p for p in plans if p.status == "pending"]
    if pending:
        click.echo("pending plans:")
        for p in pending:
            click.echo(f"  {p.id}  {_clean(p.call_text())}  (execution {p.execution})")
        click.echo("  apply with `forkman agent approve ID`, refuse with `forkman agent reject ID`")
    if not executions:
        click.echo("no executions recorded")
        return 0
    status = {p.id: p.status for p in plans}
    for e in executions:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.started))
        outcome = "ok" if e.error is None else f"error: {_error_text(e.error)}"
        click.echo(f"execution {e.id}  {when}  {e.mode}  {e.duration:.2f}s  {outcome}")
        for c in e.calls:
            args = [repr(a) for a in c.arguments.get("args", [])]
            args += [f"{k}={v!r}" for k, v in c.arguments.get("kwargs", {}).items()]
            line = f"{c.seq}. fm.{c.method}({', '.join(args)}): {c.outcome}"
            if c.plan is not None:
                line += f" -> plan {c.plan} ({status.get(c.plan, '?')})"
            elif c.outcome in ("error", "refused"):
                line += f": {_error_text(c.result)}"
            click.echo("  " + _clean(line, 300))
        if e.result is not None:
            click.echo("  returned " + _clean(json.dumps(e.result, default=str), 300))
    return 0


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return _clean(f"{error.get('type')}: {error.get('message')}", 200)
    return _clean(str(error), 200)
