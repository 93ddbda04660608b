"""OSV advisories: versions, range evaluation, and parsing one record (see :mod:`.osvdb`).

Matching follows the OSV schema (https://ossf.github.io/osv-schema/): only
``PyPI`` entries count, range events are sorted by version before evaluation,
``GIT`` ranges (commits) are ignored.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml
from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version

try:  # libyaml is ~7x faster on the PyPA database; fall back when it is absent
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _YamlLoader = yaml.SafeLoader

_VERSION_RANGE_TYPES = frozenset({"ECOSYSTEM", "SEMVER"})
_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


class MalformedAdvisory(ValueError):
    """One advisory file does not follow the OSV schema (it is skipped)."""


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
class AffectedPackage:
    """What matching needs of one affected PyPI package."""

    name: str
    ranges: list[list[tuple[str, str]]]
    versions: list[str]
    fixed: list[str]


@dataclass(frozen=True)
class AdvisoryRecord:
    """One parsed advisory, as the import stores it."""

    id: str
    aliases: list[str]
    summary: str
    details: str
    published: str | None
    modified: str | None
    withdrawn: bool
    affected: list[AffectedPackage]
    notes: list[str]


def parse_advisory(data: Any) -> AdvisoryRecord:
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
    notes: list[str] = []
    parsed = (_parse_affected(item, notes) for item in affected_raw)
    affected = [a for a in parsed if a is not None]
    return AdvisoryRecord(
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


def _parse_affected(item: Any, notes: list[str]) -> AffectedPackage | None:
    """One ``affected`` entry (None: not a PyPI package); range problems go to `notes`."""
    if not isinstance(item, Mapping):
        raise MalformedAdvisory("an 'affected' entry is not a mapping")
    package = item.get("package")
    if not isinstance(package, Mapping):
        raise MalformedAdvisory("an 'affected' entry has no 'package'")
    if str(package.get("ecosystem", "")).split(":")[0] != "PyPI":
        return None
    name = package.get("name")
    if not isinstance(name, str) or not name:
        raise MalformedAdvisory("an affected package has no name")
    ranges: list[list[tuple[str, str]]] = []
    fixed: set[str] = set()
    for rng in item.get("ranges") or []:
        events = _range_events(rng)
        if events is None:
            continue  # GIT ranges name commits, not versions
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
    return AffectedPackage(canonicalize_name(name), ranges, versions, fixed_sorted)


def _range_events(rng: Any) -> list[tuple[str, str]] | None:
    """The events of one range, in file order (None: not a version range)."""
    if not isinstance(rng, Mapping):
        raise MalformedAdvisory("a range is not a mapping")
    if rng.get("type") not in _VERSION_RANGE_TYPES:
        return None
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
    return events


def load_advisory(name: str, raw: bytes) -> Any:
    """The data of advisory file `name` (JSON, else YAML)."""
    if name.endswith(".json"):
        return json.loads(raw)
    return yaml.load(raw, Loader=_YamlLoader)  # noqa: S506 - a safe loader (C or Python)
