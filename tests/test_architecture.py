"""forkman's architecture, enforced: the layers, no import cycles, no imports by string,
and modules small enough to read.

The layers, bottom to top (``docs/architecture.md`` says what each holds). A
module imports only from its own package and from packages on a lower rank;
packages that share a rank do not import each other. Every import counts: at
module level, inside functions and under ``TYPE_CHECKING``. The public facade
(the ``forkman`` package itself) is imported only by the surfaces on top.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "forkman"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("model", "sandbox"),
    ("store",),
    ("actors", "gate"),
    ("sources",),
    ("layouts",),
    ("audit", "series"),
    ("testing",),
    ("operations",),
    ("reports",),
    ("ci",),
    ("api",),
    ("agent",),
    ("cli",),
    ("__main__",),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
# the surfaces may use the public facade (``import forkman``)
MAY_IMPORT_FACADE = {"agent", "cli", "__main__"}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "forkman" else None


def _imports(module: str) -> Iterator[tuple[int, str]]:
    """(line, imported forkman module) for every import statement in `module`."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "forkman":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            if name.split(".")[0] != "forkman":
                continue
            submodules = [f"{name}.{a.name}" for a in node.names if f"{name}.{a.name}" in MODULES]
            for target in submodules or [name]:
                yield node.lineno, target


def _layer_problem(module: str, target: str) -> str | None:
    here, there = _layer(module), _layer(target)
    if here is None or here == there:
        return None
    if there is None:
        return None if here in MAY_IMPORT_FACADE else "the public facade `forkman`"
    if there == "core":
        return None
    if RANK[there] >= RANK[here]:
        return f"layer {there!r} (rank {RANK[there]}) from layer {here!r} (rank {RANK[here]})"
    return None


def test_every_package_has_a_layer() -> None:
    packages = {_layer(m) for m in MODULES} - {None}
    # single modules at the top level are layers of their own (forkman.api)
    assert packages <= RANK.keys(), packages - RANK.keys()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_imports_point_down(module: str) -> None:
    wrong = [
        f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {target}: {problem}"
        for line, target in _imports(module)
        if (problem := _layer_problem(module, target))
    ]
    assert not wrong, "\n".join(wrong)


_MODULE_STRING = re.compile(r"forkman(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*)?")


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_no_imports_by_string(module: str) -> None:
    """A module name in a string (``importlib``, ``"pkg.mod:NAME"`` tables) is an import
    the layer check cannot see; only lower layers may be named."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    wrong = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if not _MODULE_STRING.fullmatch(node.value):
                continue
            target = node.value.split(":")[0]
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != "forkman" and (problem := _layer_problem(module, target)):
                wrong.append(f"line {node.lineno}: {node.value!r} names {problem}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph = {m: {t for _, t in _imports(m) if t in MODULES and t != m} for m in MODULES}
    graph["forkman"] = set()  # the facade imports lazily, by design
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, "modules that import each other: " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_small(module: str) -> None:
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module]} has {lines} lines (at most {MAX_LINES})"


def test_the_layer_rules_catch_a_violation() -> None:
    """The rules themselves: an upward import, a facade import and a sideways one fail."""
    assert _layer_problem("forkman.store.txn", "forkman.layouts.wiring")
    assert _layer_problem("forkman.audit.review", "forkman.series.patchfile")  # same rank
    assert _layer_problem("forkman.model.lock", "forkman")
    assert _layer_problem("forkman.operations.sync", "forkman.store.txn") is None
    assert _layer_problem("forkman.cli._app", "forkman") is None
