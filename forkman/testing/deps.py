"""What a fork's test suite needs, found statically in its vendored tree.

Real releases declare their test dependencies in many places. :func:`discover`
reads them, in this order of trust, and returns plain PEP 508 requirements:

1. PEP 735 ``[dependency-groups]`` named test, tests or testing (``dev`` when
   none of those exists), with ``{include-group = ...}`` followed;
2. the fork's extras named test, tests or testing, expanded in place (an extra
   that names the fork itself, ``attrs[tests-no-zope]``, contributes that
   extra's contents, never a requirement on the fork);
3. requirement files under ``tests/`` (``test/``, ``testing/``),
   ``requirements/`` or the root named like test (dev when no test file
   exists), following ``-r`` inside the tree;
4. ``tox.ini`` ``[testenv]`` ``deps`` and ``extras``, where static;
5. ``noxfile.py`` ``session.install("...")`` literals in test sessions;
6. ``tests_require`` of ``setup.cfg`` / ``setup.py``;
7. the fork's own dependencies (``[project]``, else ``setup.cfg`` or
   ``setup.py`` ``install_requires``);
8. pytest plugins its pytest configuration implies (``--cov`` needs
   pytest-cov, ``-n`` pytest-xdist, ``asyncio_mode`` pytest-asyncio, ...).

Everything is read as data: no code of the fork runs. ``setup.py`` and
``noxfile.py`` are parsed with :mod:`ast` for literal values only. Files are
read only inside the tree (an include that resolves elsewhere is refused) and
only up to a size cap. The result reaches an installer, so only valid PEP 508
requirements naming an index package come out: options (``--index-url``,
``--no-binary``), editables, paths, direct URL references and anything else
are reported in :attr:`TestDependencies.notes` and never returned.
Environment markers are evaluated for this interpreter and stripped.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..core.errors import ConfigError, NotFound
from ..model.project import Project
from .config import load_test_config
from .pytestplugins import INI_PLUGINS, plugin_options
from .reqfiles import Found, RequirementSet
from .treeread import MAX_FILE_BYTES, safe, strip_comment

__all__ = [
    "MAX_FILE_BYTES",
    "ForkTestDependencies",
    "Found",
    "TestDependencies",
    "discover",
    "fork_test_dependencies",
    "resolve",
]

TEST_NAMES = ("test", "tests", "testing")
"""Names of dependency groups and extras that hold test dependencies."""
DEV_NAMES = ("dev",)
"""Dependency group names used when no test group exists."""

_FACTOR = re.compile(r"^[A-Za-z0-9_{},.!\- ]+:(?:\s|$)")


@dataclass(frozen=True)
class TestDependencies:
    """What a fork's test suite needs, and what was seen but not used."""

    found: tuple[Found, ...]
    """Requirements, most trusted source first, one per distribution name."""
    constraints: tuple[Found, ...]
    """Constraints (``-c`` files): versions to hold to, not requirements."""
    notes: tuple[str, ...]
    """Things seen but not used (options, paths, dynamic values, refused includes, ...)."""

    __test__ = False

    @property
    def requirements(self) -> tuple[str, ...]:
        """The requirement strings, in order."""
        return tuple(f.requirement for f in self.found)


