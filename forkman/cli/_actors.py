"""`forkman watch`: run each fork's scheduled upstream checks and re-audits."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import click

from ..core.errors import BadInput
from ..core.observer import Observer

F = TypeVar("F", bound=Callable[..., Any])


def actor_options(command: F) -> F:
    """``--jobs`` and ``--wait``, for every command that works through the fork actors."""
    command = click.option(
        "--wait",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help="Seconds to queue behind another forkman command working on a fork.",
    )(command)
    command = click.option(
        "--jobs",
        type=click.IntRange(min=1),
        default=None,
        help="Forks worked on at once (default: the number of cores).",
    )(command)
    return command


class CliObserver:
    """Progress of API calls for the CLI: a progress view per batch of forks, warnings on stderr.

    Steps outside fork batches are not shown (the commands print their results).
    """

    def step(self, subject: str, text: str) -> None:
        pass

    def progress(self, subject: str, done: int, total: int | None) -> None:
        pass

    def warning(self, text: str) -> None:
        click.echo(f"warning: {text}", err=True)

    def batch(self) -> AbstractContextManager[Observer]:
        from ..actors.progress import progress_for

        return progress_for()


def on_forks(
    obj: Any,
    project: Any,
    names: list[str],
    kind: str,
    args: dict[str, Any] | None = None,
    *,
    jobs: int | None = None,
    wait: float = 0.0,
    per_fork: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Send `kind` to each fork's actor with a progress view on stderr; replies by name.

    `per_fork`: arguments of one fork's message on top of `args`.
    """
    from ..actors import run_for_forks
    from ..actors.progress import progress_for

    with progress_for() as view:
        return run_for_forks(
            project,
            names,
            kind,
            args or {},
            jobs=jobs,
            engine=obj.engine,
            observer=view,
            wait=wait,
            per_fork=per_fork,
        )


def failure(reply: Any, kind: str) -> str:
    """What a failed reply says went wrong."""
    return str(reply.result.get("error_message") or reply.error or f"{kind} failed")


def on_fork(
    obj: Any,
    project: Any,
    name: str,
    kind: str,
    args: dict[str, Any] | None = None,
    *,
    wait: float = 0.0,
) -> Any:
    """Send `kind` to one fork's actor; its result, or its failure as an error (exit 2)."""
    reply = on_forks(obj, project, [name], kind, args, wait=wait)[name]
    error = reply.exception()  # its class, hint and exit code (1: refused for a finding)
    if error is not None:
        raise error
    for warning in reply.result.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    return reply.result


def _in(seconds: float) -> str:
    if seconds <= 0:
        return "now"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if minutes and not days:
        parts.append(f"{minutes}m")
    if not parts:
        parts.append(f"{secs}s")
    return "in " + "".join(parts)


@click.command("watch")
@click.option("--once", is_flag=True, help="Run what is due now, show what is next, and exit.")
@click.option(
    "--interval",
    type=float,
    default=60.0,
    show_default=True,
    help="Longest sleep between passes, in seconds.",
)
@actor_options
@click.pass_obj
def watch_cmd(obj: object, once: bool, interval: float, jobs: int | None, wait: float) -> int:
    """Run scheduled upstream checks and re-audits for every fork; show what is due next.

    check-upstream reports a newer allowed release (a dry run: the fork is not
    changed); audit records each fork's known vulnerabilities in forkman.lock
    and fails when a fork cannot be audited. With --once: exit 1 when a check
    failed or found something.

    Intervals come from [tool.forkman.watch] (check-upstream = "24h",
    audit = "24h"). Schedules are durable: a restarted watch picks up where it
    stopped; a failing check is retried with backoff.

    \b
    Example:
      forkman watch --once
      forkman watch --interval 300
    """
    from ..actors.fork_actor import open_engine
    from ..actors.progress import PlainProgress
    from ..actors.watch import ensure_alarms, watch_once, watch_policy

    if interval <= 0:
        raise BadInput("--interval must be a positive number of seconds")
    project = obj.project()  # type: ignore[attr-defined]
    policy = watch_policy(project.config.section("watch"))
    names = sorted(project.load_lock().forks) if project.lock_path.exists() else []
    observer = PlainProgress()
    engine = open_engine(
        project,
        engine=obj.engine,  # type: ignore[attr-defined]
        jobs=jobs,
        wait=wait,
        observer=observer,
    )
    failures = 0
    try:
        kinds = ensure_alarms(engine, names, policy, observer, time.time())
        if not names:
            click.echo("no forks to watch (fork one with `forkman fork NAME`)")
            return 0
        if not kinds:
            click.echo("nothing to schedule: no watched operation is available")
            return 0
        while True:
            result = watch_once(engine)
            for alarm, reply in result.delivered:
                name = alarm.key.split(":", 1)[1]
                summary = reply.result.get("summary") if reply.ok else None
                if reply.ok and reply.result.get("ok") is False:
                    failures += 1  # it ran, and found something (e.g. an open vulnerability)
                    click.echo(f"{name}: {alarm.name} FINDINGS: {summary or 'see its result'}")
                elif reply.ok:
                    click.echo(f"{name}: {alarm.name} ok" + (f": {summary}" if summary else ""))
                else:
                    failures += 1
                    click.echo(f"{name}: {alarm.name} FAILED: {reply.error}")
            now = time.time()
            click.echo("next due:")
            for alarm in result.upcoming:
                retry = f" (retry {alarm.attempts})" if alarm.attempts else ""
                click.echo(
                    f"  {alarm.key.split(':', 1)[1]:<24} {alarm.name:<16} {_in(alarm.due - now)}"
                    f"{retry}"
                )
            if once:
                return 1 if failures else 0
            soonest = min((a.due for a in result.upcoming), default=now + interval)
            try:
                time.sleep(max(0.05, min(interval, soonest - time.time())))
            except KeyboardInterrupt:
                return 0
    finally:
        engine.shutdown()
