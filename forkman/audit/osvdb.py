"""A local OSV database: advisories imported once into an indexed SQLite file.

Parsing thousands of YAML files on every audit is far too slow (the PyPA
advisory database takes seconds even with libyaml), so ``forkman db update``
imports a folder of OSV YAML/JSON files or an OSV ``all.zip`` export into
SQLite, keeping per package (PEP 503 name) the data matching needs, already
normalized: range events sorted by version, explicit version lists, fixed
versions. :meth:`OsvDatabase.affecting` then answers "which advisories affect
name==version" with one indexed query and a few comparisons.

Matching follows the OSV schema (https://ossf.github.io/osv-schema/):

- only ``affected[]`` entries of ecosystem ``PyPI`` count, names normalized;
- a version is affected when it is listed in ``versions`` or falls in an
  ``ECOSYSTEM`` (or ``SEMVER``) range; ``GIT`` ranges hold commits, not
  versions, and are ignored;
- range events are sorted by version before evaluation (files store them in
  any order), ``introduced`` opens, ``fixed`` closes (exclusive),
  ``last_affected`` closes (inclusive);
- withdrawn advisories are not imported.

The import is atomic: it builds a new file beside the target and replaces it
with :func:`os.replace`, so an interrupted or failed import leaves the previous
database intact.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import yaml
from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version

from ..core.errors import BadInput, ForkmanError, NotFound
from ..core.observer import NullObserver, Observer
from ..model.config import NetworkLimits

_NULL_OBSERVER = NullObserver()

SCHEMA_VERSION = 1
DB_FILENAME = "osv.sqlite"

try:  # libyaml is ~7x faster on the PyPA database; fall back when it is absent
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _YamlLoader = yaml.SafeLoader

_VERSION_RANGE_TYPES = frozenset({"ECOSYSTEM", "SEMVER"})
_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


class DatabaseError(ForkmanError):
    """The local advisory database is missing, corrupt or from another forkman."""


class MalformedAdvisory(ValueError):
    """One advisory file does not follow the OSV schema (it is skipped)."""


@dataclass(frozen=True)
class Advisory:
    """One advisory that affects a queried package version."""

    id: str
    """The advisory id (``PYSEC-...``, ``GHSA-...``, ``MAL-...``)."""
    aliases: tuple[str, ...]
    """Other ids of the same vulnerability (CVE, GHSA, ...)."""
    summary: str
    """The one-line summary, or the start of the details."""
    details: str
    """The full description."""
    fixed: tuple[str, ...]
    """Versions that fix it, sorted ascending (may be empty)."""
    published: str | None
    """When it was published (RFC 3339), if known."""


@dataclass(frozen=True)
class DatabaseInfo:
    """What a database file holds and where it came from."""

    path: Path
    """The SQLite file."""
    source: str
    """The folder, zip or URL it was imported from."""
    imported_at: str
    """When it was imported (UTC, RFC 3339)."""
    advisories: int
    """Advisories imported (withdrawn and malformed ones excluded)."""
    packages: int
    """Distinct package names with at least one advisory."""
    withdrawn: int
    """Withdrawn advisories that were left out."""
    skipped: int
    """Malformed advisories that were skipped."""


# -- versions ---------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def parse_version(text: str) -> Version | None:
    """`text` as a PEP 440 version, or None when it is not one (cached: hot path)."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _zero() -> Version:
    return Version("0")


def _event_version(kind: str, value: str) -> Version | None:
    if kind == "introduced" and value == "0":
        return _zero()
    return parse_version(value)


