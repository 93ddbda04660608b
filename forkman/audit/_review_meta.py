"""What the risk review finds in a project's metadata: build backend, entry points, dependencies.

Dependencies are read by :mod:`forkman.sources.dependencies`, the reader the
sync summary uses too. A dependency is new when no dependency list of the old
version of the same file had its name: moving a dependency between extras, or
changing its version range, is not new code.
"""

from __future__ import annotations

import configparser
import tomllib
from collections.abc import Mapping
from typing import Any

from ..sources.dependencies import is_dependency_file, read_file
from ._review_rules import Hit
from ._settings import Severity

_PLUGIN_GROUPS_HIGH = {
    "pytest11",
    "distutils.setup_keywords",
    "setuptools.finalize_distribution_options",
}


def metadata_hits(name: str, old: str | None, new: str) -> list[Hit]:
    """What changed in metadata file `name` (a base name) from `old` (None: added) to `new`."""
    hits: list[Hit] = []
    if name == "pyproject.toml":
        hits += _build_backend(old, new)
    elif name == "setup.py":
        hits.append(
            Hit("install-time-code", 0, "setup.py added" if old is None else "setup.py changed")
        )
    if is_dependency_file(name):
        hits += _new_dependencies(name, old, new)
    if old is not None and name == "pyproject.toml":
        for group, ep in sorted(_pyproject_entry_points(new) - _pyproject_entry_points(old)):
            severity = Severity.HIGH if group in _PLUGIN_GROUPS_HIGH else None
            hits.append(
                Hit("entry-point-added", _find_line(new, ep), f"entry point {group}:{ep}", severity)
            )
    elif old is not None and name == "setup.cfg":
        hits += [
            Hit("entry-point-added", _find_line(new, ep.split(":", 1)[1]), f"entry point {ep}")
            for ep in sorted(_setup_cfg_entry_points(new) - _setup_cfg_entry_points(old))
        ]
    return hits


def _find_line(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    return 0


def _toml(text: str | None) -> Mapping[str, Any]:
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def _new_dependencies(name: str, old: str | None, new: str) -> list[Hit]:
    """Names no dependency list of `old` had, per field of `new` (none when `old` is None)."""
    if old is None:
        return []
    known = {d.name for d in read_file(name, old)}
    by_field: dict[str, set[str]] = {}
    for dep in read_file(name, new):
        by_field.setdefault(dep.field, set()).add(dep.name)
    hits: list[Hit] = []
    for field, names in by_field.items():
        added = names - known
        known |= added
        hits += [
            Hit("new-dependency", _find_line(new, dep), f"{field} gains {dep}")
            for dep in sorted(added)
        ]
    return hits


def _build_backend(old: str | None, new: str) -> list[Hit]:
    hits: list[Hit] = []
    b_build = _toml(old).get("build-system", {})
    a_build = _toml(new).get("build-system", {})
    if not (isinstance(a_build, Mapping) and isinstance(b_build, Mapping)):
        return hits
    if old is not None and a_build.get("build-backend") != b_build.get("build-backend"):
        hits.append(
            Hit(
                "build-backend-changed",
                _find_line(new, "build-backend"),
                f"build backend {b_build.get('build-backend')!r} -> "
                f"{a_build.get('build-backend')!r}",
            )
        )
    if a_build.get("backend-path") and a_build.get("backend-path") != b_build.get("backend-path"):
        hits.append(
            Hit(
                "build-backend-changed",
                _find_line(new, "backend-path"),
                f"an in-tree build backend ({a_build.get('backend-path')!r})",
            )
        )
    return hits


def _pyproject_entry_points(text: str) -> set[tuple[str, str]]:
    doc = _toml(text)
    project = doc.get("project", {}) if isinstance(doc.get("project"), Mapping) else {}
    out: set[tuple[str, str]] = set()
    groups = project.get("entry-points", {})
    if isinstance(groups, Mapping):
        for group, eps in groups.items():
            if isinstance(eps, Mapping):
                out.update((group, str(k)) for k in eps)
    return out


def _setup_cfg_entry_points(text: str) -> set[str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return set()
    eps: set[str] = set()
    if parser.has_section("options.entry_points"):
        for group, value in parser.items("options.entry_points"):
            for line in value.splitlines():
                if "=" in line:
                    eps.add(f"{group}:{line.split('=', 1)[0].strip()}")
    return eps