class _Collector(RequirementSet):
    """Reads one tree; accumulates requirements, constraints and notes in order."""

    def __init__(self, tree: Path, name: str) -> None:
        self._groups_done: set[str] = set()
        super().__init__(tree, name)

    # ---- the sources, in order of trust --------------------------------------------

    def dependency_groups(self) -> None:
        raw = self.pyproject.get("dependency-groups")
        if raw is None:
            return
        if not isinstance(raw, dict):
            self.note("pyproject.toml: [dependency-groups] is not a table; not read")
            return
        groups: dict[str, Any] = {canonicalize_name(str(k)): v for k, v in raw.items()}
        chosen = [g for g in TEST_NAMES if g in groups]
        if chosen:
            for g in DEV_NAMES:
                if g in groups:
                    self.note(f"dependency group {g!r} not used: a test group is declared")
        else:
            chosen = [g for g in DEV_NAMES if g in groups]
        for g in chosen:
            self._group(groups, g, f"pyproject.toml [dependency-groups] {g}", ())

    def _group(
        self, groups: Mapping[str, Any], group: str, source: str, stack: tuple[str, ...]
    ) -> None:
        if group in stack:
            self.note(f"{source}: the group includes itself; cycle cut")
            return
        if group in self._groups_done:  # its requirements are in already
            return
        entries = groups.get(group)
        if not isinstance(entries, list):
            what = "is not declared" if entries is None else "is not a list"
            self.note(f"{source}: dependency group {safe(group, 40)!r} {what}")
            return
        for item in entries:
            if isinstance(item, str):
                self.add(item, source)
            elif (
                isinstance(item, dict)
                and set(item) == {"include-group"}
                and isinstance(item["include-group"], str)
            ):
                inc = canonicalize_name(item["include-group"])
                self._group(groups, inc, f"{source} -> {safe(inc, 40)}", (*stack, group))
            else:
                self.note(f"{source}: an entry that is neither a requirement nor an include-group")
        self._groups_done.add(group)

    def test_extras(self) -> None:
        for extra in TEST_NAMES:
            if extra in self.extras:
                origin = self.extras[extra][0]
                label = f"extra [{extra}]" + ("" if origin == "pyproject.toml" else f" ({origin})")
                self.expand_extra(extra, label)

    def tox(self) -> None:
        cfg = self.ini("tox.ini")
        if cfg is None or not cfg.has_section("testenv"):
            return
        label = "tox.ini [testenv] deps"
        for raw in cfg.get("testenv", "deps", fallback="").splitlines():
            line = strip_comment(raw)
            if not line:
                continue
            if _FACTOR.match(line):
                self.note(f"{label}: factor-conditional {safe(line, 60)!r} not used")
                continue
            line = line.replace("{toxinidir}", ".").replace("{tox_root}", ".")
            if "{" in line:
                self.note(f"{label}: {safe(line, 60)!r} has a substitution; not used")
                continue
            self.requirement_line(line, self.tree, label, ())
        extras = cfg.get("testenv", "extras", fallback="")
        for extra in re.split(r"[,\s]+", extras):
            if extra and not _FACTOR.match(extra + " ") and "{" not in extra:
                self.expand_extra(extra, f"tox.ini [testenv] extras -> [{safe(extra, 40)}]")

    def nox(self) -> None:
        module = self.python_module("noxfile.py")
        if module is None:
            return
        for func in module.body:
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            session = _nox_session_name(func)
            if session is None or "test" not in session.lower():
                continue
            label = f"noxfile.py session {safe(session, 40)}"
            for node in ast.walk(func):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "install"
                ):
                    continue
                if node.keywords and any(kw.arg is None for kw in node.keywords):
                    self.note(f"{label}: install(**...) is computed; not read")
                args: list[str] = []
                for a in node.args:
                    if isinstance(a, ast.Constant) and isinstance(a.value, str):
                        args.append(a.value)
                    else:
                        self.note(f"{label}: an install() argument is computed; not read")
                self._nox_args(args, label)

    def _nox_args(self, args: Sequence[str], label: str) -> None:
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in ("-r", "--requirement", "-c", "--constraint", "-e", "--editable"):
                value = args[i + 1] if i + 1 < len(args) else ""
                self.requirement_line(f"{arg} {value}", self.tree, label, ())
                i += 2
                continue
            self.requirement_line(arg, self.tree, label, ())
            i += 1

    def tests_require_and_dependencies(self) -> None:
        for label, reqs in self.tests_require:
            for raw in reqs:
                self.add(raw, label)
        if self.dependencies is not None:
            label, reqs = self.dependencies
            for raw in reqs:
                self.add(raw, label)

    def pytest_plugins(self) -> None:
        found = self._pytest_config()
        if found is None:
            return
        where, ini = found
        addopts = ini.get("addopts")
        tokens: list[str] = []
        if isinstance(addopts, list):
            tokens = [str(t) for t in addopts]
            tokens = [p for t in tokens for p in (t.split() if " " in t else [t])]
        elif isinstance(addopts, str):
            try:
                tokens = shlex.split(addopts)
            except ValueError:
                self.note(f"{where} addopts: cannot be split into arguments; not read")
        self.plugin_options(tokens, f"{where} addopts")
        for key, dist in INI_PLUGINS.items():
            if key in ini or key.upper() in ini:
                self.add(dist, f"{where} {key} -> {dist}")
        required = ini.get("required_plugins")
        entries: list[str] = []
        if isinstance(required, str):
            entries = required.split()
        elif isinstance(required, list):
            entries = [str(r) for r in required]
        for entry in entries:
            self.add(entry, f"{where} required_plugins")

    def plugin_options(self, tokens: Sequence[str], where: str) -> None:
        """The plugins that pytest arguments `tokens` need."""
        plugin_options(tokens, where, self.add, self.note)

    def _pytest_config(self) -> tuple[str, Mapping[str, Any]] | None:
        """pytest's own choice of configuration file, and its options."""
        for name in ("pytest.ini", ".pytest.ini"):
            if (self.tree / name).is_file():
                cfg = self.ini(name)
                if cfg is None or not cfg.has_section("pytest"):
                    return None
                return f"{name} [pytest]", dict(cfg.items("pytest"))
        tool = self.pyproject.get("tool")
        if isinstance(tool, dict):
            pytest_table = tool.get("pytest")
            if isinstance(pytest_table, dict):
                options = pytest_table.get("ini_options")
                if isinstance(options, dict):
                    return "pyproject.toml [tool.pytest.ini_options]", options
        for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
            if (self.tree / name).is_file():
                cfg = self.ini(name)
                if cfg is not None and cfg.has_section(section):
                    return f"{name} [{section}]", dict(cfg.items(section))
        return None

    def result(self) -> TestDependencies:
        return TestDependencies(tuple(self.found), tuple(self.constraints), tuple(self.notes))


