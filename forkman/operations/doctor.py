"""`forkman doctor`: does what gets installed really come from the forks?

A fork is worth nothing if the project installs the index's release instead.
For each project-layout fork this reads, and never writes:

* the wiring: forkman-requirements.txt, ``[tool.uv.sources]`` and ``[tool.uv]
  constraint-dependencies`` name the fork's archive;
* the archive (:mod:`forkman.layouts.dist`): it exists, its bytes are the
  ones recorded, and it was made from the tree the lock pins;
* ``uv.lock``, when the project has one: each forked name resolves to the
  archive's path with the fork's version and the archive's hash;
* with ``--python PATH``, that interpreter's environment
  (:mod:`importlib.metadata` and each distribution's ``direct_url.json``):
  each forked name that is installed was installed from the archive, at the
  fork's version and, where the installer recorded a hash, from its current
  bytes.

Every answer it cannot read (an interpreter that does not run, a uv.lock that
does not parse) is a finding, never a pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from ..core.errors import BadInput
from ..core.fs import file_sha256
from ..layouts.dist import pack, read_record
from ..layouts.wiring import REQUIREMENTS_FILE, _read_lines, archive_for
from ..model.lock import Layout, LockEntry
from ..model.project import Project
from .consumer import wiring_enabled


@dataclass(frozen=True)
class Problem:
    """One forked name that does not resolve to its fork."""

    fork: str
    """The fork's name."""
    where: str
    """What was read: ``wiring``, ``archive``, ``uv.lock`` or the interpreter."""
    message: str
    """What is wrong."""
    hint: str
    """What to run."""


@dataclass(frozen=True)
class DoctorReport:
    """What `forkman doctor` found."""

    problems: tuple[Problem, ...]
    """Everything that does not resolve to a fork."""
    notes: tuple[str, ...]
    """What was looked at and is fine, or not there to look at."""

    @property
    def ok(self) -> bool:
        """True when every forked name resolves to its fork."""
        return not self.problems


_WIRE = "run `forkman wire` (it writes the wiring and makes the archives)"

# Reads every installed distribution's name, version and PEP 610 direct_url.json.
_PROBE = """
import importlib.metadata as m, json, sys
out = {}
for d in m.distributions():
    name = d.metadata["Name"]
    if not name:
        continue
    try:
        direct = d.read_text("direct_url.json")
    except Exception:
        direct = None
    out.setdefault(name, {"version": d.version, "direct_url": direct})
json.dump(out, sys.stdout)
"""


def _check_archive(project: Project, entry: LockEntry) -> list[Problem]:
    rel = archive_for(entry)
    record = read_record(project.root, entry.name)
    try:
        actual: str | None = file_sha256(project.root / rel)
    except OSError:
        actual = None
    if actual is None or record is None or record.path != rel:
        return [Problem(entry.name, "archive", f"{rel} is missing", _WIRE)]
    # Packing is deterministic: the archive must be, byte for byte, what the
    # vendored tree packs to now (a forged record.json proves nothing).
    try:
        expected = hashlib.sha256(pack(project.root / entry.path, entry)).hexdigest()
    except (BadInput, OSError) as exc:
        return [Problem(entry.name, "archive", f"cannot pack {entry.path}: {exc}", _WIRE)]
    if expected != actual:
        return [
            Problem(
                entry.name,
                "archive",
                f"{rel} is not what {entry.path} packs to (stale, or changed by hand)",
                _WIRE,
            )
        ]
    if record.tree != entry.vendored_tree or record.sha256 != actual:
        return [
            Problem(
                entry.name,
                "archive",
                f"{rel} was made from a tree forkman.lock does not pin "
                f"({record.tree[:19]}, the lock has {entry.vendored_tree[:19]})",
                "record or undo the edits (`forkman check`), then " + _WIRE,
            )
        ]
    return []


def _check_wiring(project: Project, entry: LockEntry, data: dict[str, object]) -> list[Problem]:
    rel = archive_for(entry)
    name = str(canonicalize_name(entry.name))
    problems = []
    try:
        lines = _read_lines(project.root / REQUIREMENTS_FILE)
    except Exception as exc:  # a line forkman did not write: reported, not raised
        return [Problem(entry.name, "wiring", str(exc), _WIRE)]
    if f"./{rel}" != lines.get(name, "").split("  #", 1)[0]:
        problems.append(
            Problem(entry.name, "wiring", f"{REQUIREMENTS_FILE} does not install {rel}", _WIRE)
        )
    tool = data.get("tool")
    uv = tool.get("uv") if isinstance(tool, dict) else None
    uv = uv if isinstance(uv, dict) else {}
    sources = uv.get("sources") if isinstance(uv.get("sources"), dict) else {}
    assert isinstance(sources, dict)
    found = [v for k, v in sources.items() if canonicalize_name(k) == name]
    if found != [{"path": rel}]:
        problems.append(
            Problem(entry.name, "wiring", f"[tool.uv.sources] does not name {rel}", _WIRE)
        )
    constraints = uv.get("constraint-dependencies")
    if not isinstance(constraints, list) or name not in [
        str(c).strip() for c in constraints if isinstance(c, str)
    ]:
        problems.append(
            Problem(
                entry.name,
                "wiring",
                "[tool.uv] constraint-dependencies does not list it: uv takes an indirect "
                "dependency on it from the index",
                _WIRE,
            )
        )
    return problems


