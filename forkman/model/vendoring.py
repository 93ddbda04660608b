"""``[tool.forkman.vendoring]``: settings of the namespace layout."""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from ..core.errors import ConfigError
from ..core.paths import confined_relpath, protected_names
from .config import Config

WHERE = "[tool.forkman.vendoring]"
_IDENT = re.compile(r"^[^\W\d]\w*(\.[^\W\d]\w*)*$")
NAMESPACE_HINT = 'set [tool.forkman.vendoring] namespace = "yourpkg._vendor"'
"""What to do about a namespace that is not a dotted Python module name."""


def namespace_problem(namespace: str) -> str | None:
    """Why `namespace` is not a dotted Python module name, or None when it is one."""
    if not _IDENT.match(namespace) or any(p.isdigit() for p in namespace.split(".")):
        return f"namespace {namespace!r} is not a dotted Python module name"
    return None


class RewriteMode(enum.Enum):
    """How imports of vendored modules are rewritten."""

    SYNTAX = "syntax"
    """On the syntax tree (every import form; the default)."""
    VENDORING_COMPAT = "vendoring-compat"
    """The vendoring tool's regular expressions, byte for byte (for migrated projects)."""


@dataclass(frozen=True)
class Substitution:
    """A configured text substitution for a dynamic reference."""

    match: str
    """A Python regular expression."""
    replace: str
    """Its replacement (``re.sub`` syntax: ``\\1`` refers to groups)."""

    def apply(self, text: str) -> str:
        """`text` with every match replaced."""
        return re.sub(self.match, self.replace, text)


@dataclass(frozen=True)
class DropRule:
    """A path pattern removed from a vendored tree (relative to the namespace directory)."""

    pattern: str
    """A glob (``*`` matches within one path segment, ``**`` across) or a regular expression."""
    regex: bool = False
    """Whether `pattern` is a regular expression (searched in the path; anchor with ^ and $)."""

    def matches(self, rel: str) -> bool:
        """Whether relative posix path `rel` is dropped by this rule."""
        if self.regex:
            return re.search(self.pattern, rel) is not None
        if "*" not in self.pattern and "?" not in self.pattern and "[" not in self.pattern:
            return rel == self.pattern.rstrip("/")
        return _glob_match(self.pattern.rstrip("/"), rel)


def _glob_match(pattern: str, rel: str) -> bool:
    """Whether a whole relative path matches a glob, segment by segment (``**``: any depth)."""
    pat = [p for p in pattern.split("/") if p]
    parts = rel.split("/")

    def match(i: int, j: int) -> bool:
        if i == len(pat):
            return j == len(parts)
        if pat[i] == "**":
            return any(match(i + 1, k) for k in range(j, len(parts) + 1))
        return j < len(parts) and fnmatch.fnmatchcase(parts[j], pat[i]) and match(i + 1, j + 1)

    return match(0, 0)


@dataclass(frozen=True)
class LicenseOverride:
    """Where one distribution's license comes from when its files do not say."""

    directory: str | None = None
    """The member directory the license files go into (like the vendoring tool's directories)."""
    url: str | None = None
    """A URL to fetch the license text from when neither wheel nor sdist has one."""
    file: str | None = None
    """A file in the consumer project to use as the license."""
    expression: str | None = None
    """The SPDX expression to report, overriding what metadata says."""


class StubPolicy(enum.Enum):
    """Which vendored modules get a typing stub ``<module>.pyi`` (``from <module> import *``)."""

    UNTYPED = "untyped"
    """Modules that do not ship ``py.typed`` (the default)."""
    ALL = "all"
    """Every module (what the vendoring tool does)."""
    NONE = "none"
    """No stubs."""


@dataclass(frozen=True)
class VendoringConfig:
    """The parsed ``[tool.forkman.vendoring]`` table."""

    namespace: str
    """The private package vendored modules are imported from, e.g. ``mypkg._vendor``."""
    destination: str
    """The namespace's directory, relative to the project root."""
    protected_files: tuple[str, ...] = ()
    """Names in the destination that belong to the consumer and are never touched."""
    drop: tuple[DropRule, ...] = ()
    """Paths removed from every vendored tree."""
    substitute: tuple[Substitution, ...] = ()
    """Text substitutions for dynamic references, run before import rewriting."""
    license_overrides: Mapping[str, LicenseOverride] = field(default_factory=dict)
    """Per distribution (canonical name): where its license comes from."""
    license_source: str = "wheel"
    """``wheel`` (dist-info, sdist when absent), ``sdist`` (always the sdist's files) or
    ``archive`` (every LICENSE or COPYING file of the release archive, as the vendoring
    tool takes them)."""
    typing_stubs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per top-level module: the stub files to write (dotted names); empty: none."""
    stubs: StubPolicy = StubPolicy.UNTYPED
    """Which modules get a ``<module>.pyi`` stub."""
    rewrite_consumer: bool = False
    """Also rewrite imports in the consumer's own package."""
    rewrite_mode: RewriteMode = RewriteMode.SYNTAX
    """How imports are rewritten."""


