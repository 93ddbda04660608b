"""The project layout: install forks from the vendor directory instead of the index.

Installers never read ``vendor/NAME`` itself: they get the fork's archive,
which :mod:`forkman.layouts.dist` packs from the vendored tree into
``.forkman/dist/NAME/`` (a source archive they build in their own scratch
folder, or the wheel again for a fork made from a wheel). Three pieces of
wiring, kept in step by :func:`wire` and :func:`unwire`, in the consumer's
pyproject.toml (edited with tomlkit, formatting kept) and beside it:

* ``[tool.uv.sources] NAME = { path = ".forkman/dist/NAME/..." }``, which
  ``uv lock`` / ``uv sync`` honour for the project's direct dependencies;
* ``NAME`` in ``[tool.uv] constraint-dependencies``: uv applies the source of
  a constraint to every requirement of the name, so an indirect dependency
  (urllib3 under requests) resolves to the fork as well, and a version that
  no requirement allows fails the resolution instead of taking the index's;
* ``forkman-requirements.txt``, one ``./.forkman/dist/NAME/FILE  # fork:
  NAME`` line per fork: a local-path requirement, which every pip version and
  ``uv pip`` accept (``NAME @ file:...`` is refused by pip before 24, and
  paths are not allowed in constraints files). The paths are relative to the
  current directory, so run pip from the project root::

      pip install -r forkman-requirements.txt -e .   # the consumer, with its forks
      pip install -r forkman-requirements.txt        # just the forks

An entry written by an earlier forkman (``{ path = "vendor/NAME", editable =
false }`` and ``./vendor/NAME``) counts as forkman's: :func:`wire` replaces it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from ..core.errors import BadInput
from ..core.fs import atomic_write_bytes, atomic_write_text
from ..model.config import render_pyproject_edit, require_table
from ..model.lock import Layout, LockEntry
from ..model.project import REQUIREMENTS_FILE as REQUIREMENTS_FILE
from ..model.project import Project

if TYPE_CHECKING:  # tomlkit and the archives load when a wiring is edited or an archive made
    import tomlkit

_HEADER = (
    "# Written by forkman: the project's forks, installed from archives of the vendored trees.\n"
    "# Use from the project root: pip install -r forkman-requirements.txt -e .\n"
    "# After a clone, `forkman wire` makes the archives (.forkman/dist/ is not committed).\n"
)
_LINE = re.compile(r"^(?P<path>\./\S+)  # fork: (?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)$")


def requirement_line(name: str, path: str) -> str:
    """The requirements line that installs fork `name` from `path` (its archive)."""
    return f"./{path}  # fork: {name}"


def default_archive(name: str) -> str:
    """The archive path of a fork of an sdist or a git tree named `name`."""
    from .dist import DIST_DIR

    norm = str(canonicalize_name(name))
    return f"{DIST_DIR}/{norm}/{norm.replace('-', '_')}.tar.gz"


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
    import tomlkit

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


def _uv_table(doc: tomlkit.TOMLDocument, *, create: bool) -> Any:
    tool = doc.get("tool")
    if tool is None or tool.get("uv") is None:
        if not create:
            return None
        _sources(doc, create=True)
        tool = doc["tool"]
    uv = tool["uv"]
    require_table(uv, "[tool.uv]")
    return uv


def _add_constraint(doc: tomlkit.TOMLDocument, name: str) -> None:
    """List `name` in ``[tool.uv] constraint-dependencies`` (once)."""
    import tomlkit

    uv = _uv_table(doc, create=True)
    constraints = uv.get("constraint-dependencies")
    if constraints is None:
        constraints = tomlkit.array()
        uv["constraint-dependencies"] = constraints
        # keep [tool.uv]'s keys above its [tool.uv.sources] sub-table
    if not isinstance(constraints, list):
        raise BadInput("[tool.uv] constraint-dependencies is not a list")
    norm = str(canonicalize_name(name))
    if not any(isinstance(c, str) and c.strip() == norm for c in constraints):
        constraints.append(norm)


def _remove_constraint(doc: tomlkit.TOMLDocument, name: str) -> None:
    """Remove the bare-name constraint forkman wrote for `name` (others stay)."""
    uv = _uv_table(doc, create=False)
    if uv is None:
        return
    constraints = uv.get("constraint-dependencies")
    if not isinstance(constraints, list):
        return
    norm = str(canonicalize_name(name))
    for index in reversed(range(len(constraints))):
        if isinstance(constraints[index], str) and constraints[index].strip() == norm:
            del constraints[index]
    if not constraints:
        del uv["constraint-dependencies"]


def _find_key(sources: Any, name: str) -> str | None:
    for key in sources:
        if canonicalize_name(key) == canonicalize_name(name):
            return str(key)
    return None


def _ours(value: object, path: str, vendored: str | None = None) -> bool:
    """Whether a ``[tool.uv.sources]`` value is the one forkman writes (or wrote before)."""
    if not isinstance(value, dict):
        return False
    if value.get("path") == path:
        return True
    # the wiring of earlier forkman versions: the vendored directory itself
    return vendored is not None and value == {"path": vendored, "editable": False}


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


def _check_path(path: str, what: str) -> str:
    if Path(path).is_absolute() or ".." in Path(path).parts:
        raise BadInput(f"{what} must be inside the project, not {path!r}")
    if any(c.isspace() for c in path) or "#" in path:
        raise BadInput(f"{what} {path!r} cannot be written to a requirements file")
    return Path(path).as_posix()


def plan_wire(project: Project, name: str, path: str, *, archive: str | None = None) -> WiringEdit:
    """The edits that make the consumer install fork `name`, vendored in `path`.

    Installers are pointed at `archive` (project-relative; default: the
    source archive :func:`default_archive`, see :func:`archive_for`), which
    :func:`forkman.layouts.dist.build_archive` makes from `path`. Refuses
    when ``[tool.uv.sources]`` already names another source for the package,
    or when forkman-requirements.txt has lines forkman did not write.
    """
    path = _check_path(path, "fork path")
    archive = _check_path(archive or default_archive(name), "fork archive")
    lines = _read_lines(project.root / REQUIREMENTS_FILE)
    lines[str(canonicalize_name(name))] = requirement_line(name, archive)

    def change(doc: tomlkit.TOMLDocument) -> None:
        import tomlkit

        existing = _sources(doc, create=False)
        key = _find_key(existing, name) if existing is not None else None
        if existing is not None and key is not None:
            value = existing[key]
            if not _ours(value, archive, path) and not (
                isinstance(value, dict) and _previous_archive(value, name)
            ):
                raise BadInput(
                    f"[tool.uv.sources] already has a source for {name}: {existing[key]}",
                    hint=f"remove [tool.uv.sources] {key} to use the fork in {path}",
                )
            if value == {"path": archive}:
                _add_constraint(doc, name)
                return
            del existing[key]
        sources = _sources(doc, create=True)
        assert sources is not None
        entry = tomlkit.inline_table()
        entry.update({"path": archive})
        sources[key or name] = entry
        _add_constraint(doc, name)

    return _edit(project, render_pyproject_edit(project.pyproject, change), lines)


def _previous_archive(value: dict[str, Any], name: str) -> bool:
    """A source forkman wrote for another release of fork `name` (e.g. a wheel's file)."""
    from .dist import DIST_DIR

    folder = f"{DIST_DIR}/{canonicalize_name(name)}/"
    target = value.get("path")
    return set(value) == {"path"} and isinstance(target, str) and target.startswith(folder)


def archive_for(entry: LockEntry) -> str:
    """The archive installers get for fork `entry` (see :mod:`forkman.layouts.dist`)."""
    from .dist import archive_path

    return archive_path(entry)


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
        ours = isinstance(value, dict) and _previous_archive(value, name)
        if path is not None and not (ours or _ours(value, path)):
            return  # the user's own source: leave it
        if path is None and not (
            ours or (isinstance(value, dict) and value.get("editable") is False)
        ):
            return
        del sources[key]
        _remove_constraint(doc, name)
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


def wire(project: Project, name: str, path: str, *, archive: str | None = None) -> None:
    """Make the consumer install fork `name`, vendored in `path`, from `archive`."""
    apply_wiring(project, plan_wire(project, name, path, archive=archive))


def unwire(project: Project, name: str) -> bool:
    """Remove fork `name`'s wiring; False when there was none."""
    edit = plan_unwire(project, name)
    apply_wiring(project, edit)
    return edit.changed


def _trim_trailing_blank(doc: tomlkit.TOMLDocument) -> None:
    """Drop the blank line tomlkit put before a table that is gone again."""
    import tomlkit
    from tomlkit.items import Null, Table, Whitespace

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
    """Forks wired through the requirements file: canonical name -> the archive installers get."""
    out: dict[str, str] = {}
    for name, line in _read_lines(project.root / REQUIREMENTS_FILE).items():
        m = _LINE.match(line)
        assert m is not None
        out[name] = m["path"].removeprefix("./")
    return out


def refresh_archive(project: Project, name: str, entry: LockEntry | None) -> str | None:
    """Make wired fork `name`'s archive again after its tree changed (`entry`: the new lock
    entry, None when the fork is gone); a message when it could not be made.

    A fork that is not wired through forkman-requirements.txt (a namespace fork,
    ``wire = false``) has no archive. When packing fails, the old archive is
    removed, so that installers fail instead of installing a stale fork.
    """
    from .dist import build_archive, remove_archive

    try:
        lines = _read_lines(project.root / REQUIREMENTS_FILE)
    except BadInput:
        lines = {}
    if (
        entry is None
        or entry.layout is not Layout.PROJECT
        or str(canonicalize_name(name)) not in lines
    ):
        if entry is None:
            remove_archive(project.root, name)
        return None
    try:
        build_archive(project.root, entry)
    except (BadInput, OSError) as exc:
        remove_archive(project.root, name)
        return f"{name}: cannot make its installable archive: {exc}; run `forkman wire`"
    return None


def wire_all(project: Project) -> list[str]:
    """Wire every project-layout fork and make its archive (``forkman wire``); one line each."""
    from .dist import build_archive

    out = []
    for entry in project.load_lock():
        if entry.layout is not Layout.PROJECT:
            continue
        apply_wiring(
            project, plan_wire(project, entry.name, entry.path, archive=archive_for(entry))
        )
        made = build_archive(project.root, entry)
        note = (
            ""
            if made.tree == entry.vendored_tree
            else " (from a tree that differs from forkman.lock: see `forkman check`)"
        )
        out.append(f"{entry.name}: {made.path}{note}")
    return out
