"""The API an agent sees: the public methods of :class:`forkman.Project`, found by introspection.

Nothing here lists the operations by hand: every public method of
``forkman.Project`` (its name, signature, docstring and the fields of what it
returns) becomes an :class:`Operation`, so a method added to the API appears
in ``search`` and on ``fm`` without a change here. What *is* listed by hand is
the security decision of which operations only read: everything else changes
the project and is gated (fail closed: a new method is a write until it is
named here).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..core.errors import ForkmanError

READ_ONLY = frozenset(
    {
        "audit",
        "check",
        "diff",
        "forks",
        "licenses",
        "patches",
        "provenance",
        "read_file",
        "review",
        "sbom",
        "status",
        "test",  # records its results in the lock: the one write allowed read-only
        "verify",
    }
)
"""Operations that never change the project (and any, called with ``dry_run=True``).

``doctor`` is left out on purpose: its `python` argument names an interpreter the
host would run, outside the sandbox."""

WRITE_FLAGS = frozenset(
    {"output", "write", "fix", "update", "save", "record", "accept_publisher_change"}
)
"""Arguments that make a read-only operation write when set (``sbom(output=...)``)."""


@dataclass(frozen=True)
class Parameter:
    """One parameter of an operation."""

    name: str
    annotation: str
    default: str | None
    """The default's repr, None when the parameter is required."""
    kind: str
    """``positional``, ``keyword`` (keyword-only) or ``variadic``."""


@dataclass(frozen=True)
class Operation:
    """One public method of ``forkman.Project``, as ``fm.NAME`` offers it."""

    name: str
    qualname: str
    """``forkman.Project.NAME``."""
    signature: str
    """``(names, *, dry_run=False)`` (without ``self``)."""
    summary: str
    """The docstring's first line."""
    doc: str
    """The whole docstring."""
    example: str
    """The docstring's example, or a call built from the signature."""
    returns: str
    """What it returns: the type and its fields."""
    parameters: tuple[Parameter, ...]
    read_only: bool
    """Never changes the project (sync: only with dry_run)."""

    def to_json(self) -> dict[str, Any]:
        """This operation as JSON data."""
        return dataclasses.asdict(self)

    def card(self) -> str:
        """A few lines: signature, summary, returns, example."""
        gate = "reads" if self.read_only else "writes (gated)"
        if not self.read_only and any(p.name == "dry_run" for p in self.parameters):
            gate = "writes (gated); reads with dry_run=True"
        lines = [f"fm.{self.name}{self.signature}  [{gate}]", f"  {self.summary}"]
        if self.returns:
            lines.append(f"  returns: {self.returns}")
        if self.example:
            example = self.example.splitlines()
            lines += ["  example:", *(f"    {line}" for line in example[:6])]
        return "\n".join(lines)


def _project_class() -> type:
    try:
        import forkman

        cls = forkman.Project
    except (ImportError, AttributeError):
        raise ForkmanError(
            "this forkman has no public API (forkman.Project) to offer",
            hint="upgrade forkman",
        ) from None
    assert isinstance(cls, type)
    return cls


def _annotation_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    text = getattr(annotation, "__name__", None)
    if text and not getattr(annotation, "__args__", None):
        return str(text)
    return re.sub(r"\b(?:[a-z_]+\.)+", "", str(annotation))


def _summary(doc: str) -> str:
    first = doc.strip().split("\n\n", 1)[0]
    return " ".join(first.split())


_EXAMPLE_HEAD = re.compile(r"^\s*Examples?\s*:{1,2}\s*$", re.MULTILINE)


def _example(doc: str, name: str, signature: str) -> str:
    match = _EXAMPLE_HEAD.search(doc)
    if match:
        block = inspect.cleandoc(doc[match.end() :]).split("\n\n")[0]
        lines = [line.removeprefix(">>> ").removeprefix("... ") for line in block.splitlines()]
        text = "\n".join(line for line in lines if line.strip())
        if text:
            return text
    prompts = [
        line.strip().removeprefix(">>> ")
        for line in doc.splitlines()
        if line.strip().startswith(">>> ")
    ]
    if prompts:
        return "\n".join(prompts)
    return ""


