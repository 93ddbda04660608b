"""The click application: a group whose commands are imported on first use."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..core.errors import ForkmanError
from ..core.version import __version__
from ._commands import COMMANDS

if TYPE_CHECKING:
    from ..api import Project
    from ..core.observer import Observer


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(f"forkman.cli.{module_name}")
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; map :class:`ForkmanError` and int results to exit codes."""
        try:
            rv = super().invoke(ctx)
        except ForkmanError as exc:
            if ctx.obj is not None and ctx.obj.verbose:
                import traceback

                traceback.print_exc()
            click.echo(exc.diagnostics(), err=True)
            ctx.exit(exc.exit_code)
        if isinstance(rv, int) and not isinstance(rv, bool):
            ctx.exit(rv)
        return rv


class Context:
    """What every command gets: where the project is, how verbose to be."""

    def __init__(self, project_dir: Path | None, verbose: bool, engine: str) -> None:
        self.project_dir = project_dir
        self.verbose = verbose
        self.engine = engine

    def project(self) -> Any:
        """The consumer project (found upward from --project or the cwd)."""
        from ..model.project import find_project

        return find_project(self.project_dir)

    def api(
        self, *, jobs: int | None = None, wait: float = 0.0, observer: Observer | None = None
    ) -> Project:
        """The public API on the consumer project (:class:`forkman.api.Project`).

        Progress of fork operations shows on stderr (a live table on a
        terminal), warnings as ``warning:`` lines; or goes to `observer`.
        """
        from ..api import Project
        from ._actors import CliObserver

        return Project(self.project(), observer or CliObserver(), self.engine, jobs, wait)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="forkman")
@click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The consumer project (default: found upward from the current directory).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for errors.")
@click.option(
    "--engine",
    type=click.Choice(["embedded", "ray"]),
    default=lambda: os.environ.get("FORKMAN_ENGINE", "embedded"),
    show_default="embedded",
    help="Where fork actors run: in this process (SQLite) or on a Ray cluster.",
)
@click.pass_context
def cli(ctx: click.Context, project_dir: Path | None, verbose: bool, engine: str) -> None:
    """forkman: own your dependencies as forks.

    \b
    Example:
      forkman init
      forkman fork attrs==23.1.0
      forkman status
      forkman check
    """
    ctx.obj = Context(project_dir, verbose, engine)
