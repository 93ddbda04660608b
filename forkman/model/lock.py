"""forkman.lock: what every fork is, exactly (see docs/lock-format.md).

The lock is TOML written by forkman only. It is written atomically, forks are
sorted by name and keys appear in a fixed order, so diffs stay small and
merge conflicts rare. Subsystems that add results (provenance, audit, test,
review) keep them in per-fork tables named after them; the core preserves
tables it does not know.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.errors import LockError
from ..core.fs import atomic_write_text
from ..core.paths import confined_relpath, overlaps

LOCK_VERSION = 1
LOCK_NAME = "forkman.lock"
_HEADER = "This file is written by forkman. Do not edit it by hand: see `forkman --help`."


class Layout(enum.StrEnum):
    """How a fork is wired into the consumer (see docs/wiring.md)."""

    PROJECT = "project"
    """The fork's whole project tree under the vendor directory, installed by path."""
    NAMESPACE = "namespace"
    """Importable packages vendored privately, imports rewritten."""


@dataclass(frozen=True)
class IndexSource:
    """A release file downloaded from a package index."""

    index_url: str
    """The simple-API URL the file was found on."""
    url: str
    """The file's download URL (without fragment)."""
    filename: str
    """The file's name (an sdist or a wheel)."""
    sha256: str
    """The sha256 hex digest of the file, checked before unpacking."""
    requirement: str
    """What the user asked for, e.g. ``attrs==23.1.0`` or ``packaging>=24,<25``."""

    kind = "index"


@dataclass(frozen=True)
class GitSource:
    """A tree exported from a git repository at a pinned commit."""

    url: str
    """The repository URL as given."""
    ref: str
    """The ref the user asked for (tag, branch or commit)."""
    commit: str
    """The full commit id the ref resolved to."""
    subdirectory: str = ""
    """A subdirectory of the repository that holds the project, if any."""

    kind = "git"


Source = IndexSource | GitSource


@dataclass(frozen=True)
class PatchRecord:
    """One patch of a fork's series."""

    file: str
    """The patch file, relative to the project root."""
    sha256: str
    """The sha256 hex digest of the patch file."""
    fixes: tuple[str, ...] = ()
    """Vulnerability ids the patch declares it fixes."""


@dataclass(frozen=True)
class LockEntry:
    """One fork."""

    name: str
    """The fork's name (PEP 503 normalized for index packages)."""
    version: str
    """The upstream version (for git sources, the version in its metadata or the ref)."""
    path: str
    """The vendored tree, relative to the project root."""
    source: Source
    """Where the upstream release came from."""
    upstream_tree: str
    """Tree hash of the pristine upstream tree."""
    vendored_tree: str
    """Tree hash of the vendored tree (upstream + transformations + patches)."""
    fetched: str
    """When the upstream release was fetched (UTC, RFC 3339)."""
    patches: tuple[PatchRecord, ...] = ()
    """The patch series, in order."""
    layout: Layout = Layout.PROJECT
    """How the fork is wired into the project (`project` or `namespace`)."""
    sections: Mapping[str, Any] = field(default_factory=dict)
    """Results added by subsystems: ``provenance``, ``audit``, ``test``, ``review``, ..."""

    def with_section(self, key: str, value: Mapping[str, Any] | None) -> LockEntry:
        """A copy with subsystem table `key` replaced (removed when None)."""
        sections = dict(self.sections)
        if value is None:
            sections.pop(key, None)
        else:
            sections[key] = dict(value)
        return replace(self, sections=sections)