def sort_events(events: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Range events ordered by version, as OSV evaluation requires.

    At equal versions an ``introduced`` comes first, so ``introduced X, fixed X``
    is an empty range. Raises MalformedAdvisory on a value that is not a version.
    """
    keyed = []
    order = {"introduced": 0, "last_affected": 1, "fixed": 2, "limit": 3}
    for kind, value in events:
        version = _event_version(kind, value)
        if version is None:
            raise MalformedAdvisory(f"{kind} {value!r} is not a PEP 440 version")
        keyed.append((version, order[kind], kind, value))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [(kind, value) for _, _, kind, value in keyed]


def in_range(version: Version, events: Iterable[tuple[str, str]]) -> bool:
    """Whether `version` is affected by one range of already sorted events (OSV algorithm)."""
    affected = False
    for kind, value in events:
        bound = _event_version(kind, value)
        if bound is None:
            continue
        if kind == "introduced":
            if version >= bound:
                affected = True
        elif kind == "fixed":
            if version >= bound:
                affected = False
        elif kind == "last_affected":
            if version > bound:
                affected = False
        elif kind == "limit" and version >= bound:
            affected = False
    return affected


@lru_cache(maxsize=65536)
def _canonical_version(text: str) -> str:
    """The PEP 440 identity of a version (``1.0`` and ``1.0.0`` are the same version)."""
    version = parse_version(text)
    return canonicalize_version(version) if version is not None else text


# -- parsing advisories -----------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A string field; YAML turns unquoted timestamps into datetimes."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return str(value.astimezone(dt.UTC).isoformat()).replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str | int | float):
        return str(value)
    raise MalformedAdvisory(f"expected a string, got {type(value).__name__}")


@dataclass(frozen=True)
class _Affected:
    name: str
    ranges: list[list[tuple[str, str]]]
    versions: list[str]
    fixed: list[str]


@dataclass(frozen=True)
class _Record:
    id: str
    aliases: list[str]
    summary: str
    details: str
    published: str | None
    modified: str | None
    withdrawn: bool
    affected: list[_Affected]
    notes: list[str]


def parse_advisory(data: Any) -> _Record:
    """Validate one OSV record and extract what matching needs."""
    if not isinstance(data, Mapping):
        raise MalformedAdvisory("not an OSV object (expected a mapping)")
    vid = data.get("id")
    if not isinstance(vid, str) or not vid:
        raise MalformedAdvisory("missing 'id'")
    aliases = data.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise MalformedAdvisory("'aliases' must be a list of strings")
    details = _text(data.get("details")) or ""
    # the whole first line: reports that need it short cut it at a word (forkman.core.text)
    summary = _text(data.get("summary")) or (details.strip().split("\n") or [""])[0]
    affected_raw = data.get("affected") or []
    if not isinstance(affected_raw, list):
        raise MalformedAdvisory("'affected' must be a list")
    affected: list[_Affected] = []
    notes: list[str] = []
    for item in affected_raw:
        if not isinstance(item, Mapping):
            raise MalformedAdvisory("an 'affected' entry is not a mapping")
        package = item.get("package")
        if not isinstance(package, Mapping):
            raise MalformedAdvisory("an 'affected' entry has no 'package'")
        if str(package.get("ecosystem", "")).split(":")[0] != "PyPI":
            continue
        name = package.get("name")
        if not isinstance(name, str) or not name:
            raise MalformedAdvisory("an affected package has no name")
        ranges: list[list[tuple[str, str]]] = []
        fixed: set[str] = set()
        for rng in item.get("ranges") or []:
            if not isinstance(rng, Mapping):
                raise MalformedAdvisory("a range is not a mapping")
            if rng.get("type") not in _VERSION_RANGE_TYPES:
                continue  # GIT ranges name commits, not versions
            events_raw = rng.get("events")
            if not isinstance(events_raw, list) or not events_raw:
                raise MalformedAdvisory("a range has no events")
            events: list[tuple[str, str]] = []
            for event in events_raw:
                if not isinstance(event, Mapping) or len(event) != 1:
                    raise MalformedAdvisory(f"malformed range event {event!r}")
                ((kind, value),) = event.items()
                if kind not in _EVENT_KINDS:
                    raise MalformedAdvisory(f"unknown range event {kind!r}")
                value = _text(value)
                if not value:
                    raise MalformedAdvisory(f"empty {kind} event")
                events.append((kind, value))
            try:
                sorted_events = sort_events(events)
            except MalformedAdvisory as exc:
                # Cannot be ordered, so cannot be evaluated: keep the advisory and
                # its explicit `versions` list rather than dropping it entirely.
                notes.append(f"{name}: range ignored, {exc}; only listed versions match")
                fixed.update(v for k, v in events if k == "fixed" and parse_version(v))
                continue
            ranges.append(sorted_events)
            fixed.update(v for k, v in sorted_events if k == "fixed")
        versions_raw = item.get("versions") or []
        if not isinstance(versions_raw, list):
            raise MalformedAdvisory("'versions' must be a list")
        versions = sorted({_canonical_version(str(_text(v))) for v in versions_raw})
        fixed_sorted = sorted(fixed, key=lambda v: parse_version(v) or _zero())
        affected.append(_Affected(canonicalize_name(name), ranges, versions, fixed_sorted))
    return _Record(
        id=vid,
        aliases=list(aliases),
        summary=summary,
        details=details,
        published=_text(data.get("published")),
        modified=_text(data.get("modified")),
        withdrawn=data.get("withdrawn") is not None,
        affected=affected,
        notes=notes,
    )


def _load(name: str, raw: bytes) -> Any:
    if name.endswith(".json"):
        return json.loads(raw)
    return yaml.load(raw, Loader=_YamlLoader)  # noqa: S506 - a safe loader (C or Python)


# -- sources ----------------------------------------------------------------------------

_SUFFIXES = (".json", ".yaml", ".yml")


def _iter_folder(folder: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(folder.rglob("*")):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        if path.suffix in _SUFFIXES and path.is_file() and not hidden:  # not .github/*.yml
            yield str(path), path.read_bytes()


def _iter_zip(
    archive: Path | IO[bytes], label: str, member_cap: int
) -> Iterator[tuple[str, bytes]]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadInput(
            f"{label} is not a zip archive: {exc}",
            hint="pass a folder of OSV files or an OSV all.zip export",
        ) from None
    with zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.endswith(_SUFFIXES):
                continue
            try:
                with zf.open(info) as member:
                    data = member.read(member_cap + 1)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise BadInput(f"{label} is corrupt at {info.filename}: {exc}") from None
            if len(data) > member_cap:
                raise BadInput(
                    f"{label}: {info.filename} is larger than {member_cap} bytes, "
                    "the max-page-size limit",
                    hint="an advisory is a few kilobytes; raise max-page-size in "
                    "[tool.forkman] only if you trust this export",
                )
            yield f"{label}:{info.filename}", data


def _download(url: str, observer: Observer, limits: NetworkLimits) -> IO[bytes]:
    """`url` streamed into an anonymous temporary file (at most ``max-download-size``)."""
    from ..sources import http as _http

    observer.step("db", f"downloading {_http.redact(url)}")
    out = tempfile.TemporaryFile()  # noqa: SIM115 - returned open, closed by the caller
    try:
        _http.download(
            url,
            out.write,
            limits=limits,
            progress=lambda done, total: observer.progress("db", done, total),
            what="advisory export",
            hint="check the URL and your connection, or pass --from with a local copy",
        )
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def iter_source(
    source: str, observer: Observer, limits: NetworkLimits | None = None
) -> Iterator[tuple[str, bytes]]:
    """(label, raw bytes) of every advisory file in a folder, zip file or zip URL.

    A URL is read within the network limits (``network-timeout``,
    ``max-download-size``); each advisory in a zip is at most ``max-page-size``.
    """
    limits = limits if limits is not None else NetworkLimits()
    if source.startswith(("http://", "https://")):
        with _download(source, observer, limits) as archive:
            yield from _iter_zip(archive, source, limits.max_page_size)
        return
    path = Path(source)
    if path.is_dir():
        yield from _iter_folder(path)
    elif path.is_file():
        yield from _iter_zip(path, str(path), limits.max_page_size)
    else:
        raise NotFound(
            f"advisory source {source} does not exist",
            hint="pass a folder of OSV files, an OSV all.zip export, or its URL",
        )


# -- the database -----------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE advisory (
    id TEXT PRIMARY KEY,
    aliases TEXT NOT NULL,
    summary TEXT NOT NULL,
    details TEXT NOT NULL,
    published TEXT,
    modified TEXT
);
CREATE TABLE affected (
    name TEXT NOT NULL,
    advisory TEXT NOT NULL REFERENCES advisory(id),
    ranges TEXT NOT NULL,
    versions TEXT NOT NULL,
    fixed TEXT NOT NULL
);
"""
_INDEXES = "CREATE INDEX affected_name ON affected(name);"


def _parse_one(item: tuple[str, bytes]) -> tuple[str, _Record | str]:
    """Parse one advisory file: the record, or why it is malformed."""
    label, raw = item
    try:
        return label, parse_advisory(_load(label, raw))
    except (MalformedAdvisory, yaml.YAMLError, ValueError, UnicodeDecodeError) as exc:
        return label, (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _parse_all(items: Iterator[tuple[str, bytes]]) -> Iterator[tuple[str, _Record | str]]:
    """Parsed advisories in source order (worker processes measured slower on 2 cores)."""
    return map(_parse_one, items)


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def import_database(
    source: str | Path,
    target: Path,
    *,
    observer: Observer = _NULL_OBSERVER,
    limits: NetworkLimits | None = None,
) -> DatabaseInfo:
    """Import OSV advisories from `source` into `target`, replacing it atomically.

    Malformed advisories are skipped with a warning naming the file. When nothing
    usable is found the previous database stays and BadInput is raised.
    """
    source = str(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".osv-", suffix=".sqlite.tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    counts = {"advisories": 0, "withdrawn": 0, "skipped": 0}
    packages: set[str] = set()
    seen: set[str] = set()
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.executescript(_SCHEMA)
            for label, record in _parse_all(iter_source(source, observer, limits)):
                if isinstance(record, str):
                    observer.warning(f"skipped malformed advisory {label}: {record}")
                    counts["skipped"] += 1
                    continue
                for note in record.notes:
                    observer.warning(f"advisory {label}: {note}")
                if record.withdrawn:
                    counts["withdrawn"] += 1
                    continue
                if record.id in seen:
                    observer.warning(f"skipped duplicate advisory {record.id} in {label}")
                    continue
                seen.add(record.id)
                counts["advisories"] += 1
                conn.execute(
                    "INSERT INTO advisory VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        json.dumps(record.aliases),
                        record.summary,
                        record.details,
                        record.published,
                        record.modified,
                    ),
                )
                for aff in record.affected:
                    packages.add(aff.name)
                    conn.execute(
                        "INSERT INTO affected VALUES (?, ?, ?, ?, ?)",
                        (
                            aff.name,
                            record.id,
                            json.dumps(aff.ranges),
                            json.dumps(aff.versions),
                            json.dumps(aff.fixed),
                        ),
                    )
                if counts["advisories"] % 500 == 0:
                    observer.progress("db", counts["advisories"], None)
            if counts["advisories"] == 0:
                raise BadInput(
                    f"{source} holds no usable OSV advisories "
                    f"({counts['skipped']} malformed, {counts['withdrawn']} withdrawn)",
                    hint="pass a folder of OSV YAML/JSON files or an OSV all.zip export",
                )
            conn.executescript(_INDEXES)
            info = DatabaseInfo(
                path=target,
                source=source,
                imported_at=_now(),
                advisories=counts["advisories"],
                packages=len(packages),
                withdrawn=counts["withdrawn"],
                skipped=counts["skipped"],
            )
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("schema", str(SCHEMA_VERSION)),
                    ("source", info.source),
                    ("imported_at", info.imported_at),
                    ("advisories", str(info.advisories)),
                    ("packages", str(info.packages)),
                    ("withdrawn", str(info.withdrawn)),
                    ("skipped", str(info.skipped)),
                ],
            )
            conn.commit()
        finally:
            conn.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    observer.step("db", f"imported {info.advisories} advisories for {info.packages} packages")
    return info