def _nox_session_name(func: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The session name of a ``@nox.session`` function, or None when it is not one."""
    for deco in func.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        is_session = (isinstance(target, ast.Attribute) and target.attr == "session") or (
            isinstance(target, ast.Name) and target.id == "session"
        )
        if not is_session:
            continue
        if isinstance(deco, ast.Call):
            for kw in deco.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    return str(kw.value.value)
        return func.name
    return None


def resolve(
    tree: Path,
    name: str,
    *,
    requirements: Iterable[str] = (),
    extras: Iterable[str] = (),
    command: Sequence[str] = (),
    discover: bool = True,
) -> TestDependencies:
    """The test dependencies of fork `name` (vendored at `tree`), configuration first.

    `requirements`, `extras` and `command` come from
    ``[tool.forkman.forks.NAME.test]``: they come first, so a configured
    requirement overrides a discovered one of the same name; a pytest
    `command` adds the plugins its options need (``-n 4``: pytest-xdist).
    `discover` false reads only them. A configured requirement
    that is not PEP 508 or an unknown configured extra is a
    :class:`~forkman.core.errors.ConfigError`.
    """
    c = _Collector(tree, name)
    where = f"[tool.forkman.forks.{c.name}.test]"
    for raw in requirements:
        try:
            Requirement(raw)
        except InvalidRequirement:
            raise ConfigError(
                f"{where} requirements: {raw!r} is not a PEP 508 requirement",
                hint="write NAME or NAME>=VERSION (options, paths and editables are not accepted)",
            ) from None
        c.add(raw, f"{where} requirements", allow_url=True)
    for extra in extras:
        if not c.expand_extra(extra, f"{where} extras -> [{extra}]"):
            known = ", ".join(sorted(c.extras)) or "none"
            raise ConfigError(
                f"{where} extras: the fork has no extra {extra!r}", hint=f"known: {known}"
            )
    if command and (command[0] in ("pytest", "py.test") or tuple(command[1:3]) == ("-m", "pytest")):
        args = command[1:] if command[0] in ("pytest", "py.test") else command[3:]
        c.plugin_options(list(args), f"{where} command")
    if not discover:
        c.note(f"{where} discover = false: only the configured requirements are used")
        return c.result()
    c.dependency_groups()
    c.test_extras()
    c.requirement_files()
    c.tox()
    c.nox()
    c.tests_require_and_dependencies()
    c.pytest_plugins()
    return c.result()


def discover(tree: Path, name: str) -> TestDependencies:
    """The test dependencies fork `name` declares in its vendored `tree` (no configuration)."""
    return resolve(tree, name)


@dataclass(frozen=True)
class ForkTestDependencies:
    """A fork's test dependencies as ``forkman test`` would install them, with their
    configuration (``[tool.forkman.forks.NAME.test]``): what ``--explain`` shows."""

    name: str
    """The fork."""
    path: str
    """Its vendored tree, relative to the project."""
    discover: bool
    """Whether the fork's tree is searched (``discover``), or only the configuration used."""
    requirements: tuple[str, ...]
    """The configured ``requirements``."""
    extras: tuple[str, ...]
    """The configured ``extras``."""
    dependencies: TestDependencies
    """What was found (configuration first), the constraints and the notes."""

    __test__ = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (``forkman test --explain --format json``)."""
        deps = self.dependencies
        return {
            "name": self.name,
            "path": self.path,
            "discover": self.discover,
            "configured": {"requirements": list(self.requirements), "extras": list(self.extras)},
            "found": [{"requirement": f.requirement, "source": f.source} for f in deps.found],
            "constraints": [
                {"requirement": f.requirement, "source": f.source} for f in deps.constraints
            ],
            "notes": list(deps.notes),
        }


def fork_test_dependencies(project: Project, name: str) -> ForkTestDependencies:
    """The test dependencies of fork `name` of `project` (read statically; runs nothing)."""
    entry = project.load_lock().require(name)
    tree = project.root / entry.path
    if not tree.is_dir():
        raise NotFound(
            f"the vendored tree of {entry.name} is missing: {tree}", hint="run `forkman verify`"
        )
    cfg = load_test_config(project.config, entry.name)
    deps = resolve(
        tree,
        entry.name,
        requirements=cfg.requirements,
        extras=cfg.extras,
        command=cfg.command,
        discover=cfg.discover,
    )
    return ForkTestDependencies(
        entry.name, entry.path, cfg.discover, cfg.requirements, cfg.extras, deps
    )