def _strings(table: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{WHERE}.{key} must be a list of strings")
    return tuple(value)


def _protected(table: Mapping[str, Any]) -> tuple[str, ...]:
    return protected_names(table.get("protected-files", []), f"{WHERE}.protected-files")


def parse_vendoring_config(table: Mapping[str, Any]) -> VendoringConfig:
    """Validate a ``[tool.forkman.vendoring]`` table."""
    namespace, destination = _place(table)
    drop = _drop_rules(table)
    substitute = _substitutions(table)
    overrides = _license_overrides(table)
    stubs_raw = table.get("typing-stubs", {})
    if not isinstance(stubs_raw, Mapping) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in stubs_raw.values()
    ):
        raise ConfigError(f"{WHERE}.typing-stubs maps module names to lists of dotted names")
    license_source = table.get("license-source", "wheel")
    if license_source not in ("wheel", "sdist", "archive"):
        raise ConfigError(f'{WHERE}.license-source must be "wheel", "sdist" or "archive"')
    mode, stubs = _modes(table)
    return VendoringConfig(
        namespace=namespace,
        destination=destination,
        protected_files=_protected(table),
        drop=drop,
        substitute=substitute,
        license_overrides=overrides,
        license_source=license_source,
        typing_stubs={k: tuple(v) for k, v in stubs_raw.items()},
        stubs=stubs,
        rewrite_consumer=bool(table.get("rewrite-consumer", False)),
        rewrite_mode=mode,
    )


def _place(table: Mapping[str, Any]) -> tuple[str, str]:
    """The table's namespace and destination, checked against each other."""
    if not table:
        raise ConfigError(
            f"{WHERE} is missing: the namespace layout needs a namespace and a destination",
            hint=f'add {WHERE} with namespace = "mypkg._vendor" and '
            'destination = "src/mypkg/_vendor"',
        )
    namespace = table.get("namespace")
    destination = table.get("destination")
    if not isinstance(namespace, str) or not isinstance(destination, str) or not destination:
        raise ConfigError(f"{WHERE} needs namespace and destination strings")
    problem = namespace_problem(namespace)
    if problem is not None:
        raise ConfigError(problem, hint=NAMESPACE_HINT)
    destination = confined_relpath(destination, f"{WHERE}.destination")
    dest = PurePosixPath(destination)
    if tuple(dest.parts[-len(namespace.split(".")) :]) != tuple(namespace.split(".")):
        raise ConfigError(
            f"{WHERE}: destination {destination!r} is not the directory of namespace {namespace!r}",
            hint="the destination must end with the namespace's path, e.g. "
            f"src/{namespace.replace('.', '/')}",
        )
    return namespace, destination


def _drop_rules(table: Mapping[str, Any]) -> tuple[DropRule, ...]:
    drop: list[DropRule] = []
    for item in table.get("drop", []):
        if isinstance(item, str):
            drop.append(DropRule(item))
        elif isinstance(item, Mapping) and isinstance(item.get("regex"), str):
            try:
                re.compile(item["regex"])
            except re.error as exc:
                raise ConfigError(f"{WHERE}.drop: bad regex {item['regex']!r}: {exc}") from None
            drop.append(DropRule(item["regex"], regex=True))
        else:
            raise ConfigError(f'{WHERE}.drop entries are globs or {{ regex = "..." }} tables')
    return tuple(drop)


def _substitutions(table: Mapping[str, Any]) -> tuple[Substitution, ...]:
    subs: list[Substitution] = []
    for item in table.get("substitute", []):
        if not (
            isinstance(item, Mapping)
            and isinstance(item.get("match"), str)
            and isinstance(item.get("replace"), str)
        ):
            raise ConfigError(f"{WHERE}.substitute entries need match and replace strings")
        try:
            re.compile(item["match"])
        except re.error as exc:
            raise ConfigError(f"{WHERE}.substitute: bad regex {item['match']!r}: {exc}") from None
        subs.append(Substitution(item["match"], item["replace"]))
    return tuple(subs)


def _license_overrides(table: Mapping[str, Any]) -> dict[str, LicenseOverride]:
    overrides: dict[str, LicenseOverride] = {}
    raw_over = table.get("license-overrides", {})
    if not isinstance(raw_over, Mapping):
        raise ConfigError(f"{WHERE}.license-overrides must be a table")
    for name, over in raw_over.items():
        if not isinstance(over, Mapping) or not all(
            k in ("directory", "url", "file", "expression") and isinstance(v, str)
            for k, v in over.items()
        ):
            raise ConfigError(
                f"{WHERE}.license-overrides.{name} takes directory, url, file, expression strings"
            )
        overrides[_canon(name)] = LicenseOverride(**dict(over))
    return overrides


def _modes(table: Mapping[str, Any]) -> tuple[RewriteMode, StubPolicy]:
    """The rewrite mode and the stub policy (and a check of rewrite-consumer)."""
    try:
        mode = RewriteMode(table.get("rewrite-mode", "syntax"))
    except ValueError:
        raise ConfigError(
            f"{WHERE}.rewrite-mode must be one of: " + ", ".join(m.value for m in RewriteMode)
        ) from None
    if not isinstance(table.get("rewrite-consumer", False), bool):
        raise ConfigError(f"{WHERE}.rewrite-consumer must be true or false")
    try:
        stubs = StubPolicy(table.get("stubs", "untyped"))
    except ValueError:
        raise ConfigError(
            f"{WHERE}.stubs must be one of: " + ", ".join(p.value for p in StubPolicy)
        ) from None
    return mode, stubs


def vendoring_config(config: Config) -> VendoringConfig:
    """The vendoring settings of a project's configuration."""
    return parse_vendoring_config(config.section("vendoring"))


def _canon(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))
