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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import Version

from ..core.errors import BadInput, ForkmanError
from ..core.observer import NullObserver, Observer
from ..model.config import NetworkLimits
from .osvrecord import (
    AdvisoryRecord,
    MalformedAdvisory,
    in_range,
    load_advisory,
    parse_advisory,
    parse_version,
    sort_events,
)
from .osvsource import iter_source

__all__ = [
    "DB_FILENAME",
    "SCHEMA_VERSION",
    "Advisory",
    "DatabaseError",
    "DatabaseInfo",
    "MalformedAdvisory",
    "OsvDatabase",
    "import_database",
    "in_range",
    "iter_source",
    "parse_advisory",
    "parse_version",
    "sort_events",
]

_NULL_OBSERVER = NullObserver()

SCHEMA_VERSION = 1
DB_FILENAME = "osv.sqlite"


class DatabaseError(ForkmanError):
    """The local advisory database is missing, corrupt or from another forkman."""


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


def _parse_one(item: tuple[str, bytes]) -> tuple[str, AdvisoryRecord | str]:
    """Parse one advisory file: the record, or why it is malformed."""
    label, raw = item
    try:
        return label, parse_advisory(load_advisory(label, raw))
    except (MalformedAdvisory, yaml.YAMLError, ValueError, UnicodeDecodeError) as exc:
        return label, (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _parse_all(items: Iterator[tuple[str, bytes]]) -> Iterator[tuple[str, AdvisoryRecord | str]]:
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
