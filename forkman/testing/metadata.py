"""The fork's own metadata, read statically: its name(s), dependencies, extras and
``tests_require`` from ``pyproject.toml``, ``setup.cfg`` and ``setup.py``."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from .treeread import Dynamic, TreeReader, as_lines, safe, static_value, strip_comment


class MetadataReader(TreeReader):
    """A tree's reader that knows the fork's own metadata (read when made)."""

    def __init__(self, tree: Path, name: str) -> None:
        super().__init__(tree)
        self.name = canonicalize_name(name)
        self.self_names = {self.name}
        self.pyproject: dict[str, Any] = {}
        self.extras: dict[str, tuple[str, list[str]]] = {}
        """Extra -> (where it is declared, its requirements)."""
        self.dependencies: tuple[str, list[str]] | None = None
        """(Where, the requirements) of the fork's own dependencies."""
        self.tests_require: list[tuple[str, list[str]]] = []
        self._read_metadata()

    def _read_metadata(self) -> None:
        path = self.tree / "pyproject.toml"
        if path.exists() or path.is_symlink():
            text = self.read(path)
            if text is not None:
                try:
                    self.pyproject = tomllib.loads(text)
                except tomllib.TOMLDecodeError as exc:
                    self.note(f"pyproject.toml: not valid TOML ({safe(str(exc), 80)})")
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
                            self.note(f"pyproject.toml: extra {safe(str(key), 40)!r} is not a list")
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
                self.note(f"setup.cfg [{section}] {key}: {safe(value, 60)!r} is not read")
                return None
            return [ln for ln in (strip_comment(x) for x in value.splitlines()) if ln]

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

    def _read_setup_py(self, static_deps: bool, static_extras: bool) -> None:
        module = self.python_module("setup.py")
        if module is None:
            return
        names = _top_level_literals(module)
        call = _setup_call(module)
        if call is None:
            self.note("setup.py: no setup() call found")
            return
        kwargs = self._setup_kwargs(call, names)

        def value(key: str) -> Any:
            try:
                return static_value(kwargs[key], names)
            except Dynamic:
                self.note(f"setup.py: {key} is computed, not a literal; not read")
                return None

        if "name" in kwargs:
            nm = value("name")
            if isinstance(nm, str):
                self.self_names.add(canonicalize_name(nm))
        if not static_deps and "install_requires" in kwargs:
            reqs = as_lines(value("install_requires"))
            if reqs is not None:
                self.dependencies = ("setup.py install_requires", reqs)
        if "tests_require" in kwargs:
            reqs = as_lines(value("tests_require"))
            if reqs is not None:
                self.tests_require.append(("setup.py tests_require", reqs))
        if not static_extras and "extras_require" in kwargs:
            node = kwargs["extras_require"]
            if isinstance(node, ast.Name) and isinstance(names.get(node.id), ast.Dict):
                node = names[node.id]
            if isinstance(node, ast.Dict):  # each extra on its own: one computed spoils no other
                extras = self._literal_extras(node, names)
            else:
                computed = value("extras_require")
                extras = computed if isinstance(computed, dict) else {}
            self._add_setup_extras(extras)

    def _setup_kwargs(self, call: ast.Call, names: Mapping[str, ast.expr]) -> dict[str, ast.expr]:
        """The keyword arguments of ``setup()``, ``**NAME`` of a literal dict spread out."""
        kwargs: dict[str, ast.expr] = {}
        for kw in call.keywords:
            if kw.arg is not None:
                kwargs[kw.arg] = kw.value
                continue
            d = names.get(kw.value.id) if isinstance(kw.value, ast.Name) else None
            if isinstance(d, ast.Dict):
                for k, v in zip(d.keys, d.values, strict=True):
                    if isinstance(k, ast.Constant) and isinstance(k.value, str):
                        kwargs.setdefault(k.value, v)
            else:
                self.note("setup.py: setup(**...) with a computed mapping is not read")
        return kwargs

    def _literal_extras(self, node: ast.Dict, names: Mapping[str, ast.expr]) -> dict[Any, Any]:
        extras: dict[Any, Any] = {}
        for k, v in zip(node.keys, node.values, strict=True):
            key: Any = None
            try:
                key = static_value(k, names) if k is not None else None
                if isinstance(key, str):
                    extras[key] = static_value(v, names)
            except Dynamic:
                shown = safe(key, 40) if isinstance(key, str) else "an extra"
                self.note(f"setup.py: extras_require {shown!r} is computed; not read")
        return extras

    def _add_setup_extras(self, extras: Mapping[Any, Any]) -> None:
        for key, raw in extras.items():
            reqs = as_lines(raw)
            if isinstance(key, str) and reqs is not None:
                # setuptools allows "extra:marker" keys
                extra, _, marker = key.partition(":")
                if marker:
                    reqs = [f"{r.split(';')[0]}; {marker}" for r in reqs]
                self.extras.setdefault(canonicalize_name(extra), ("setup.py", []))[1].extend(reqs)


def _top_level_literals(module: ast.Module) -> dict[str, ast.expr]:
    """``NAME = value`` (and ``NAME: T = value``) statements at the top of `module`."""
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
    return names


def _setup_call(module: ast.Module) -> ast.Call | None:
    """The first ``setup(...)`` (or ``setuptools.setup(...)``) call in `module`."""
    return next(
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
