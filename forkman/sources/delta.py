"""What an upstream release changed, summarized for review before a sync takes it.

:func:`summarize_delta` compares two pristine trees and reports files
changed, added and removed, dependencies added and removed (``pyproject.toml``,
``setup.cfg``, ``setup.py``, ``requirements*.txt``) and changes to code that
runs at build, install or start-up time (``setup.py``, the build backend,
``.pth`` files, entry points, ``sitecustomize``). Other subsystems (risk
review) extend the summary with their own findings.
"""

from __future__ import annotations

import configparser
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..store.treehash import scan_tree
from .dependencies import DEPENDENCY_FILES, is_dependency_file, read_tree

_HOOK_FILES = {
    "setup.py": "setup.py runs at build and install time",
    "hatch_build.py": "hatch build hook",
    "sitecustomize.py": "sitecustomize runs at interpreter start-up",
    "usercustomize.py": "usercustomize runs at interpreter start-up",
    "entry_points.txt": "entry points",
}


@dataclass(frozen=True)
class DeltaSummary:
    """What changed between two upstream trees."""

    added: tuple[str, ...]
    """Files only in the new tree."""
    removed: tuple[str, ...]
    """Files only in the old tree."""
    changed: tuple[str, ...]
    """Files in both whose content, mode or link target changed."""
    new_dependencies: tuple[str, ...]
    """Requirements declared by the new tree and not by the old one."""
    removed_dependencies: tuple[str, ...]
    """Requirements the old tree declared and the new one does not."""
    build_changes: tuple[str, ...]
    """Changes to code or configuration that runs at build, install or start-up time."""

    @property
    def empty(self) -> bool:
        """Whether nothing changed."""
        return not (self.added or self.removed or self.changed)

    def lines(self, limit: int = 20) -> list[str]:
        """The summary for humans."""
        out = [f"{len(self.changed)} changed, {len(self.added)} added, {len(self.removed)} removed"]
        for label, paths in (("added", self.added), ("removed", self.removed)):
            for path in paths[:limit]:
                out.append(f"  {label}: {path}")
            if len(paths) > limit:
                out.append(f"  ... and {len(paths) - limit} more {label}")
        for dep in self.new_dependencies:
            out.append(f"  new dependency: {dep}")
        for dep in self.removed_dependencies:
            out.append(f"  dropped dependency: {dep}")
        for change in self.build_changes:
            out.append(f"  build/install hook: {change}")
        return out

    def as_section(self) -> dict[str, Any]:
        """For the lock's ``sync`` table."""
        return {
            "files-added": len(self.added),
            "files-removed": len(self.removed),
            "files-changed": len(self.changed),
            "new-dependencies": list(self.new_dependencies),
            "removed-dependencies": list(self.removed_dependencies),
            "build-changes": list(self.build_changes),
        }


def _load_toml(path: Path) -> Mapping[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _setup_cfg(path: Path) -> configparser.ConfigParser | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None
    return parser


def declared_dependencies(root: Path) -> set[str]:
    """Every requirement the project at `root` declares, as labels (``x>=1 [build]``).

    Read by :func:`forkman.sources.dependencies.read_tree`, the one dependency reader.
    """
    return {d.label for d in read_tree(root)}


def _entry_points(root: Path) -> Any:
    project = _load_toml(root / "pyproject.toml").get("project", {})
    points: dict[str, Any] = {}
    if isinstance(project, Mapping):
        for key in ("scripts", "gui-scripts", "entry-points"):
            if key in project:
                points[key] = project[key]
    parser = _setup_cfg(root / "setup.cfg")
    if parser is not None and parser.has_section("options.entry_points"):
        points["setup.cfg"] = dict(parser.items("options.entry_points"))
    return points


def _build_system(root: Path) -> Any:
    build = _load_toml(root / "pyproject.toml").get("build-system", {})
    if not isinstance(build, Mapping):
        return (None, None)
    return (build.get("build-backend"), build.get("backend-path"))


METADATA_FILES = DEPENDENCY_FILES
"""Top-level files the dependency and hook analysis reads (plus ``requirements*.txt``)."""


def is_metadata(path: str) -> bool:
    """Whether the analysis reads `path` (relative to the project root)."""
    return "/" not in path and is_dependency_file(path)


def summarize_delta(old_tree: Path, new_tree: Path) -> DeltaSummary:
    """Summarize what changed from the pristine tree `old_tree` to `new_tree`."""
    old, _ = scan_tree(old_tree)
    new, _ = scan_tree(new_tree)
    changed = [
        p
        for p in set(old) & set(new)
        if (old[p].kind, old[p].digest) != (new[p].kind, new[p].digest)
    ]
    return summarize_changes(
        old_tree, new_tree, added=set(new) - set(old), removed=set(old) - set(new), changed=changed
    )


def summarize_changes(
    old_tree: Path,
    new_tree: Path,
    *,
    added: Iterable[str],
    removed: Iterable[str],
    changed: Iterable[str],
) -> DeltaSummary:
    """The summary from lists of paths; `old_tree` needs only the metadata files."""
    added = tuple(sorted(added))
    removed = tuple(sorted(removed))
    changed = tuple(sorted(changed))
    old_deps = declared_dependencies(old_tree)
    new_deps = declared_dependencies(new_tree)
    touched = set(added) | set(removed) | set(changed)
    hooks: list[str] = []
    for path in sorted(touched):
        base = path.rsplit("/", 1)[-1]
        what = "added" if path in added else "removed" if path in removed else "changed"
        if base in _HOOK_FILES and (base != "setup.py" or "/" not in path):
            hooks.append(f"{path} {what} ({_HOOK_FILES[base]})")
        elif base.endswith(".pth"):
            hooks.append(f"{path} {what} (.pth files run at interpreter start-up)")
    old_backend, new_backend = _build_system(old_tree), _build_system(new_tree)
    if old_backend != new_backend:
        hooks.append(f"build backend: {old_backend[0]} -> {new_backend[0]}")
    if _entry_points(old_tree) != _entry_points(new_tree):
        hooks.append("entry points or console scripts changed")
    return DeltaSummary(
        added=added,
        removed=removed,
        changed=changed,
        new_dependencies=tuple(sorted(new_deps - old_deps)),
        removed_dependencies=tuple(sorted(old_deps - new_deps)),
        build_changes=tuple(hooks),
    )
