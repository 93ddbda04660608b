"""The project layout: install forks from the vendor directory instead of the index.

Two pieces of wiring, both kept in step by :func:`wire` and :func:`unwire`:

* ``[tool.uv.sources] NAME = { path = "vendor/NAME", editable = false }`` in
  the consumer's pyproject.toml (edited with tomlkit, formatting kept), which
  ``uv sync`` / ``uv lock`` honour;
* ``forkman-requirements.txt`` beside it, one ``./vendor/NAME  # fork: NAME``
  line per fork: a local-path requirement, which every pip version accepts
  (``NAME @ file:./vendor/NAME`` is refused by pip before 24, and paths are
  not allowed in constraints files). The paths are relative to the current
  directory, so run pip from the project root::

      pip install -r forkman-requirements.txt -e .   # the consumer, with its forks
      pip install -r forkman-requirements.txt        # just the forks
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from packaging.utils import canonicalize_name
from tomlkit.items import Null, Table, Whitespace

from .._config import render_pyproject_edit, require_table
from .._errors import BadInput
from .._fsutil import atomic_write_bytes, atomic_write_text
from .._project import Project

REQUIREMENTS_FILE = "forkman-requirements.txt"
_HEADER = (
    "# Written by forkman: the project's forks, installed from the vendor directory.\n"
    "# Use from the project root: pip install -r forkman-requirements.txt -e .\n"
)
_LINE = re.compile(r"^(?P<path>\./\S+)  # fork: (?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)$")


def requirement_line(name: str, path: str) -> str:
    """The requirements line that installs fork `name` from `path`."""
    return f"./{path}  # fork: {name}"


def _read_lines(file: Path) -> dict[str, str]:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    lines: dict[str, str] = {}
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        m = _LINE.match(raw.strip())
        if m is None:
            raise BadInput(
                f"{file.name} has a line forkman did not write: {raw!r}",
                hint=f"{file.name} is managed by forkman; put your own requirements elsewhere",
            )
        lines[str(canonicalize_name(m["name"]))] = raw.strip()
    return lines


def _sources(doc: tomlkit.TOMLDocument, *, create: bool) -> Any:
    tool = doc.get("tool")
    if tool is None:
        if not create:
            return None
        tool = tomlkit.table(is_super_table=True)
        doc["tool"] = tool
    uv = tool.get("uv")
    if uv is None:
        if not create:
            return None
        uv = tomlkit.table(is_super_table=True)
        tool["uv"] = uv
    sources = uv.get("sources")
    if sources is None:
        if not create:
            return None
        sources = tomlkit.table()
        uv["sources"] = sources
    require_table(sources, "[tool.uv.sources]")
    return sources


def _find_key(sources: Any, name: str) -> str | None:
    for key in sources:
        if canonicalize_name(key) == canonicalize_name(name):
            return str(key)
    return None


def _ours(value: object, path: str) -> bool:
    return isinstance(value, dict) and value.get("path") == path


@dataclass(frozen=True)
class WiringEdit:
    """The file contents that wire or unwire a fork (for the core's transaction to write)."""

    pyproject_text: str
    """The new pyproject.toml."""
    requirements_text: str | None
    """The new forkman-requirements.txt; None: the file is to be removed."""
    changed: bool
    """Whether anything differs from the files on disk."""


def _requirements_text(lines: dict[str, str]) -> str | None:
    if not lines:
        return None
    return _HEADER + "".join(lines[k] + "\n" for k in sorted(lines))


def _edit(project: Project, pyproject_text: str, lines: dict[str, str]) -> WiringEdit:
    req_file = project.root / REQUIREMENTS_FILE
    old_req = req_file.read_text(encoding="utf-8") if req_file.exists() else None
    new_req = _requirements_text(lines)
    changed = pyproject_text != project.pyproject.read_text(encoding="utf-8") or new_req != old_req
    return WiringEdit(pyproject_text, new_req, changed)


def plan_wire(project: Project, name: str, path: str) -> WiringEdit:
    """The edits that make the consumer install fork `name` from `path` (project-relative).

    Refuses when ``[tool.uv.sources]`` already names another source for the
    package, or when forkman-requirements.txt has lines forkman did not write.
    """
    if Path(path).is_absolute() or ".." in Path(path).parts:
        raise BadInput(f"fork path must be inside the project, not {path!r}")
    if any(c.isspace() for c in path) or "#" in path:
        raise BadInput(f"fork path {path!r} cannot be written to a requirements file")
    path = Path(path).as_posix()
    lines = _read_lines(project.root / REQUIREMENTS_FILE)
    lines[str(canonicalize_name(name))] = requirement_line(name, path)

    def change(doc: tomlkit.TOMLDocument) -> None:
        existing = _sources(doc, create=False)
        key = _find_key(existing, name) if existing is not None else None
        if existing is not None and key is not None:
            if _ours(existing[key], path):
                return
            raise BadInput(
                f"[tool.uv.sources] already has a source for {name}: {existing[key]}",
                hint=f"remove [tool.uv.sources] {key} to use the fork in {path}",
            )
        sources = _sources(doc, create=True)
        assert sources is not None
        entry = tomlkit.inline_table()
        entry.update({"path": path, "editable": False})
        sources[name] = entry

    return _edit(project, render_pyproject_edit(project.pyproject, change), lines)


def plan_unwire(project: Project, name: str) -> WiringEdit:
    """The edits that remove fork `name`'s wiring (``changed`` is False when there was none).

    A ``[tool.uv.sources]`` entry forkman did not write is left alone.
    """
    lines = _read_lines(project.root / REQUIREMENTS_FILE)
    removed_line = lines.pop(str(canonicalize_name(name)), None)
    path = None
    if removed_line is not None:
        m = _LINE.match(removed_line)
        assert m is not None
        path = m["path"].removeprefix("./")

    def change(doc: tomlkit.TOMLDocument) -> None:
        sources = _sources(doc, create=False)
        if sources is None:
            return
        key = _find_key(sources, name)
        if key is None:
            return
        value = sources[key]
        if path is not None and not _ours(value, path):
            return  # the user's own source: leave it
        if path is None and not (isinstance(value, dict) and value.get("editable") is False):
            return
        del sources[key]
        if not sources:
            uv = doc["tool"]["uv"]
            del uv["sources"]
            if not uv:
                del doc["tool"]["uv"]
            _trim_trailing_blank(doc)

    return _edit(project, render_pyproject_edit(project.pyproject, change), lines)


def apply_wiring(project: Project, edit: WiringEdit) -> None:
    """Write `edit` (each file atomically; the requirements file is restored on failure)."""
    if not edit.changed:
        return
    req_file = project.root / REQUIREMENTS_FILE
    before = req_file.read_bytes() if req_file.exists() else None
    if edit.requirements_text is None:
        req_file.unlink(missing_ok=True)
    else:
        atomic_write_text(req_file, edit.requirements_text)
    try:
        atomic_write_text(project.pyproject, edit.pyproject_text)
    except BaseException:
        if before is None:
            req_file.unlink(missing_ok=True)
        else:
            atomic_write_bytes(req_file, before)
        raise


def wire(project: Project, name: str, path: str) -> None:
    """Make the consumer install fork `name` from `path` (relative to the project root)."""
    apply_wiring(project, plan_wire(project, name, path))


def unwire(project: Project, name: str) -> bool:
    """Remove fork `name`'s wiring; False when there was none."""
    edit = plan_unwire(project, name)
    apply_wiring(project, edit)
    return edit.changed


def _trim_trailing_blank(doc: tomlkit.TOMLDocument) -> None:
    """Drop the blank line tomlkit put before a table that is gone again."""
    if not tomlkit.dumps(doc).endswith("\n\n"):
        return
    container: Any = doc
    while True:
        body = container.value.body if isinstance(container, Table) else container.body
        items = [(i, item) for i, (_, item) in enumerate(body) if not isinstance(item, Null)]
        if not items:
            return
        index, item = items[-1]
        if isinstance(item, Whitespace):
            del body[index]
            return
        if not isinstance(item, Table):
            return
        container = item


def wired(project: Project) -> dict[str, str]:
    """Forks wired through the requirements file: canonical name -> path."""
    out: dict[str, str] = {}
    for name, line in _read_lines(project.root / REQUIREMENTS_FILE).items():
        m = _LINE.match(line)
        assert m is not None
        out[name] = m["path"].removeprefix("./")
    return out
