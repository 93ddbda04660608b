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
import configparser
import os
import re
import shlex
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..core.errors import ConfigError

TEST_NAMES = ("test", "tests", "testing")
"""Names of dependency groups and extras that hold test dependencies."""
DEV_NAMES = ("dev",)
"""Dependency group names used when no test group exists."""

MAX_FILE_BYTES = 1 << 20
"""Files larger than this are not read."""
MAX_FILES = 64
"""At most this many requirement files are read (includes count)."""
_MAX_NAME_DEPTH = 20

_WORDS = "test|tests|testing|dev|develop|development"
_ROOT_FILE = re.compile(
    rf"^(?:(?P<a>{_WORDS})[-_.]?requirements?|requirements?[-_.](?P<b>{_WORDS}))"
    r"\.(?:txt|in|pip)$",
    re.IGNORECASE,
)
_TESTS_DIR_FILE = re.compile(
    rf"^(?:requirements?|requires)(?:[-_.](?P<a>{_WORDS}))?\.(?:txt|in|pip)$", re.IGNORECASE
)
_REQS_DIR_FILE = re.compile(
    rf"^(?:(?P<a>{_WORDS})(?:[-_.]requirements?)?|requirements?[-_.](?P<b>{_WORDS}))"
    r"\.(?:txt|in|pip)$",
    re.IGNORECASE,
)
_TESTS_DIRS = ("tests", "test", "testing")
_REQS_DIRS = ("requirements", "requirement", "reqs")

_CLEAN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~*+]*$")
"""What a returned requirement may look like: no spaces, quotes, options or markers."""
_SELF_PATH = re.compile(r"^(?:\.|\./|file:\.|file:\./)(?:\[(?P<extras>[^\]]*)\])?$")
_FACTOR = re.compile(r"^[A-Za-z0-9_{},.!\- ]+:(?:\s|$)")
_OPTION = re.compile(r"^(?P<opt>--[A-Za-z][\w-]*|-[A-Za-z])(?:\s*=\s*|\s*)(?P<arg>.*)$")
_INLINE_OPTION = re.compile(r"\s--?[A-Za-z]")

_OPTION_PLUGINS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^--(?:no-)?cov(?:-[\w-]+)?(?:=.*)?$"), "pytest-cov"),
    (
        re.compile(r"^(?:-n.*|--numprocesses(?:=.*)?|--maxprocesses(?:=.*)?|--dist(?:=.*)?)$"),
        "pytest-xdist",
    ),
    (re.compile(r"^--timeout(?:[-_][\w-]+)?(?:=.*)?$"), "pytest-timeout"),
    (re.compile(r"^--benchmark-"), "pytest-benchmark"),
    (re.compile(r"^--(?:reruns|only-rerun)"), "pytest-rerunfailures"),
    (re.compile(r"^--asyncio-mode"), "pytest-asyncio"),
    (re.compile(r"^--randomly-"), "pytest-randomly"),
    (re.compile(r"^--hypothesis-"), "hypothesis"),
    (re.compile(r"^--forked$"), "pytest-forked"),
    (re.compile(r"^--(?:disable-socket|allow-hosts|allow-unix-socket)"), "pytest-socket"),
    (re.compile(r"^--(?:ds|dc)="), "pytest-django"),
    (re.compile(r"^--mypy$"), "pytest-mypy"),
    (re.compile(r"^--mpl"), "pytest-mpl"),
)
"""pytest command-line options -> the distribution that provides them."""

_PLUGIN_MODULES = {
    "xdist": "pytest-xdist",
    "xdist.plugin": "pytest-xdist",
    "pytest_cov": "pytest-cov",
    "pytest_cov.plugin": "pytest-cov",
    "timeout": "pytest-timeout",
    "pytest_timeout": "pytest-timeout",
    "asyncio": "pytest-asyncio",
    "pytest_asyncio": "pytest-asyncio",
    "anyio": "anyio",
    "trio": "pytest-trio",
    "pytest_trio": "pytest-trio",
    "randomly": "pytest-randomly",
    "pytest_randomly": "pytest-randomly",
    "benchmark": "pytest-benchmark",
    "pytest_benchmark": "pytest-benchmark",
    "rerunfailures": "pytest-rerunfailures",
    "pytest_rerunfailures": "pytest-rerunfailures",
    "pytest_mock": "pytest-mock",
    "pytest_socket": "pytest-socket",
    "hypothesis": "hypothesis",
}
"""``-p MODULE`` -> the distribution that provides the plugin module."""

