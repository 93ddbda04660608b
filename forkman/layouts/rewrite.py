"""Import rewriting for the namespace layout, on the syntax tree.

Every import of a vendored top-level module is redirected into the private
namespace (for example ``mypkg._vendor``). The file is parsed with :mod:`ast`
and only the byte ranges of the import statements that need it are replaced,
so every other byte (comments, formatting, line endings, encoding) is kept.

The rules (``ns`` is the namespace, ``a`` a vendored top-level module):

=============================  ==============================================
``import a``                   ``from ns import a``
``import a as c``              ``from ns import a as c``
``import a.b``                 ``import ns.a.b; from ns import a`` (binds
                               ``a`` to the vendored package, with ``a.b``
                               loaded, like the original)
``import a.b as c``            ``from ns.a import b as c``
``from a import b``            ``from ns.a import b``
``from a.b import c``          ``from ns.a.b import c``
``from . import x``            unchanged (relative)
``import os``                  unchanged (not vendored)
=============================  ==============================================

Imports anywhere count: in functions, classes, ``try`` blocks and
``if TYPE_CHECKING:``. An ``import`` statement that mixes vendored and other
modules is split into several statements joined by ``;``, in the original
order.

Configured substitutions (``[[tool.forkman.vendoring.substitute]]``, Python
regular expressions) handle dynamic references such as
``__import__("a")``; like the vendoring tool, they run before the imports
are rewritten.

``RewriteMode.VENDORING_COMPAT`` reproduces the vendoring tool's regular
expressions exactly (its rules for ``import a``, ``import a as c``, ``import
a.b as c`` and ``from a...``; migrated projects use it until their committed
tree is reproduced, then can switch to the syntax mode). The tool refuses a
bare ``import a.b`` and asks for a patch; since such patches apply before the
rewriting (:mod:`forkman.operations.patches`, "before rewrite"), this mode leaves the
statement as it is and reports its line (``RewriteResult.unrewritten``).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import assert_never

from ..core.errors import ForkmanError
from ..core.pysource import parse_source
from ..model.vendoring import NAMESPACE_HINT, namespace_problem
from ..model.vendoring import RewriteMode as RewriteMode
from ..model.vendoring import Substitution as Substitution

_NEWLINE = re.compile(rb"\r\n|\r|\n")
_WS = rb"(?:[ \t\f]|\\\r?\n|\\\r)*"
_FROM_MODULE = re.compile(
    rb"from" + _WS + rb"(?P<mod>[^\s\\.]+(?:" + _WS + rb"\." + _WS + rb"[^\s\\.]+)*)"
)


class RewriteError(ForkmanError):
    """A vendored file cannot be rewritten (it is not valid Python)."""


@dataclass(frozen=True)
class RewriteResult:
    """What rewriting one file did."""

    data: bytes
    """The new file content (the input when nothing changed)."""
    imports: int
    """How many import statements were rewritten."""
    substitutions: int
    """How many substitution matches were replaced."""
    unrewritten: tuple[int, ...] = ()
    """Lines of imports of vendored modules left as they are (``import a.b`` in the
    vendoring-compat mode, which the vendoring tool cannot rewrite either)."""

    @property
    def changed(self) -> bool:
        """Whether the content differs from the input."""
        return self.imports > 0 or self.substitutions > 0


def check_namespace(namespace: str) -> None:
    """Refuse a namespace that is not a dotted Python name."""
    problem = namespace_problem(namespace)
    if problem is not None:
        raise RewriteError(problem, hint=NAMESPACE_HINT)


def _decode(data: bytes) -> tuple[str, str, bytes]:
    """(text, encoding, bom) of a Python source file."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        encoding = "utf-8"
    bom = b""
    if encoding == "utf-8-sig":
        encoding = "utf-8"
        if data.startswith(b"\xef\xbb\xbf"):
            bom, data = b"\xef\xbb\xbf", data[3:]
    return data.decode(encoding), encoding, bom


def _vendored(name: str, modules: frozenset[str]) -> bool:
    return name.split(".", 1)[0] in modules


def _import_replacement(node: ast.Import, modules: frozenset[str], namespace: str) -> str:
    statements: list[str] = []
    plain: list[str] = []

    def flush() -> None:
        if plain:
            statements.append("import " + ", ".join(plain))
            plain.clear()

    for alias in node.names:
        name, asname = alias.name, alias.asname
        if not _vendored(name, modules):
            plain.append(f"{name} as {asname}" if asname else name)
            continue
        flush()
        head, _, tail = name.rpartition(".")
        if asname:
            origin = f"{namespace}.{head}" if head else namespace
            statements.append(f"from {origin} import {tail} as {asname}")
        elif head:
            top = name.split(".", 1)[0]
            statements.append(f"import {namespace}.{name}")
            statements.append(f"from {namespace} import {top}")
        else:
            statements.append(f"from {namespace} import {name}")
    flush()
    return "; ".join(statements)


_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(tree: ast.Module) -> Iterator[ast.stmt]:
    """Every statement of `tree` at any depth (imports are statements; expressions are skipped)."""
    stack: list[ast.AST] = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.stmt):
            yield node
        for attr in _BLOCKS:
            children = getattr(node, attr, None)
            if children:
                stack.extend(reversed(children))