@dataclass(frozen=True)
class Lock:
    """All forks of a project."""

    forks: Mapping[str, LockEntry] = field(default_factory=dict)
    """Entries by fork name."""

    def __iter__(self) -> Iterator[LockEntry]:
        return iter(self.forks[name] for name in sorted(self.forks))

    def __len__(self) -> int:
        return len(self.forks)

    def get(self, name: str) -> LockEntry | None:
        """The entry for fork `name` (any PEP 503 spelling), or None."""
        entry = self.forks.get(name)
        return entry if entry is not None else self.forks.get(canonical_name(name))

    def require(self, name: str) -> LockEntry:
        """The entry for fork `name` (any PEP 503 spelling); the one "no fork named"
        error otherwise, listing the forks (:class:`~forkman.core.errors.NotFound`)."""
        entry = self.get(name)
        if entry is None:
            from ..core.errors import NotFound

            known = ", ".join(sorted(self.forks)) or "none"
            raise NotFound(
                f"no fork named {name!r} in forkman.lock (forks: {known})",
                hint="`forkman status` lists the forks; `forkman fork NAME` makes one",
            )
        return entry

    def with_entry(self, entry: LockEntry) -> Lock:
        """A copy with `entry` added or replaced."""
        return Lock({**self.forks, entry.name: entry})

    def without(self, name: str) -> Lock:
        """A copy without fork `name`."""
        return Lock({k: v for k, v in self.forks.items() if k != name})


SECTIONS = frozenset({"audit", "namespace", "provenance", "review", "sync", "test"})
"""The subsystem tables a ``[forks.NAME]`` entry may carry (see docs/lock-format.md).

A table forkman does not know is refused: a lock is written by forkman only, and a
table no code reads could still be read by a future one as something it is not.
"""

_CANONICAL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

_CORE_KEYS = {
    "version",
    "path",
    "layout",
    "fetched",
    "upstream-tree",
    "vendored-tree",
    "source",
    "patches",
}


