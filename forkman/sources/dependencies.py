"""The one reader of the dependencies a Python project declares.

Both the sync summary (:mod:`forkman.sources.delta`) and the risk review
(:mod:`forkman.audit.review`) read a release's dependencies here, with one set
of rules:

- **where**: ``pyproject.toml`` (``[project] dependencies``,
  ``optional-dependencies``, ``[build-system] requires``), ``setup.cfg``
  (``[options] install_requires``, ``setup_requires``,
  ``[options.extras_require]``), ``setup.py`` (the ``install_requires``,
  ``setup_requires`` and ``extras_require`` keywords, when they are literals)
  and ``requirements*.txt``;
- **lists in setup.cfg** follow setuptools: a value on several lines holds one
  requirement a line (so ``; python_version < "3.9"`` stays the requirement's
  marker), a value on one line is split at ``;``; lines starting with ``#``
  are comments;
- **requirements files** follow pip: ``#`` at the start of a line or after
  white space starts a comment, lines starting with ``-`` are options
  (``-r``, ``-e``, ``--hash``), not requirements;
- **identity**: a requirement is its text with white space collapsed, its
  name the PEP 503 name (the first word when the text is not a PEP 508
  requirement); the project's own name (``[project] name``, ``[metadata]
  name``, ``setup(name=...)``) is not a dependency, so ``pkg[extra]``
  self-references are left out.
"""

from __future__ import annotations

import ast
import configparser
import enum
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..core.pysource import parse_source

__all__ = [
    "DEPENDENCY_FILES",
    "Dependency",
    "DependencyKind",
    "is_dependency_file",
    "read_file",
    "read_tree",
]

DEPENDENCY_FILES = ("pyproject.toml", "setup.cfg", "setup.py")
"""Files that declare dependencies (plus ``requirements*.txt``)."""


class DependencyKind(enum.Enum):
    """When a dependency is needed."""

    RUN = "run"
    """Installed with the project."""
    BUILD = "build"
    """Installed to build it."""
    EXTRA = "extra"
    """Installed with one of its extras."""


@dataclass(frozen=True)
class Dependency:
    """One requirement a project declares."""

    name: str
    """The PEP 503 name."""
    requirement: str
    """The requirement as declared, white space collapsed."""
    kind: DependencyKind
    """Run, build or extra."""
    field: str
    """Where it is declared: ``dependencies``, ``optional-dependencies.EXTRA``,
    ``build-system.requires``, ``install_requires``, ``setup_requires``,
    ``extras_require.EXTRA`` or the requirements file's name."""
    extra: str = ""
    """The extra, for kind EXTRA."""

    @property
    def label(self) -> str:
        """The requirement with its kind: ``x>=1``, ``x [build]``, ``x [extra: test]``."""
        if self.kind is DependencyKind.BUILD:
            return f"{self.requirement} [build]"
        if self.kind is DependencyKind.EXTRA:
            return f"{self.requirement} [extra: {self.extra}]"
        return self.requirement


def is_dependency_file(name: str) -> bool:
    """Whether file name `name` (no folder) declares dependencies."""
    return name in DEPENDENCY_FILES or (name.startswith("requirements") and name.endswith(".txt"))


def read_file(name: str, text: str) -> tuple[Dependency, ...]:
    """The dependencies file `name` (a base name) declares in `text`, in declaration order."""
    declared, own = _read(name, text)
    return tuple(d for d in declared if d.name not in own)


def read_tree(root: Path) -> tuple[Dependency, ...]:
    """The dependencies the project at `root` declares (its top-level files)."""
    files = [root / name for name in DEPENDENCY_FILES]
    files += sorted(p for p in root.glob("requirements*.txt") if is_dependency_file(p.name))
    declared: list[Dependency] = []
    own: set[str] = set()
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        found, names = _read(path.name, text)
        declared += found
        own |= names
    return tuple(d for d in declared if d.name not in own)


def _read(name: str, text: str) -> tuple[list[Dependency], set[str]]:
    if name == "pyproject.toml":
        return _pyproject(text)
    if name == "setup.cfg":
        return _setup_cfg(text)
    if name == "setup.py":
        return _setup_py(text)
    if is_dependency_file(name):
        return list(_requirements_txt(name, text)), set()
    return [], set()


