"""Which release file to fork: requirement parsing and release selection.

:func:`parse_requirement` reads a requirement (``attrs==23.1.0``);
:func:`select_release` picks, among an index's files, the newest version it
allows, the preferred kind of distribution first (PEP 440, PEP 592 yanks).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..core.errors import BadInput, NotFound
from .interface import DistKind, ReleaseFile

_SPEC_EXAMPLE = "e.g. 'attrs==23.1.0', 'packaging>=24,<25' or 'attrs'"


def _pinned_versions(specifier: SpecifierSet) -> tuple[set[Version], set[str]]:
    """Versions the specifier pins exactly (== without wildcard, or ===)."""
    exact: set[Version] = set()
    arbitrary: set[str] = set()
    for spec in specifier:
        if spec.operator == "===":
            arbitrary.add(spec.version)
        elif spec.operator == "==" and not spec.version.endswith(".*"):
            with contextlib.suppress(InvalidVersion):
                exact.add(Version(spec.version))
    return exact, arbitrary


@functools.cache
def _host_tags() -> dict[Any, int]:
    """This interpreter's wheel tags, most specific first (their rank)."""
    from packaging.tags import sys_tags

    ranks: dict[Any, int] = {}
    for rank, tag in enumerate(sys_tags()):
        ranks.setdefault(tag, rank)
    return ranks


def _file_rank(file: ReleaseFile, prefer: DistKind) -> tuple[int, int, int, str]:
    """Sort key: the preferred kind first; a pure wheel, then the wheel this interpreter
    would install, then other wheels; the ``.tar.gz`` sdist before others."""
    kind_rank = 0 if file.kind is prefer else 1
    host = 0
    if file.kind is DistKind.WHEEL:
        tags = file.filename[: -len(".whl")].split("-")[-3:]
        pure = tags[1:] == ["none", "any"] and tags[0] in ("py3", "py2.py3")
        detail = 0 if pure else 1
        if not pure:
            try:
                wheel_tags = parse_wheel_filename(file.filename)[3]
            except InvalidWheelFilename:
                wheel_tags = frozenset()
            ranks = _host_tags()
            host = min((ranks[t] for t in wheel_tags if t in ranks), default=len(ranks) + 1)
    else:
        detail = 0 if file.filename.endswith(".tar.gz") else 1
    return kind_rank, detail, host, file.filename


def select_release(
    files: Sequence[ReleaseFile],
    specifier: SpecifierSet,
    *,
    prereleases: bool,
    prefer: DistKind,
    name: str = "",
) -> ReleaseFile:
    """The file to fork: newest version matching `specifier`, preferred kind first.

    Yanked files count only for an exact pin of their version (PEP 592).
    Pre-releases count only when `prereleases` is set or the specifier names
    one. Raises :class:`NotFound` listing what is available otherwise.
    """
    label = name or "the package"
    exact, arbitrary = _pinned_versions(specifier)
    allow_pre = prereleases or bool(specifier.prereleases)
    by_version: dict[Version, list[ReleaseFile]] = {}
    for f in files:
        by_version.setdefault(f.version, []).append(f)
    only_pre: list[Version] = []
    only_yanked: list[Version] = []
    for version in sorted(by_version, reverse=True):
        if not specifier.contains(version, prereleases=True):
            continue
        if version.is_prerelease and not allow_pre:
            only_pre.append(version)
            continue
        pinned = version in exact or str(version) in arbitrary
        usable = [f for f in by_version[version] if pinned or not f.yanked]
        if not usable:
            only_yanked.append(version)
            continue
        return min(usable, key=lambda f: _file_rank(f, prefer))
    wanted = str(specifier) or "any version"
    if not by_version:
        raise NotFound(f"{label} has no sdist or wheel files on the index")
    newest = sorted(by_version, reverse=True)[:8]
    message = f"no release of {label} matches {wanted!r}"
    details = [f"newest available: {', '.join(str(v) for v in newest)}"]
    if only_pre:
        details.append(
            f"{', '.join(str(v) for v in only_pre[:5])} would match but "
            f"{'is a pre-release' if len(only_pre) == 1 else 'are pre-releases'}"
        )
    if only_yanked:
        details.append(
            f"{', '.join(str(v) for v in only_yanked[:5])} would match but "
            f"{'is' if len(only_yanked) == 1 else 'are'} yanked"
        )
    hint = "choose one of the available versions"
    if only_pre:
        hint += "; allow pre-releases with --pre (or prereleases = true in [tool.forkman])"
    if only_yanked:
        hint += "; a yanked release is used only when pinned exactly with '=='"
    raise NotFound(f"{message} ({'; '.join(details)})", hint=hint)


# -- requirement parsing ------------------------------------------------------------


def parse_requirement(spec: str) -> tuple[str, SpecifierSet]:
    """The canonical name and version specifier of `spec` (extras are ignored)."""
    text = spec.strip()
    if not text:
        raise BadInput("empty requirement", hint=f"give a package and version, {_SPEC_EXAMPLE}")
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise BadInput(
            f"{spec!r} is not a valid requirement: {str(exc).splitlines()[0]}",
            hint=f"give a package and version, {_SPEC_EXAMPLE}; "
            "git upstreams look like git+https://host/org/repo@v1.2.0",
        ) from exc
    if req.url:
        raise BadInput(
            f"{spec!r} is a URL requirement, which forkman does not fetch from an index",
            hint=f"name a release on the index, {_SPEC_EXAMPLE}; for git upstreams use "
            "git+https://host/org/repo@ref",
        )
    if req.marker is not None:
        raise BadInput(
            f"{spec!r} has an environment marker; a fork is not tied to an environment",
            hint=f"drop the part after ';', {_SPEC_EXAMPLE}",
        )
    return canonicalize_name(req.name), req.specifier