def _check_uv_lock(project: Project, entries: list[LockEntry]) -> list[Problem]:
    path = project.root / "uv.lock"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [
            Problem(e.name, "uv.lock", f"uv.lock cannot be read: {exc}", "run `uv lock`")
            for e in entries
        ]
    packages = data.get("package", [])
    problems = []
    for entry in entries:
        name = str(canonicalize_name(entry.name))
        rel = archive_for(entry)
        found = [
            p
            for p in packages
            if isinstance(p, dict) and canonicalize_name(str(p.get("name", ""))) == name
        ]
        record = read_record(project.root, entry.name)
        for package in found:
            source = package.get("source", {})
            what = None
            if not isinstance(source, dict) or source.get("path") != rel:
                what = f"resolves {entry.name} to {_describe(source)}, not the fork's {rel}"
            elif str(package.get("version")) != entry.version:
                what = f"has {entry.name} {package.get('version')}, the fork is {entry.version}"
            else:
                locked = _locked_hash(package)
                if locked is not None and record is not None and locked != record.sha256:
                    what = f"pins another build of {rel} (made before the fork changed)"
            if what is not None:
                problems.append(Problem(entry.name, "uv.lock", f"uv.lock {what}", "run `uv lock`"))
    return problems


def _locked_hash(package: dict[str, object]) -> str | None:
    for key in ("sdist", "wheels"):
        value = package.get(key)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict) and str(item.get("hash", "")).startswith("sha256:"):
                return str(item["hash"]).removeprefix("sha256:")
    return None


def _describe(source: object) -> str:
    if isinstance(source, dict):
        for key in ("registry", "path", "git", "url", "editable", "directory"):
            if key in source:
                return f"{key} {source[key]}"
    return str(source)


def _installed(python: str) -> dict[str, dict[str, object]]:
    proc = subprocess.run(
        [python, "-I", "-c", _PROBE],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise OSError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed")
    raw = json.loads(proc.stdout)
    if not isinstance(raw, dict):
        raise ValueError("not a table")
    return {str(canonicalize_name(k)): v for k, v in raw.items() if isinstance(v, dict)}


def _check_environment(
    project: Project, python: str, entries: list[LockEntry]
) -> tuple[list[Problem], list[str]]:
    where = f"python {python}"
    try:
        installed = _installed(python)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return (
            [
                Problem(
                    e.name,
                    where,
                    f"cannot read the environment: {exc}",
                    "pass a working interpreter with --python",
                )
                for e in entries
            ],
            [],
        )
    problems, notes = [], []
    for entry in entries:
        name = str(canonicalize_name(entry.name))
        dist = installed.get(name)
        if dist is None:
            notes.append(f"{entry.name}: not installed in {python}")
            continue
        rel = archive_for(entry)
        archive = (project.root / rel).resolve()
        what = None
        direct = _direct_url(dist.get("direct_url"))
        if str(dist.get("version")) != entry.version:
            what = f"{entry.name} {dist.get('version')} is installed, the fork is {entry.version}"
        elif direct is None:
            what = f"{entry.name} was installed from an index, not from the fork"
        else:
            url, digest = direct
            parts = urlsplit(url)
            local = Path(unquote(parts.path)).resolve() if parts.scheme == "file" else None
            record = read_record(project.root, entry.name)
            if local != archive:
                what = f"{entry.name} was installed from {url}, not from the fork's {rel}"
            elif digest is not None and record is not None and digest != record.sha256:
                what = f"{entry.name} was installed from an older build of {rel}"
        if what is None:
            notes.append(f"{entry.name}: installed from the fork in {python}")
        else:
            problems.append(
                Problem(
                    entry.name,
                    where,
                    what,
                    "reinstall: pip install -r forkman-requirements.txt (or uv sync)",
                )
            )
    return problems, notes


def _direct_url(raw: object) -> tuple[str, str | None] | None:
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None
    digest = None
    info = data.get("archive_info")
    if isinstance(info, dict):
        hashes = info.get("hashes")
        if isinstance(hashes, dict) and isinstance(hashes.get("sha256"), str):
            digest = hashes["sha256"]
        elif isinstance(info.get("hash"), str) and info["hash"].startswith("sha256="):
            digest = info["hash"].removeprefix("sha256=")
    return data["url"], digest


def doctor(project: Project, *, python: str | None = None) -> DoctorReport:
    """Check that the wiring, uv.lock and (with `python`) an environment use every fork."""
    entries = [e for e in project.load_lock() if e.layout is Layout.PROJECT]
    problems: list[Problem] = []
    notes: list[str] = []
    data = tomllib.loads(project.pyproject.read_text(encoding="utf-8"))

    if wiring_enabled(project):
        for entry in entries:
            problems += _check_wiring(project, entry, data)
            problems += _check_archive(project, entry)
    else:
        notes.append("[tool.forkman] wire = false: the wiring is yours, not checked")
    if (project.root / "uv.lock").exists():
        problems += _check_uv_lock(project, entries)
        notes.append("uv.lock: read")
    else:
        notes.append("uv.lock: none")
    if python is not None:
        found, seen = _check_environment(project, os.fspath(python), entries)
        problems += found
        notes += seen
    if not entries:
        notes.append("no project-layout forks")
    return DoctorReport(tuple(problems), tuple(notes))