def _dependency(raw: str, kind: DependencyKind, field: str, extra: str = "") -> Dependency:
    requirement = " ".join(raw.split())
    name: str
    try:
        name = canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        name = requirement.split()[0] if requirement else requirement
    return Dependency(name, requirement, kind, field, extra)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        yield from (v for v in value if isinstance(v, str) and v.strip())


def _own(name: Any) -> set[str]:
    return {canonicalize_name(name)} if isinstance(name, str) and name.strip() else set()


def _pyproject(text: str) -> tuple[list[Dependency], set[str]]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return [], set()
    project = doc.get("project", {})
    project = project if isinstance(project, Mapping) else {}
    build = doc.get("build-system", {})
    build = build if isinstance(build, Mapping) else {}
    out = [
        _dependency(r, DependencyKind.RUN, "dependencies")
        for r in _strings(project.get("dependencies"))
    ]
    out += [
        _dependency(r, DependencyKind.BUILD, "build-system.requires")
        for r in _strings(build.get("requires"))
    ]
    optional = project.get("optional-dependencies", {})
    if isinstance(optional, Mapping):
        for extra, reqs in optional.items():
            field = f"optional-dependencies.{extra}"
            out += [_dependency(r, DependencyKind.EXTRA, field, extra) for r in _strings(reqs)]
    return out, _own(project.get("name"))


def _cfg_list(value: str) -> list[str]:
    """A setuptools ``list-semi`` value: one item a line, or ``;``-separated on one line."""
    chunks = value.splitlines() if "\n" in value else value.split(";")
    return [c.strip() for c in chunks if c.strip() and not c.strip().startswith("#")]


def _setup_cfg(text: str) -> tuple[list[Dependency], set[str]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return [], set()
    out: list[Dependency] = []
    for option, kind in (
        ("install_requires", DependencyKind.RUN),
        ("setup_requires", DependencyKind.BUILD),
    ):
        if parser.has_option("options", option):
            out += [_dependency(r, kind, option) for r in _cfg_list(parser.get("options", option))]
    if parser.has_section("options.extras_require"):
        for extra, value in parser.items("options.extras_require"):
            field = f"extras_require.{extra}"
            out += [_dependency(r, DependencyKind.EXTRA, field, extra) for r in _cfg_list(value)]
    own = parser.get("metadata", "name") if parser.has_option("metadata", "name") else None
    return out, _own(own)


def _literal_strings(node: ast.AST) -> list[str]:
    if not isinstance(node, ast.List | ast.Tuple):
        return []
    return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]


_SETUP_PY_KINDS = {"install_requires": DependencyKind.RUN, "setup_requires": DependencyKind.BUILD}


def _setup_py(text: str) -> tuple[list[Dependency], set[str]]:
    try:
        tree = parse_source(text)
    except SyntaxError:
        return [], set()
    out: list[Dependency] = []
    own: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.keyword):
            continue
        if node.arg in _SETUP_PY_KINDS:
            kind = _SETUP_PY_KINDS[node.arg]
            out += [_dependency(r, kind, node.arg) for r in _literal_strings(node.value)]
        elif node.arg == "extras_require" and isinstance(node.value, ast.Dict):
            out += _setup_py_extras(node.value)
        elif node.arg == "name" and isinstance(node.value, ast.Constant):
            own |= _own(node.value.value)
    return out, own


def _setup_py_extras(node: ast.Dict) -> list[Dependency]:
    out: list[Dependency] = []
    for key, value in zip(node.keys, node.values, strict=True):
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            field = f"extras_require.{key.value}"
            out += [
                _dependency(r, DependencyKind.EXTRA, field, key.value)
                for r in _literal_strings(value)
            ]
    return out


_COMMENT = re.compile(r"(^|\s+)#.*$")


def _requirements_txt(name: str, text: str) -> Iterable[Dependency]:
    for line in text.splitlines():
        line = _COMMENT.sub("", line).strip()
        if line and not line.startswith("-"):
            yield _dependency(line, DependencyKind.RUN, name)
