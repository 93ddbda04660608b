"""Rendering helpers shared by commands: tables on stdout, progress on stderr."""

from __future__ import annotations

from collections.abc import Sequence

import click


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain, aligned text table (stable for scripts and tests)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for i, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


class StderrObserver:
    """Progress as plain lines on stderr (one per step; byte counts when verbose)."""

    def __init__(self, quiet: bool = False, *, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose

    def step(self, subject: str, text: str) -> None:
        if not self.quiet:
            click.echo(f"{subject}: {text}", err=True)

    def progress(self, subject: str, done: int, total: int | None) -> None:
        if self.verbose:
            click.echo(f"{subject}: {done}{'/' + str(total) if total else ''}", err=True)

    def warning(self, text: str) -> None:
        click.echo(f"warning: {text}", err=True)