def _need(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise LockError(f"{where}: missing or invalid {key!r}")
    return value


def _parse_source(table: Any, where: str) -> Source:
    if not isinstance(table, Mapping):
        raise LockError(f"{where}: missing [source] table")
    kind = table.get("type")
    if kind == "index":
        return IndexSource(
            index_url=_need(table, "index-url", where),
            url=_need(table, "url", where),
            filename=_need(table, "filename", where),
            sha256=_need(table, "sha256", where),
            requirement=_need(table, "requirement", where),
        )
    if kind == "git":
        commit = _need(table, "commit", where)
        if len(commit) not in (40, 64) or any(c not in "0123456789abcdef" for c in commit):
            raise LockError(f"{where}: commit must be a full hex commit id, not {commit!r}")
        return GitSource(
            url=_need(table, "url", where),
            ref=_need(table, "ref", where),
            commit=commit,
            subdirectory=str(table.get("subdirectory", "")),
        )
    raise LockError(f"{where}: unknown source type {kind!r}")


def parse_lock(text: str, *, origin: str = LOCK_NAME) -> Lock:
    """Parse and validate lock text."""
    return lock_from_data(load_lock_data(text, origin=origin), origin=origin)


def load_lock_data(text: str, *, origin: str = LOCK_NAME) -> dict[str, Any]:
    """The raw TOML data of lock text (not yet validated)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(
            f"{origin} is not valid TOML: {exc}",
            hint="restore it from version control (git checkout -- forkman.lock)",
        ) from None


def lock_from_data(data: Mapping[str, Any], *, origin: str = LOCK_NAME) -> Lock:
    """Validate raw lock data."""
    version = data.get("version")
    if not isinstance(version, int):
        raise LockError(f"{origin}: missing lock format version")
    if version > LOCK_VERSION:
        raise LockError(
            f"{origin} uses lock format {version}; this forkman reads up to {LOCK_VERSION}",
            hint="upgrade forkman",
        )
    forks_raw = data.get("forks", {})
    if not isinstance(forks_raw, Mapping):
        raise LockError(f"{origin}: [forks] must be a table")
    forks: dict[str, LockEntry] = {}
    for name, table in forks_raw.items():
        where = f"{origin}: [forks.{name}]"
        if not isinstance(table, Mapping):
            raise LockError(f"{where} must be a table")
        patches = []
        for i, p in enumerate(table.get("patches", [])):
            if not isinstance(p, Mapping):
                raise LockError(f"{where}: patch {i + 1} must be a table")
            fixes = p.get("fixes", [])
            if not isinstance(fixes, list) or not all(isinstance(f, str) for f in fixes):
                raise LockError(f"{where}: patch {i + 1}: fixes must be a list of ids")
            pwhere = f"{where} patch {i + 1}"
            digest = _need(p, "sha256", pwhere)
            if not _HEX64.match(digest):
                raise LockError(f"{pwhere}: sha256 must be 64 lowercase hex digits")
            patches.append(
                PatchRecord(
                    file=confined_relpath(
                        _need(p, "file", pwhere), f"{pwhere} file", error=LockError
                    ),
                    sha256=digest,
                    fixes=tuple(fixes),
                )
            )
        raw_layout = table.get("layout", "project")
        if raw_layout not in ("project", "namespace"):
            raise LockError(f"{where}: unknown layout {raw_layout!r}")
        layout = Layout(raw_layout)
        _check_name(name, where)
        path = _need(table, "path", where)
        if path != confined_relpath(path, f"{where} path", error=LockError):
            raise LockError(f"{where}: path must be written without a trailing slash: {path!r}")
        sections = {k: v for k, v in table.items() if k not in _CORE_KEYS}
        _check_sections(sections, layout, where)
        forks[name] = LockEntry(
            name=name,
            version=_need(table, "version", where),
            path=path,
            source=_parse_source(table.get("source"), where),
            upstream_tree=_need(table, "upstream-tree", where),
            vendored_tree=_need(table, "vendored-tree", where),
            fetched=str(_need(table, "fetched", where)),
            patches=tuple(patches),
            layout=layout,
            sections=sections,
        )
    _check_overlaps(forks, origin)
    return Lock(forks)


def canonical_name(name: str) -> str:
    """`name` as PEP 503 spells it (the key of a fork in the lock)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _check_name(name: str, where: str) -> None:
    """Fork names are canonical (PEP 503), so two spellings never name one fork."""
    canonical = canonical_name(name)
    if name != canonical or not _CANONICAL.match(name):
        raise LockError(
            f"{where}: fork names are canonical (PEP 503): {name!r} is not"
            + (f" (it would be {canonical!r})" if _CANONICAL.match(canonical) else ""),
            hint="forkman writes every name canonical: restore the lock with "
            "`git checkout -- forkman.lock`",
        )


def _check_sections(sections: Mapping[str, Any], layout: Layout, where: str) -> None:
    """Every subsystem table is one forkman knows, and fits the fork's layout."""
    for key, value in sections.items():
        if key not in SECTIONS:
            raise LockError(
                f"{where}: unknown table or key {key!r}",
                hint="forkman.lock is written by forkman only: restore it with "
                "`git checkout -- forkman.lock`",
            )
        if not isinstance(value, Mapping):
            raise LockError(f"{where}: {key} must be a table")
    ns = sections.get("namespace")
    if layout is not Layout.NAMESPACE:
        if ns is not None:
            raise LockError(
                f"{where}: a [namespace] table belongs to the namespace layout, "
                f"not to a {layout.value!r} fork",
                hint="forkman.lock is written by forkman only: restore it with "
                "`git checkout -- forkman.lock`",
            )
        return
    members = ns.get("members") if isinstance(ns, Mapping) else None
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise LockError(f"{where}: a namespace fork needs [namespace] members (a list of names)")
    for member in members:
        if not member or "/" in member or "\\" in member or member in (".", ".."):
            raise LockError(f"{where}: namespace member {member!r} is not a top-level name")
    if len(set(members)) != len(members):
        raise LockError(f"{where}: namespace members are listed twice")


def _check_overlaps(forks: Mapping[str, LockEntry], origin: str) -> None:
    """No two forks share a tree: paths are distinct and not nested, except that
    namespace forks share their one folder, where each member has one owner."""
    entries = sorted(forks.values(), key=lambda e: e.name)
    owners: dict[str, str] = {}
    for i, a in enumerate(entries):
        for b in entries[i + 1 :]:
            if not overlaps(a.path, b.path):
                continue
            shared = a.path == b.path and a.layout is b.layout is Layout.NAMESPACE
            if not shared:
                raise LockError(
                    f"{origin}: forks {a.name} ({a.path}) and {b.name} ({b.path}) "
                    "overlap: each fork has a tree of its own",
                    hint="restore the lock with `git checkout -- forkman.lock`",
                )
        if a.layout is Layout.NAMESPACE:
            for member in a.sections["namespace"]["members"]:
                key = f"{a.path}/{member}"
                if key in owners:
                    raise LockError(
                        f"{origin}: {key} belongs to two forks, {owners[key]} and {a.name}",
                        hint="restore the lock with `git checkout -- forkman.lock`",
                    )
                owners[key] = a.name


# The last lock text parsed in this process, by sha256: commands that
# read the lock several times (a sync of many forks) parse each version once.
_PARSED: dict[str, Lock] = {}


def _text_key(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def load_lock(path: Path) -> Lock:
    """Read `path`; an absent lock is an empty one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Lock()
    key = _text_key(text)
    cached = _PARSED.get(key)
    if cached is not None:
        return cached
    lock = parse_lock(text, origin=path.name)
    _PARSED.clear()
    _PARSED[key] = lock
    return lock


def _source_table(source: Source) -> dict[str, str]:
    if isinstance(source, IndexSource):
        return {
            "type": "index",
            "requirement": source.requirement,
            "index-url": source.index_url,
            "url": source.url,
            "filename": source.filename,
            "sha256": source.sha256,
        }
    table = {"type": "git", "url": source.url, "ref": source.ref, "commit": source.commit}
    if source.subdirectory:
        table["subdirectory"] = source.subdirectory
    return table


_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _key(key: str) -> str:
    return key if key and set(key) <= _BARE_KEY else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(k)} = {_value(value[k])}" for k in sorted(value))
        return "{" + inner + "}" if inner else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot store {type(value).__name__} in the lock")


def _table(lines: list[str], header: str, table: Mapping[str, Any]) -> None:
    """Emit `table`: scalars and lists first, then sub-tables, keys sorted unless ordered."""
    lines.append("")
    lines.append(f"[{header}]")
    subtables = []
    for key, value in table.items():
        if isinstance(value, Mapping) and value:
            subtables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in subtables:
        _table(lines, f"{header}.{_key(key)}", value)


def dump_lock(lock: Lock) -> str:
    """Serialize `lock` deterministically (forks sorted, keys in a fixed order)."""
    lines = [f"# {_HEADER}", f"version = {LOCK_VERSION}"]
    for entry in lock:
        base = f"forks.{_key(entry.name)}"
        _table(
            lines,
            base,
            {
                "version": entry.version,
                "path": entry.path,
                "layout": entry.layout.value,
                "fetched": entry.fetched,
                "upstream-tree": entry.upstream_tree,
                "vendored-tree": entry.vendored_tree,
            },
        )
        _table(lines, f"{base}.source", _source_table(entry.source))
        for p in entry.patches:
            lines.append("")
            lines.append(f"[[{base}.patches]]")
            lines.append(f"file = {_value(p.file)}")
            lines.append(f"sha256 = {_value(p.sha256)}")
            if p.fixes:
                lines.append(f"fixes = {_value(list(p.fixes))}")
        for key in sorted(entry.sections):
            _table(lines, f"{base}.{_key(key)}", _sorted_deep(entry.sections[key]))
    return "\n".join(lines) + "\n"


def _sorted_deep(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _sorted_deep(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted_deep(v) for v in value]
    return value


def write_lock(path: Path, lock: Lock) -> None:
    """Write `lock` to `path` atomically."""
    atomic_write_text(path, dump_lock(lock))