def _fields(tp: Any, depth: int = 0) -> str:
    """`tp` and, for a dataclass (or a list of them), its field names."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (list, tuple, set, frozenset) and args:
        inner = _fields(args[0], depth)
        return f"list of {inner}"
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        parts = [_fields(a, depth) for a in args if a is not type(None)]
        return " | ".join(parts) + (" or None" if type(None) in args else "")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        names = [f.name for f in dataclasses.fields(tp)]
        return f"{tp.__name__}({', '.join(names)})"
    return _annotation_text(tp) or "None"


@cache
def _type_checking_names(module_name: str) -> dict[str, Any]:
    """The names a module imports only for type checking (``if TYPE_CHECKING:``), imported."""
    import ast
    import importlib
    import sys

    module = sys.modules.get(module_name)
    try:
        tree = ast.parse(inspect.getsource(module)) if module else None
    except (OSError, TypeError, SyntaxError):
        tree = None
    names: dict[str, Any] = {}
    for node in tree.body if tree else []:
        if not (isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)):
            continue
        for stmt in node.body:
            if not isinstance(stmt, ast.ImportFrom) or stmt.module is None:
                continue
            package = module_name.rpartition(".")[0]
            target = "." * stmt.level + stmt.module
            try:
                imported = importlib.import_module(target, package if stmt.level else None)
            except ImportError:
                continue
            for alias in stmt.names:
                if hasattr(imported, alias.name):
                    names[alias.asname or alias.name] = getattr(imported, alias.name)
    return names


def _returns(func: Any) -> str:
    try:
        hints = typing.get_type_hints(
            func, localns=_type_checking_names(getattr(func, "__module__", ""))
        )
    except Exception:
        return _annotation_text(inspect.signature(func).return_annotation)
    if "return" not in hints:
        return ""
    return _fields(hints["return"])


def _signature_text(params: list[inspect.Parameter]) -> str:
    """``(name, upstream=None, *, record=False)``: names and defaults, no annotations."""
    parts: list[str] = []
    star = False
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
            star = True
            continue
        if p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        default = "" if p.default is p.empty else f"={p.default!r}"
        parts.append(p.name + default)
    return f"({', '.join(parts)})"


def _operation(name: str, func: Any) -> Operation:
    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if p.name != "self"]
    signature = _signature_text(params)
    doc = inspect.getdoc(func) or ""
    parameters = tuple(
        Parameter(
            name=p.name,
            annotation=_annotation_text(p.annotation),
            default=None if p.default is inspect.Parameter.empty else repr(p.default),
            kind=(
                "variadic"
                if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                else "keyword"
                if p.kind is p.KEYWORD_ONLY
                else "positional"
            ),
        )
        for p in params
    )
    return Operation(
        name=name,
        qualname=f"forkman.Project.{name}",
        signature=signature,
        summary=_summary(doc),
        doc=doc,
        example=_example(doc, name, signature),
        returns=_returns(func),
        parameters=parameters,
        read_only=name in READ_ONLY,
    )


@cache
def operations() -> tuple[Operation, ...]:
    """Every public method of ``forkman.Project`` (constructors excluded), by name."""
    cls = _project_class()
    ops: list[Operation] = []
    for name, member in inspect.getmembers(cls):
        if name.startswith("_"):
            continue
        raw = inspect.getattr_static(cls, name)
        if isinstance(raw, classmethod | staticmethod | property):
            continue  # Project.open and friends build a project: fm is one already
        if not inspect.isfunction(member):
            continue
        ops.append(_operation(name, member))
    return tuple(ops)


def operation(name: str) -> Operation:
    """The operation `name`; NotFound naming the ones there are."""
    for op in operations():
        if op.name == name:
            return op
    from ..core.errors import NotFound

    raise NotFound(
        f"fm has no method {name!r}",
        hint="the methods are: " + ", ".join(op.name for op in operations()),
    )


def writes(op: Operation, arguments: dict[str, Any]) -> bool:
    """Whether calling `op` with `arguments` (bound by name) may change the project."""
    if any(p.name == "dry_run" for p in op.parameters) and arguments.get("dry_run") is True:
        return False  # a dry run (sync, migrate_vendoring) writes nothing
    if not op.read_only:
        return True
    return any(arguments.get(flag) not in (None, False, "", [], {}) for flag in WRITE_FLAGS)


# ---- search -------------------------------------------------------------------------

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "carry": ("sync", "series", "patch"),
    "release": ("version", "upstream", "sync"),
    "new": ("newer", "latest", "upstream"),
    "upgrade": ("sync", "version", "newer"),
    "update": ("sync", "version", "newer"),
    "bump": ("sync", "version"),
    "rebase": ("sync", "patch", "series"),
    "merge": ("sync", "conflict"),
    "vulnerability": ("audit", "advisory", "advisories", "vulnerabilities"),
    "vulnerable": ("audit", "advisory", "vulnerabilities"),
    "cve": ("audit", "advisory"),
    "security": ("audit", "advisory", "review", "risk"),
    "risk": ("review", "delta", "risky"),
    "delta": ("review", "diff", "changes"),
    "change": ("diff", "changes", "delta"),
    "edit": ("patch", "diff", "changes"),
    "commit": ("patch", "record"),
    "record": ("patch",),
    "undo": ("restore", "abort", "unfork"),
    "revert": ("restore",),
    "remove": ("unfork",),
    "vendor": ("fork", "vendored"),
    "license": ("licenses",),
    "inventory": ("sbom",),
    "tests": ("test",),
    "list": ("forks", "status"),
    "conflict": ("sync_continue", "sync_abort", "conflict"),
    "resolve": ("sync_continue", "conflict"),
    "signature": ("provenance", "attestation"),
    "attestation": ("provenance",),
    "integrity": ("verify", "check"),
}

_WORD = re.compile(r"[a-z0-9_]+")


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _terms(text: str) -> set[str]:
    words = _WORD.findall(text.lower())
    out = set(words) | {_stem(w) for w in words}
    for w in words:
        if "_" in w:
            out |= set(w.split("_"))
    return out


def _score(op: Operation, query: list[str]) -> float:
    name_terms = _terms(op.name.replace("_", " ")) | {op.name}
    summary_terms = _terms(op.summary)
    doc_terms = _terms(op.doc) | _terms(" ".join(p.name for p in op.parameters))
    score = 0.0
    for word in query:
        expanded = {word, _stem(word)}
        weight = 1.0
        alt = {s for s in _SYNONYMS.get(word, ()) + _SYNONYMS.get(_stem(word), ())}
        for terms, gain in ((name_terms, 6.0), (summary_terms, 3.0), (doc_terms, 1.0)):
            if expanded & terms:
                score += gain * weight
            elif alt & terms:
                score += gain * 0.6 * weight
    return score


@dataclass(frozen=True)
class SearchResult:
    """What ``search`` returns: the matches that fit the budget, and what was cut."""

    text: str
    shown: tuple[str, ...]
    """Names of the operations shown, best first."""
    cut: int
    """Matches left out to stay within the budget."""


def search(
    query: str,
    *,
    budget: int = 6000,
    limit: int = 8,
    ops: tuple[Operation, ...] | None = None,
) -> SearchResult:
    """Operations ranked for `query`, at most `limit`, rendered within `budget` characters."""
    ops = operations() if ops is None else ops
    words = [w for w in _WORD.findall(query.lower()) if w not in _STOP]
    if words:
        scored = [(s, op) for op in ops if (s := _score(op, words)) > 0]
    else:  # an empty query lists everything, briefly
        scored = [(1.0, op) for op in ops]
    scored.sort(key=lambda item: (-item[0], item[1].name))
    blocks: list[str] = []
    shown: list[str] = []
    used = 0
    for _, op in scored[:limit]:
        block = op.card()
        if used + len(block) + 2 > budget and blocks:
            break
        if used + len(block) + 2 > budget:
            block = block[: max(0, budget - 40)] + "\n  ..."
        blocks.append(block)
        shown.append(op.name)
        used += len(block) + 2
    cut = len(scored) - len(shown)
    if not scored:
        text = (
            f"no operation matches {query!r}. Operations: "
            + ", ".join(op.name for op in ops)
            + ". Search with words from what you want done (sync, audit, patch, review)."
        )
    else:
        text = "\n\n".join(blocks)
        if cut:
            rest = ", ".join(op.name for _, op in scored[len(shown) :])
            text += (
                f"\n\n[{cut} more matches cut (at most {limit} shown, within {budget} "
                f"characters): {rest}. Narrow the query, or search for one of these names.]"
            )
    return SearchResult(text=text, shown=tuple(shown), cut=cut)


_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "my",
        "our",
        "to",
        "of",
        "in",
        "on",
        "for",
        "and",
        "or",
        "with",
        "from",
        "into",
        "by",
        "is",
        "are",
        "be",
        "it",
        "this",
        "that",
        "what",
        "which",
        "how",
        "do",
        "does",
        "can",
        "i",
        "me",
        "all",
        "each",
        "every",
        "any",
    ]
)