_BUILTIN_PLUGINS = frozenset(
    (
        "pytester",
        "doctest",
        "cacheprovider",
        "faulthandler",
        "junitxml",
        "logging",
        "monkeypatch",
        "python",
        "terminal",
        "warnings",
        "capture",
        "debugging",
        "skipping",
        "tmpdir",
        "unittest",
        "legacypath",
        "stepwise",
        "setuponly",
        "setupplan",
        "pastebin",
        "nose",
    )
)

_INI_PLUGINS = {
    "asyncio_mode": "pytest-asyncio",
    "asyncio_default_fixture_loop_scope": "pytest-asyncio",
    "asyncio_default_test_loop_scope": "pytest-asyncio",
    "timeout": "pytest-timeout",
    "timeout_method": "pytest-timeout",
    "timeout_func_only": "pytest-timeout",
    "env": "pytest-env",
    "mock_use_standalone_module": "pytest-mock",
    "django_settings_module": "pytest-django",
    "trio_mode": "pytest-trio",
    "qt_api": "pytest-qt",
}
"""pytest ini keys -> the distribution that reads them."""


@dataclass(frozen=True)
class Found:
    """One requirement of a test environment and where it was found."""

    requirement: str
    """A PEP 508 requirement with no marker, URL or option (``hypothesis``, ``pytest>=7``)."""
    source: str
    """Where it came from, e.g. ``tests/requirements.txt`` or ``extra [tests]``."""


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


class _Dynamic(Exception):
    """A setup.py value that is not a literal."""


