"""Reading a fork's files as data, never running them: only regular files inside the
tree, only up to a size cap, each problem kept as a note; ``setup.py`` and
``noxfile.py`` parsed with :mod:`ast` for literal values only."""

from __future__ import annotations

import ast
import configparser
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.pysource import parse_source

MAX_FILE_BYTES = 1 << 20
"""Files larger than this are not read."""
_MAX_NAME_DEPTH = 20


class Dynamic(Exception):
    """A setup.py value that is not a literal."""


def safe(text: str, limit: int = 120) -> str:
    """`text` from the fork's files, fit to print: no control characters, bounded."""
    out = "".join(c if c.isprintable() else "?" for c in text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def strip_comment(line: str) -> str:
    """`line` without its ``#`` comment and surrounding blanks."""
    return re.sub(r"(?:^|\s+)#.*$", "", line).strip()


def logical_lines(text: str) -> list[str]:
    """pip's requirement-file lines: continuations joined, comments and blanks dropped."""
    out: list[str] = []
    buf = ""
    for raw in text.splitlines():
        if raw.endswith("\\") and not strip_comment(raw).startswith("#"):
            buf += raw[:-1] + " "
            continue
        line = strip_comment(buf + raw)
        buf = ""
        if line:
            out.append(line)
    if buf.strip():
        out.append(strip_comment(buf))
    return [ln for ln in out if ln]


def static_value(node: ast.AST, names: Mapping[str, ast.expr], depth: int = 0) -> Any:
    """The literal value of `node` (names resolved to top-level literal assignments)."""
    if depth > _MAX_NAME_DEPTH:
        raise Dynamic("too deep")
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        return node.value
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [static_value(e, names, depth + 1) for e in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[Any, Any] = {}
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:
                raise Dynamic("** in a dict")
            out[static_value(k, names, depth + 1)] = static_value(v, names, depth + 1)
        return out
    if isinstance(node, ast.Name) and node.id in names:
        return static_value(names[node.id], names, depth + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = (
            static_value(node.left, names, depth + 1),
            static_value(node.right, names, depth + 1),
        )
        if isinstance(left, list) and isinstance(right, list):
            return left + right
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        raise Dynamic("+ of different types")
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
        and all(kw.arg is not None for kw in node.keywords)
    ):
        return {kw.arg: static_value(kw.value, names, depth + 1) for kw in node.keywords}
    raise Dynamic(type(node).__name__)


def as_lines(value: Any) -> list[str] | None:
    """A setuptools list of requirements (a list of strings or one multi-line string)."""
    if isinstance(value, str):
        return [ln for ln in (strip_comment(x) for x in value.splitlines()) if ln]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


class TreeReader:
    """Reads files of one tree; keeps what it could not read, in order, as notes."""

    def __init__(self, tree: Path) -> None:
        self.tree = tree.resolve()
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def rel(self, path: Path) -> str:
        try:
            return Path(os.path.normpath(path)).relative_to(self.tree).as_posix()
        except ValueError:
            return str(path)

    def read(self, path: Path) -> str | None:
        """The text of `path` if it lies inside the tree, is a regular file and is small."""
        try:
            real = path.resolve()
        except (OSError, RuntimeError):
            self.note(f"{safe(str(path))}: cannot be resolved; not read")
            return None
        if not real.is_relative_to(self.tree):
            self.note(f"{safe(self.rel(path))}: lies outside the fork's tree; not read")
            return None
        if not real.exists():
            self.note(f"{safe(self.rel(path))}: no such file in the fork's tree")
            return None
        if not real.is_file():
            self.note(f"{safe(self.rel(path))}: not a regular file; not read")
            return None
        try:
            size = real.stat().st_size
            if size > MAX_FILE_BYTES:
                self.note(f"{safe(self.rel(path))}: larger than {MAX_FILE_BYTES} bytes; not read")
                return None
            return real.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            self.note(f"{safe(self.rel(path))}: cannot be read ({safe(str(exc), 60)})")
            return None

    def ini(self, rel: str) -> configparser.ConfigParser | None:
        path = self.tree / rel
        if not path.exists() and not path.is_symlink():
            return None
        text = self.read(path)
        if text is None:
            return None
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(text, source=rel)
        except configparser.Error as exc:
            self.note(f"{rel}: not a valid ini file ({safe(str(exc).splitlines()[0], 80)})")
            return None
        return parser

    def python_module(self, filename: str) -> ast.Module | None:
        """The syntax tree of `filename` at the tree's root, parsed, never run."""
        path = self.tree / filename
        if not path.exists() and not path.is_symlink():
            return None
        text = self.read(path)
        if text is None:
            return None
        try:
            return parse_source(text, filename=filename)
        except SyntaxError:
            self.note(f"{filename}: cannot be parsed; not read")
            return None
