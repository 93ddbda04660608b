"""mkdocs hook: generate the CLI reference page from the click commands at build time.

It walks `forkman.cli._app.cli` and every command registered in
`forkman.cli.COMMANDS` (and the subcommands of any group), so the reference
cannot drift from `forkman --help`. Registered in mkdocs.yml under `hooks:`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

PAGE = "reference/cli.md"
REPO = Path(__file__).resolve().parent.parent


def _option_rows(command: click.Command, ctx: click.Context) -> list[str]:
    rows = []
    for param in command.get_params(ctx):
        if isinstance(param, click.Argument):
            name = f"`{param.human_readable_name}`"
            kind = "argument"
            help_text = "repeatable" if param.nargs == -1 else ""
        elif isinstance(param, click.Option):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name = ", ".join(f"`{p}`" for p in (*param.opts, *param.secondary_opts))
            if isinstance(param.type, click.Choice):
                kind = " \\| ".join(f"`{c}`" for c in param.type.choices)
            elif param.is_flag:
                kind = "flag"
            else:
                kind = f"`{param.type.name.upper()}`"
            help_text = record[1]
        else:
            continue
        cell = help_text.replace("|", "\\|")
        rows.append(f"| {name} | {kind} | {cell} |")
    return rows


def _section(command: click.Command, path: list[str], parent: click.Context | None) -> list[str]:
    name = " ".join(path)
    ctx = click.Context(command, info_name=path[-1], parent=parent, terminal_width=88)
    lines = [f"## `{name}`" if len(path) > 1 else f"## `{name}` (global options)", ""]
    if command.short_help or command.help:
        lines += [command.get_short_help_str(limit=200), ""]
    lines += ["```text", command.get_help(ctx).rstrip(), "```", ""]
    rows = _option_rows(command, ctx)
    if rows:
        lines += ["| name | type | description |", "| --- | --- | --- |", *rows, ""]
    if isinstance(command, click.Group) and len(path) > 1:
        for sub in command.list_commands(ctx):
            subcommand = command.get_command(ctx, sub)
            if subcommand is not None:
                lines += _section(subcommand, [*path, sub], ctx)
    return lines


def render_reference() -> str:
    """The CLI reference in Markdown (of the forkman in this repository)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from forkman.cli import COMMANDS
    from forkman.cli._app import cli

    root = click.Context(cli, info_name="forkman", terminal_width=88)
    lines = [
        "# Command line reference",
        "",
        "Generated from the commands themselves when the site is built: this page "
        "is `forkman --help` and `forkman COMMAND --help` for every command.",
        "",
        "Exit codes: **0** ok, **1** findings (a check, a failed stage, a "
        "vulnerability), **2** bad input or an error that stopped the work.",
        "",
        "Commands: " + ", ".join(f"[`{c}`](#forkman-{c})" for c in sorted(COMMANDS)),
        "",
    ]
    lines += _section(cli, ["forkman"], None)
    for name in sorted(COMMANDS):
        command = cli.get_command(root, name)
        if command is None:
            raise RuntimeError(f"COMMANDS lists {name!r} but it does not load")
        lines += _section(command, ["forkman", name], root)
    return "\n".join(lines) + "\n"


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render_reference()))
    return files