def _safe(text: str, limit: int = 120) -> str:
    """`text` from the fork's files, fit to print: no control characters, bounded."""
    out = "".join(c if c.isprintable() else "?" for c in text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _strip_comment(line: str) -> str:
    return re.sub(r"(?:^|\s+)#.*$", "", line).strip()


def _logical_lines(text: str) -> list[str]:
    """pip's requirement-file lines: continuations joined, comments and blanks dropped."""
    out: list[str] = []
    buf = ""
    for raw in text.splitlines():
        if raw.endswith("\\") and not _strip_comment(raw).startswith("#"):
            buf += raw[:-1] + " "
            continue
        line = _strip_comment(buf + raw)
        buf = ""
        if line:
            out.append(line)
    if buf.strip():
        out.append(_strip_comment(buf))
    return [ln for ln in out if ln]


def _static(node: ast.AST, names: Mapping[str, ast.expr], depth: int = 0) -> Any:
    """The literal value of `node` (names resolved to top-level literal assignments)."""
    if depth > _MAX_NAME_DEPTH:
        raise _Dynamic("too deep")
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        return node.value
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [_static(e, names, depth + 1) for e in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[Any, Any] = {}
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:
                raise _Dynamic("** in a dict")
            out[_static(k, names, depth + 1)] = _static(v, names, depth + 1)
        return out
    if isinstance(node, ast.Name) and node.id in names:
        return _static(names[node.id], names, depth + 1)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _static(node.left, names, depth + 1), _static(node.right, names, depth + 1)
        if isinstance(left, list) and isinstance(right, list):
            return left + right
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        raise _Dynamic("+ of different types")
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
        and all(kw.arg is not None for kw in node.keywords)
    ):
        return {kw.arg: _static(kw.value, names, depth + 1) for kw in node.keywords}
    raise _Dynamic(type(node).__name__)


def _as_lines(value: Any) -> list[str] | None:
    """A setuptools list of requirements (a list of strings or one multi-line string)."""
    if isinstance(value, str):
        return [ln for ln in (_strip_comment(x) for x in value.splitlines()) if ln]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


class _Collector:
    """Reads one tree; accumulates requirements, constraints and notes in order."""

    def __init__(self, tree: Path, name: str) -> None:
        self.tree = tree.resolve()
        self.name = canonicalize_name(name)
        self.self_names = {self.name}
        self.found: list[Found] = []
        self.by_name: dict[str, Found] = {}
        self.constraints: list[Found] = []
        self.constraint_names: set[str] = set()
        self.notes: list[str] = []
        self.files_read: set[Path] = set()
        self.pyproject: dict[str, Any] = {}
        self.extras: dict[str, tuple[str, list[str]]] = {}
        self.dependencies: tuple[str, list[str]] | None = None
        self.tests_require: list[tuple[str, list[str]]] = []
        self._expanding: list[str] = []
        self._expanded: set[str] = set()
        self._groups_done: set[str] = set()
        self._read_metadata()

    # ---- reading files ------------------------------------------------------

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
            self.note(f"{_safe(str(path))}: cannot be resolved; not read")
            return None
        if not real.is_relative_to(self.tree):
            self.note(f"{_safe(self.rel(path))}: lies outside the fork's tree; not read")
            return None
        if not real.exists():
            self.note(f"{_safe(self.rel(path))}: no such file in the fork's tree")
            return None
        if not real.is_file():
            self.note(f"{_safe(self.rel(path))}: not a regular file; not read")
            return None
        try:
            size = real.stat().st_size
            if size > MAX_FILE_BYTES:
                self.note(f"{_safe(self.rel(path))}: larger than {MAX_FILE_BYTES} bytes; not read")
                return None
            return real.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            self.note(f"{_safe(self.rel(path))}: cannot be read ({_safe(str(exc), 60)})")
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
            self.note(f"{rel}: not a valid ini file ({_safe(str(exc).splitlines()[0], 80)})")
            return None
        return parser

    # ---- adding ---------------------------------------------------------------

    def _parse(self, raw: str, source: str, *, allow_url: bool = False) -> Requirement | None:
        """`raw` as a requirement that holds here, or None with a note saying why not."""
        text = raw.strip()
        shown = repr(_safe(text, 80))
        if any(c in text for c in "$\\\n\r\0") or not text.isprintable():
            self.note(f"{source}: {shown} is refused (variables, escapes or control characters)")
            return None
        try:
            req = Requirement(text)
        except InvalidRequirement:
            self.note(f"{source}: {shown} is not a PEP 508 requirement; not used")
            return None
        if req.url and not allow_url:
            self.note(
                f"{source}: {shown} is a direct URL reference; not used "
                "(test requirements come from the configured index)"
            )
            return None
        if req.marker is not None:
            try:
                holds = req.marker.evaluate()
            except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName) as exc:
                self.note(f"{source}: {shown}: its marker cannot be evaluated ({exc}); not used")
                return None
            if not holds:
                self.note(f"{source}: {shown}: its marker does not hold here; not used")
                return None
            req.marker = None
        return req

    def add(self, raw: str, source: str, *, allow_url: bool = False) -> None:
        req = self._parse(raw, source, allow_url=allow_url)
        if req is None:
            return
        canon = canonicalize_name(req.name)
        if canon in self.self_names:
            if req.extras:
                for extra in sorted(req.extras):
                    self.expand_extra(extra, f"{source} -> [{_safe(extra, 40)}]")
            else:
                self.note(f"{source}: {req.name} is the fork itself (installed from its tree)")
            return
        text = str(req)
        if not allow_url and not _CLEAN.match(text):
            self.note(f"{source}: {_safe(text, 80)!r} has unexpected characters; not used")
            return
        first = self.by_name.get(canon)
        if first is not None:
            # a bare name adds nothing to what came first; anything more is worth a note
            if first.requirement != text and (req.specifier or req.extras):
                self.note(
                    f"{source}: {_safe(text, 80)} not used: {first.requirement} "
                    f"({first.source}) comes first"
                )
            return
        found = Found(text, source)
        self.by_name[canon] = found
        self.found.append(found)

    def add_constraint(self, raw: str, source: str) -> None:
        req = self._parse(raw, source)
        if req is None:
            return
        canon = canonicalize_name(req.name)
        text = str(req)
        if canon in self.self_names or canon in self.constraint_names or not _CLEAN.match(text):
            return
        self.constraint_names.add(canon)
        self.constraints.append(Found(text, source))

    def expand_extra(self, extra: str, source: str) -> bool:
        """Add the contents of the fork's extra `extra`; False when it has none such."""
        key = canonicalize_name(extra)
        if key in self._expanding:
            self.note(f"{source}: the extra [{_safe(key, 40)}] includes itself; cycle cut")
            return True
        entry = self.extras.get(key)
        if entry is None:
            self.note(f"{source}: the fork declares no extra [{_safe(key, 40)}]")
            return False
        if key in self._expanded:  # its requirements are in already
            return True
        self._expanding.append(key)
        try:
            for raw in entry[1]:
                self.add(raw, source)
        finally:
            self._expanding.pop()
        self._expanded.add(key)
        return True

    # ---- the fork's own metadata -----------------------------------------------

    def _read_metadata(self) -> None:
        path = self.tree / "pyproject.toml"
        if path.exists() or path.is_symlink():
            text = self.read(path)
            if text is not None:
                try:
                    self.pyproject = tomllib.loads(text)
                except tomllib.TOMLDecodeError as exc:
                    self.note(f"pyproject.toml: not valid TOML ({_safe(str(exc), 80)})")
        project = self.pyproject.get("project")
        project = project if isinstance(project, dict) else None
        dynamic: list[Any] = []
        if project is not None:
            if isinstance(project.get("name"), str):
                self.self_names.add(canonicalize_name(project["name"]))
            dyn = project.get("dynamic", [])
            dynamic = dyn if isinstance(dyn, list) else []
            if "dependencies" not in dynamic:
                deps = project.get("dependencies", [])
                if isinstance(deps, list) and all(isinstance(d, str) for d in deps):
                    self.dependencies = ("pyproject.toml [project] dependencies", list(deps))
                else:
                    self.note("pyproject.toml: [project] dependencies is not a list of strings")
            if "optional-dependencies" not in dynamic:
                optional = project.get("optional-dependencies", {})
                if isinstance(optional, dict):
                    for key, reqs in optional.items():
                        if isinstance(reqs, list) and all(isinstance(r, str) for r in reqs):
                            self.extras.setdefault(
                                canonicalize_name(str(key)), ("pyproject.toml", list(reqs))
                            )
                        else:
                            self.note(
                                f"pyproject.toml: extra {_safe(str(key), 40)!r} is not a list"
                            )
        static_deps = self.dependencies is not None
        static_extras = project is not None and "optional-dependencies" not in dynamic
        self._read_setup_cfg(static_deps, static_extras)
        self._read_setup_py(static_deps, static_extras)
        if project is not None and "dependencies" in dynamic and self.dependencies is None:
            self.note(
                "pyproject.toml: the fork's dependencies are dynamic (computed by its build); "
                "only static declarations are read"
            )

    def _read_setup_cfg(self, static_deps: bool, static_extras: bool) -> None:
        cfg = self.ini("setup.cfg")
        if cfg is None:
            return
        if cfg.has_option("metadata", "name"):
            self.self_names.add(canonicalize_name(cfg.get("metadata", "name")))

        def lines(section: str, key: str) -> list[str] | None:
            value = cfg.get(section, key).strip()
            if value.startswith(("file:", "attr:")):
                self.note(f"setup.cfg [{section}] {key}: {_safe(value, 60)!r} is not read")
                return None
            return [ln for ln in (_strip_comment(x) for x in value.splitlines()) if ln]

        if not static_deps and cfg.has_option("options", "install_requires"):
            reqs = lines("options", "install_requires")
            if reqs is not None:
                self.dependencies = ("setup.cfg [options] install_requires", reqs)
        if cfg.has_option("options", "tests_require"):
            reqs = lines("options", "tests_require")
            if reqs is not None:
                self.tests_require.append(("setup.cfg [options] tests_require", reqs))
        if not static_extras and cfg.has_section("options.extras_require"):
            for key in cfg.options("options.extras_require"):
                reqs = lines("options.extras_require", key)
                if reqs is not None:
                    self.extras.setdefault(canonicalize_name(key), ("setup.cfg", reqs))

    def _python_module(self, filename: str) -> ast.Module | None:
        """The syntax tree of `filename` at the tree's root, parsed, never run."""
        path = self.tree / filename
        if not path.exists() and not path.is_symlink():
            return None
        text = self.read(path)
        if text is None:
            return None
        try:
            return ast.parse(text, filename=filename)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            self.note(f"{filename}: cannot be parsed; not read")
            return None

    def _read_setup_py(self, static_deps: bool, static_extras: bool) -> None:
        module = self._python_module("setup.py")
        if module is None:
            return
        names: dict[str, ast.expr] = {}
        for stmt in module.body:
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
            ):
                names[stmt.targets[0].id] = stmt.value
            elif (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and stmt.value is not None
            ):
                names[stmt.target.id] = stmt.value
        call = next(
            (
                node
                for node in ast.walk(module)
                if isinstance(node, ast.Call)
                and (
                    (isinstance(node.func, ast.Name) and node.func.id == "setup")
                    or (isinstance(node.func, ast.Attribute) and node.func.attr == "setup")
                )
            ),
            None,
        )
        if call is None:
            self.note("setup.py: no setup() call found")
            return
        kwargs: dict[str, ast.expr] = {}
        for kw in call.keywords:
            if kw.arg is not None:
                kwargs[kw.arg] = kw.value
                continue
            if isinstance(kw.value, ast.Name) and isinstance(names.get(kw.value.id), ast.Dict):
                d = names[kw.value.id]
                assert isinstance(d, ast.Dict)
                for k, v in zip(d.keys, d.values, strict=True):
                    if isinstance(k, ast.Constant) and isinstance(k.value, str):
                        kwargs.setdefault(k.value, v)
            else:
                self.note("setup.py: setup(**...) with a computed mapping is not read")

        def value(key: str) -> Any:
            try:
                return _static(kwargs[key], names)
            except _Dynamic:
                self.note(f"setup.py: {key} is computed, not a literal; not read")
                return None

        if "name" in kwargs:
            nm = value("name")
            if isinstance(nm, str):
                self.self_names.add(canonicalize_name(nm))
        if not static_deps and "install_requires" in kwargs:
            reqs = _as_lines(value("install_requires"))
            if reqs is not None:
                self.dependencies = ("setup.py install_requires", reqs)
        if "tests_require" in kwargs:
            reqs = _as_lines(value("tests_require"))
            if reqs is not None:
                self.tests_require.append(("setup.py tests_require", reqs))
        if not static_extras and "extras_require" in kwargs:
            node = kwargs["extras_require"]
            if isinstance(node, ast.Name) and isinstance(names.get(node.id), ast.Dict):
                node = names[node.id]
            extras: dict[Any, Any] = {}
            if isinstance(node, ast.Dict):  # each extra on its own: one computed spoils no other
                for k, v in zip(node.keys, node.values, strict=True):
                    try:
                        key = _static(k, names) if k is not None else None
                        if isinstance(key, str):
                            extras[key] = _static(v, names)
                    except _Dynamic:
                        shown = _safe(key, 40) if isinstance(key, str) else "an extra"
                        self.note(f"setup.py: extras_require {shown!r} is computed; not read")
            else:
                computed = value("extras_require")
                extras = computed if isinstance(computed, dict) else {}
            if extras:
                for key, raw in extras.items():
                    reqs = _as_lines(raw)
                    if isinstance(key, str) and reqs is not None:
                        # setuptools allows "extra:marker" keys
                        extra, _, marker = key.partition(":")
                        if marker:
                            reqs = [f"{r.split(';')[0]}; {marker}" for r in reqs]
                        self.extras.setdefault(canonicalize_name(extra), ("setup.py", []))[
                            1
                        ].extend(reqs)

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
            self.note(f"{source}: dependency group {_safe(group, 40)!r} {what}")
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
                self._group(groups, inc, f"{source} -> {_safe(inc, 40)}", (*stack, group))
            else:
                self.note(f"{source}: an entry that is neither a requirement nor an include-group")
        self._groups_done.add(group)

    def test_extras(self) -> None:
        for extra in TEST_NAMES:
            if extra in self.extras:
                origin = self.extras[extra][0]
                label = f"extra [{extra}]" + ("" if origin == "pyproject.toml" else f" ({origin})")
                self.expand_extra(extra, label)

    def requirement_files(self) -> None:
        test_files: list[Path] = []
        dev_files: list[Path] = []

        def listing(folder: Path) -> list[Path]:
            if not folder.is_dir() or folder.is_symlink():
                return []
            try:
                return sorted(p for p in folder.iterdir() if p.is_file())
            except OSError:
                return []

        for d in _TESTS_DIRS:
            for p in listing(self.tree / d):
                m = _TESTS_DIR_FILE.match(p.name)
                if m:
                    (dev_files if (m["a"] or "test").startswith("dev") else test_files).append(p)
        for d in _REQS_DIRS:
            for p in listing(self.tree / d):
                m = _REQS_DIR_FILE.match(p.name)
                if m:
                    word = (m["a"] or m["b"]).lower()
                    (test_files if word.startswith("test") else dev_files).append(p)
        for p in listing(self.tree):
            m = _ROOT_FILE.match(p.name)
            if m:
                word = (m["a"] or m["b"]).lower()
                (test_files if word.startswith("test") else dev_files).append(p)
        if test_files and dev_files:
            shown = ", ".join(self.rel(p) for p in dev_files)
            self.note(f"{shown}: not used, test requirement files are declared")
        for p in test_files or dev_files:
            if p.suffix == ".in" and p.with_suffix(".txt") in test_files + dev_files:
                self.note(f"{self.rel(p)}: not used, its compiled {p.with_suffix('.txt').name} is")
                continue
            self.requirement_file(p, "", ())

    def requirement_file(
        self, path: Path, origin: str, stack: tuple[Path, ...], *, constraints: bool = False
    ) -> None:
        label = self.rel(path) if not origin else f"{origin} -> {_safe(self.rel(path), 80)}"
        try:
            real = path.resolve()
        except (OSError, RuntimeError):  # a symbolic link loop
            self.note(f"{label}: cannot be resolved; not read")
            return
        if real in stack:
            self.note(f"{label}: includes itself; cycle cut")
            return
        if real in self.files_read:  # its requirements are in already
            return
        if len(self.files_read) >= MAX_FILES:
            self.note(f"{label}: more than {MAX_FILES} requirement files; not read")
            return
        text = self.read(path)
        if text is None:
            return
        self.files_read.add(real)
        for line in _logical_lines(text):
            self.requirement_line(line, path.parent, label, (*stack, real), constraints=constraints)

    def requirement_line(
        self,
        line: str,
        base: Path,
        label: str,
        stack: tuple[Path, ...],
        *,
        constraints: bool = False,
    ) -> None:
        """One line of a requirement file (or a tox deps / nox install argument)."""
        if line.startswith("-"):
            m = _OPTION.match(line)
            opt, arg = (m["opt"], m["arg"].strip()) if m else (line.split()[0], "")
            if opt in ("-r", "--requirement", "-c", "--constraint"):
                self.include(
                    arg,
                    base,
                    label,
                    stack,
                    constraints=constraints or opt in ("-c", "--constraint"),
                )
            elif opt in ("-e", "--editable"):
                if not self.self_path(arg, label):
                    self.note(f"{label}: editable {_safe(arg, 60)!r} not used")
            else:
                self.note(
                    f"{label}: option {_safe(opt, 40)} ignored (options never reach the installer)"
                )
            return
        if self.self_path(line, label):
            return
        head = line
        inline = _INLINE_OPTION.search(line)
        if inline is not None:
            head = line[: inline.start()]
            self.note(f"{label}: options after {_safe(head, 60)!r} ignored")
        if constraints:
            self.add_constraint(head, label)
        else:
            self.add(head, label)

    def self_path(self, arg: str, label: str) -> bool:
        """`arg` is the fork's own tree (``.``, ``.[tests]``): expand its extras."""
        m = _SELF_PATH.match(arg.strip())
        if m is None:
            return False
        extras = [e.strip() for e in (m["extras"] or "").split(",") if e.strip()]
        for extra in extras:
            self.expand_extra(extra, f"{label} -> [{_safe(extra, 40)}]")
        if not extras:
            self.note(f"{label}: {_safe(arg, 40)!r} is the fork itself (installed from its tree)")
        return True

    def include(
        self,
        arg: str,
        base: Path,
        label: str,
        stack: tuple[Path, ...],
        *,
        constraints: bool,
    ) -> None:
        arg = arg.strip().strip("\"'")
        kind = "constraints" if constraints else "requirements"
        if not arg:
            self.note(f"{label}: an include without a file name")
            return
        if "://" in arg or arg.startswith(("git+", "hg+", "svn+", "bzr+")):
            self.note(f"{label}: {kind} from {_safe(arg, 60)!r} refused (only files in the tree)")
            return
        if "$" in arg or "{" in arg or "~" in arg:
            self.note(f"{label}: {kind} file {_safe(arg, 60)!r} refused (substitutions)")
            return
        target = base / arg
        try:
            outside = not target.resolve().is_relative_to(self.tree)
        except (OSError, RuntimeError):  # a symbolic link loop
            self.note(f"{label}: {kind} file {_safe(arg, 60)!r} cannot be resolved; refused")
            return
        if outside:
            self.note(
                f"{label}: {kind} file {_safe(arg, 60)!r} lies outside the fork's tree; refused"
            )
            return
        self.requirement_file(target, label, stack, constraints=constraints)

    def tox(self) -> None:
        cfg = self.ini("tox.ini")
        if cfg is None or not cfg.has_section("testenv"):
            return
        label = "tox.ini [testenv] deps"
        for raw in cfg.get("testenv", "deps", fallback="").splitlines():
            line = _strip_comment(raw)
            if not line:
                continue
            if _FACTOR.match(line):
                self.note(f"{label}: factor-conditional {_safe(line, 60)!r} not used")
                continue
            line = line.replace("{toxinidir}", ".").replace("{tox_root}", ".")
            if "{" in line:
                self.note(f"{label}: {_safe(line, 60)!r} has a substitution; not used")
                continue
            self.requirement_line(line, self.tree, label, ())
        extras = cfg.get("testenv", "extras", fallback="")
        for extra in re.split(r"[,\s]+", extras):
            if extra and not _FACTOR.match(extra + " ") and "{" not in extra:
                self.expand_extra(extra, f"tox.ini [testenv] extras -> [{_safe(extra, 40)}]")

    def nox(self) -> None:
        module = self._python_module("noxfile.py")
        if module is None:
            return
        for func in module.body:
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            session = _nox_session_name(func)
            if session is None or "test" not in session.lower():
                continue
            label = f"noxfile.py session {_safe(session, 40)}"
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
        for key, dist in _INI_PLUGINS.items():
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
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok == "-p" or (tok.startswith("-p") and not tok.startswith("--")):
                module = tokens[i + 1] if tok == "-p" and i + 1 < len(tokens) else tok[2:]
                i += 2 if tok == "-p" else 1
                module = module.strip()
                if module.startswith("no:") or module in _BUILTIN_PLUGINS or not module:
                    continue
                dist = _PLUGIN_MODULES.get(module)
                if dist is None:
                    self.note(f"{where}: plugin -p {_safe(module, 40)} is not known")
                else:
                    self.add(dist, f"{where} -p {module} -> {dist}")
                continue
            i += 1
            for pattern, dist in _OPTION_PLUGINS:
                if pattern.match(tok):
                    self.add(dist, f"{where} {_safe(tok, 40)} -> {dist}")
                    break

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
