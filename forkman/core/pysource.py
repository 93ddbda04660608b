"""Parsing Python source forkman did not write (upstream releases): one parser for
every reader of it.

Upstream code is read, never run, so anything the parser cannot take is the
same answer as invalid syntax: source nested deeply enough to exhaust the
parser's recursion (:class:`RecursionError`), too large for memory, or holding
null bytes (a :class:`ValueError` on Python 3.11) is a :class:`SyntaxError`
here, which every reader already handles.
"""

from __future__ import annotations

import ast


def parse_source(source: str | bytes, filename: str = "<unknown>") -> ast.Module:
    """`source` parsed; a :class:`SyntaxError` for anything the parser cannot take."""
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError:
        raise
    except (RecursionError, MemoryError, ValueError) as exc:
        why = "it holds null bytes" if isinstance(exc, ValueError) else "it is nested too deeply"
        raise SyntaxError(f"cannot be parsed: {why}", (filename, 0, 0, None)) from None
