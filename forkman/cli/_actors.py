"""`forkman watch`: run each fork's scheduled upstream checks and re-audits."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..core.observer import Observer

if TYPE_CHECKING:
    from ..actors.watch import WatchRound

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
def watch_cmd(obj: Any, once: bool, interval: float, jobs: int | None, wait: float) -> int:
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
    from ..actors.progress import PlainProgress

    done = obj.api(jobs=jobs, wait=wait).watch(
        once=once, interval=interval, on_round=_render_round, observer=PlainProgress()
    )
    if not done.forks:
        click.echo("no forks to watch (fork one with `forkman fork NAME`)")
    elif not done.kinds:
        click.echo("nothing to schedule: no watched operation is available")
    return int(done.exit_code()) if once else 0


def _render_round(result: WatchRound) -> None:
    """One pass of `forkman watch`: what ran, and what is due next."""
    for event in result.events():
        if event.ok and event.found:  # it ran, and found something (an open vulnerability)
            click.echo(f"{event.fork}: {event.kind} FINDINGS: {event.headline or 'see its result'}")
        elif event.ok:
            click.echo(
                f"{event.fork}: {event.kind} ok" + (f": {event.headline}" if event.headline else "")
            )
        else:
            click.echo(f"{event.fork}: {event.kind} FAILED: {event.error}")
    now = time.time()
    click.echo("next due:")
    for alarm in result.upcoming:
        retry = f" (retry {alarm.attempts})" if alarm.attempts else ""
        click.echo(
            f"  {alarm.key.split(':', 1)[1]:<24} {alarm.name:<16} {_in(alarm.due - now)}{retry}"
        )