def _corrupt(path: Path, detail: str) -> DatabaseError:
    return DatabaseError(
        f"the advisory database {path} is unreadable ({detail})",
        hint="re-run `forkman db update` to rebuild it",
    )


class OsvDatabase:
    """A read-only view of an imported database file."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise DatabaseError(
                f"no advisory database at {path}",
                hint="run `forkman db update` to import one",
            )
        self.path = path
        try:
            self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            rows = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            raise _corrupt(path, str(exc)) from None
        if rows.get("schema") != str(SCHEMA_VERSION):
            raise _corrupt(path, f"schema {rows.get('schema')!r}, expected {SCHEMA_VERSION}")
        try:
            self.info = DatabaseInfo(
                path=path,
                source=rows["source"],
                imported_at=rows["imported_at"],
                advisories=int(rows["advisories"]),
                packages=int(rows["packages"]),
                withdrawn=int(rows["withdrawn"]),
                skipped=int(rows["skipped"]),
            )
        except (KeyError, ValueError) as exc:
            raise _corrupt(path, f"metadata incomplete: {exc}") from None
        self._cache: dict[str, list[tuple[Any, ...]]] = {}

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> OsvDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, name: str) -> list[tuple[Any, ...]]:
        rows = self._cache.get(name)
        if rows is None:
            try:
                raw = self._conn.execute(
                    "SELECT a.id, a.aliases, a.summary, a.details, a.published, "
                    "f.ranges, f.versions, f.fixed "
                    "FROM affected f JOIN advisory a ON a.id = f.advisory WHERE f.name = ?",
                    (name,),
                ).fetchall()
            except sqlite3.Error as exc:
                raise _corrupt(self.path, str(exc)) from None
            try:
                rows = [
                    (
                        Advisory(
                            id=r[0],
                            aliases=tuple(json.loads(r[1])),
                            summary=r[2],
                            details=r[3],
                            published=r[4],
                            fixed=tuple(json.loads(r[7])),
                        ),
                        [[tuple(e) for e in rng] for rng in json.loads(r[5])],
                        frozenset(json.loads(r[6])),
                    )
                    for r in raw
                ]
            except (ValueError, TypeError) as exc:
                raise _corrupt(self.path, f"bad row for {name}: {exc}") from None
            self._cache[name] = rows
        return rows

    def known(self, name: str) -> bool:
        """Whether any advisory names package `name`."""
        return bool(self._rows(canonicalize_name(name)))

    def affecting(self, name: str, version: Version | str) -> list[Advisory]:
        """Advisories that affect `name` at `version`, sorted by id."""
        if isinstance(version, str):
            parsed = parse_version(version)
            if parsed is None:
                raise BadInput(f"{name} {version!r} is not a PEP 440 version")
            version = parsed
        canonical = canonicalize_version(version)
        found: dict[str, Advisory] = {}
        for advisory, ranges, versions in self._rows(canonicalize_name(name)):
            if canonical in versions or any(in_range(version, rng) for rng in ranges):
                found[advisory.id] = advisory
        return [found[k] for k in sorted(found)]

    def packages(self) -> list[str]:
        """Every package name with at least one advisory."""
        return [r[0] for r in self._conn.execute("SELECT DISTINCT name FROM affected ORDER BY 1")]

    def fixed_versions_of(self, name: str) -> list[str]:
        """Every version any advisory names as a fix for `name`."""
        out: set[str] = set()
        for advisory, _, _ in self._rows(canonicalize_name(name)):
            out.update(advisory.fixed)
        return sorted(out)

    def versions_of(self, name: str) -> list[str]:
        """Every version any advisory lists for `name` (for benchmarks and tests)."""
        out: set[str] = set()
        for _, _, versions in self._rows(canonicalize_name(name)):
            out.update(versions)
        return sorted(out)