def _syntax_rewrite(
    work: bytes, text: str, modules: frozenset[str], namespace: str, filename: str
) -> tuple[bytes, int]:
    try:
        tree = parse_source(text, filename=filename)
    except SyntaxError as exc:
        raise RewriteError(
            f"{filename}:{exc.lineno or 0}: cannot rewrite imports: {exc.msg}",
            hint="vendored code must be valid Python for this interpreter; "
            "drop the file ([tool.forkman.vendoring] drop) or fix it with a patch",
        ) from None
    starts = [0, 0] + [m.end() for m in _NEWLINE.finditer(work)]

    def offset(line: int, col: int) -> int:
        return starts[line] + col

    edits: list[tuple[int, int, bytes]] = []
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            if not any(_vendored(a.name, modules) for a in node.names):
                continue
            assert node.end_lineno is not None and node.end_col_offset is not None
            start = offset(node.lineno, node.col_offset)
            end = offset(node.end_lineno, node.end_col_offset)
            new = _import_replacement(node, modules, namespace).encode("utf-8")
            # keep the line count (tracebacks, patches): continue over the old lines
            newlines = _NEWLINE.findall(work, start, end)
            if newlines:
                new += b"".join(b" \\" + nl for nl in newlines)
                if end == len(work):  # nothing follows to continue onto
                    new = new[: -len(newlines[-1]) - 2] + newlines[-1]
            edits.append((start, end, new))
        elif isinstance(node, ast.ImportFrom):
            if node.level or node.module is None or not _vendored(node.module, modules):
                continue
            start = offset(node.lineno, node.col_offset)
            m = _FROM_MODULE.match(work, start)
            found = m and re.sub(rb"[\s\\]", b"", m.group("mod")).decode("utf-8")
            if not m or found != node.module:
                raise RewriteError(  # pragma: no cover - guards offset arithmetic
                    f"{filename}:{node.lineno}: cannot locate module name {node.module!r}"
                )
            new = f"{namespace}.{node.module}".encode()
            edits.append((m.start("mod"), m.end("mod"), new))
    if not edits:
        return work, 0
    out = bytearray(work)
    for start, end, new in sorted(edits, reverse=True):
        out[start:end] = new
    try:
        ast.parse(bytes(out))
    except SyntaxError as exc:  # pragma: no cover - a rewrite must never break a file
        raise RewriteError(
            f"{filename}:{exc.lineno or 0}: rewriting imports produced invalid code: {exc.msg}",
            hint="please report this as a forkman bug, with the file",
        ) from None
    return bytes(out), len(edits)


def _compat_rewrite(
    text: str, modules: Iterable[str], namespace: str
) -> tuple[str, int, tuple[int, ...]]:
    """The vendoring tool's rules (1.2 to 1.4), in its order: (text, rewrites, lines left)."""
    count = 0
    left: set[int] = set()
    for lib in modules:
        text, n1 = re.subn(
            rf"^(\s*)import {lib}(\s|$)",
            rf"\1from {namespace} import {lib}\2",
            text,
            flags=re.MULTILINE,
        )
        text, n2 = re.subn(
            rf"^(\s*)import {lib}(\.\S+)(?=\s+as)",
            rf"\1import {namespace}.{lib}\2",
            text,
            flags=re.MULTILINE,
        )
        for match in re.finditer(rf"^\s*(import {lib}\.\S+)", text, flags=re.MULTILINE):
            left.add(text.count("\n", 0, match.start(1)) + 1)
        text, n3 = re.subn(
            rf"^(\s*)from {lib}(\.|\s)",
            rf"\1from {namespace}.{lib}\2",
            text,
            flags=re.MULTILINE,
        )
        count += n1 + n2 + n3
    return text, count, tuple(sorted(left))


def rewrite_source(
    data: bytes,
    *,
    modules: Iterable[str],
    namespace: str,
    substitutions: Sequence[Substitution] = (),
    mode: RewriteMode = RewriteMode.SYNTAX,
    filename: str = "<source>",
) -> RewriteResult:
    """Rewrite the imports of `modules` in Python source `data` into `namespace`.

    Raises :class:`RewriteError` naming `filename` and the line when `data`
    is not valid Python (syntax mode).
    """
    module_set = frozenset(modules)
    text, encoding, bom = _decode(data)
    if mode is RewriteMode.VENDORING_COMPAT:
        # The vendoring tool reads and writes UTF-8 text in universal-newline mode.
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    subs = 0
    for sub in substitutions:
        text, n = re.subn(sub.match, sub.replace, text)
        subs += n
    match mode:
        case RewriteMode.SYNTAX:
            work = text.encode("utf-8") if (subs or encoding != "utf-8") else data[len(bom) :]
            new, imports = _syntax_rewrite(work, text, module_set, namespace, filename)
            if imports == 0 and subs == 0:
                return RewriteResult(data, 0, 0)
            if encoding != "utf-8":
                new = new.decode("utf-8").encode(encoding)
            return RewriteResult(bom + new, imports, subs)
        case RewriteMode.VENDORING_COMPAT:
            text, imports, left = _compat_rewrite(text, sorted(module_set), namespace)
            out = text.encode("utf-8")
            if out == data:
                return RewriteResult(data, 0, 0, left)
            return RewriteResult(out, imports, subs, left)
        case _:
            assert_never(mode)
