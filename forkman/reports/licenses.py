"""Each fork's license: an SPDX expression where it can be known, and its files.

Where the expression comes from, in order of trust:

1. a ``license-overrides`` entry's ``expression`` (the project said so);
2. core metadata ``License-Expression`` (PEP 639), or ``[project] license``
   as a string in the fork's pyproject.toml;
3. trove classifiers (``License :: OSI Approved :: MIT License``), when they
   name exactly one license and it has one SPDX id;
4. the text of the license files (MIT, Apache-2.0, BSD-2/3-Clause, ISC,
   MPL-2.0, the GPL family, PSF-2.0, Unlicense) read with the classifiers:
   every license found is part of the expression, joined by ``OR`` when a
   file offers a choice ("either of the licenses", "dual licensed") and by
   ``AND`` otherwise; a classifier like ``BSD License`` that no file settles
   leaves the license unknown.

``[tool.forkman.licenses] deny = ["GPL-3.0-only", ...]`` refuses forks whose
expression cannot be satisfied without a denied license (an ``OR`` is fine
when one branch is allowed); ``deny-unknown = true`` also refuses forks whose
license could not be determined.
"""

from __future__ import annotations

import email.parser
import enum
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..layouts.transform import namespace_section
from ..model.config import Config
from ..model.lock import Lock, LockEntry
from ..model.project import Project

CLASSIFIERS: Mapping[str, str] = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "Apache Software License": "Apache-2.0",
    "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "The Unlicense (Unlicense)": "Unlicense",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "Zope Public License": "ZPL-2.1",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
}

# (SPDX id, patterns that must all occur, patterns that must not occur) on normalized text
_TEXTS: Sequence[tuple[str, Sequence[str], Sequence[str]]] = (
    ("Apache-2.0", ("apache license", "version 2.0"), ()),
    ("MPL-2.0", ("mozilla public license version 2.0",), ()),
    ("AGPL-3.0-only", ("gnu affero general public license", "version 3"), ()),
    ("LGPL-3.0-only", ("gnu lesser general public license", "version 3"), ()),
    ("LGPL-2.1-only", ("gnu lesser general public license", "version 2.1"), ()),
    ("GPL-3.0-only", ("gnu general public license", "version 3"), ("lesser", "affero")),
    ("GPL-2.0-only", ("gnu general public license", "version 2"), ("lesser", "affero")),
    ("PSF-2.0", ("python software foundation", "license agreement"), ()),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",), ()),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any",), ()),
    ("MIT", ("permission is hereby granted, free of charge",), ()),
    (
        "BSD-3-Clause",
        ("redistribution and use in source and binary forms", "neither the name"),
        (),
    ),
    (
        "BSD-3-Clause",
        ("redistribution and use in source and binary forms", "may not be used to endorse"),
        (),
    ),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",), ()),
)

_LICENSE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|COPYRIGHT)", re.IGNORECASE)


class LicenseOrigin(enum.Enum):
    """Where a fork's SPDX expression was learned."""

    OVERRIDE = "override"
    METADATA = "metadata"
    CLASSIFIER = "classifier"
    FILE_TEXT = "file-text"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ForkLicense:
    """One fork's license."""

    fork: str
    """The fork's name."""
    version: str
    """The fork's upstream version."""
    expression: str | None
    """The SPDX expression, None when unknown."""
    origin: LicenseOrigin
    """How the expression was learned."""
    files: tuple[str, ...]
    """License files in the vendored tree, relative to the project root."""
    refused: bool = False
    """Whether the project's license policy refuses this fork."""
    reason: str = ""
    """Why it is refused."""


@dataclass(frozen=True)
class LicensePolicy:
    """``[tool.forkman.licenses]``."""

    deny: frozenset[str] = frozenset()
    """SPDX ids (case-insensitive) the project refuses."""
    deny_unknown: bool = False
    """Refuse forks whose license is unknown."""


def license_policy(config: Config) -> LicensePolicy:
    """The project's license policy."""
    table = config.section("licenses")
    deny = table.get("deny", [])
    if not isinstance(deny, list) or not all(isinstance(d, str) for d in deny):
        raise ConfigError("[tool.forkman.licenses].deny must be a list of SPDX ids")
    unknown = table.get("deny-unknown", False)
    if not isinstance(unknown, bool):
        raise ConfigError("[tool.forkman.licenses].deny-unknown must be true or false")
    return LicensePolicy(frozenset(d.lower() for d in deny), unknown)


def classify_text(text: str) -> str | None:
    """The SPDX id a license text is recognised as, or None."""
    norm = " ".join(text.lower().split())
    for spdx, must, must_not in _TEXTS:
        if all(m in norm for m in must) and not any(m in norm for m in must_not):
            return spdx
    return None


def _license_classifiers(classifiers: Iterable[str]) -> tuple[set[str], set[str]]:
    """(SPDX ids of the known license classifiers, names of the others)."""
    known, other = set(), set()
    for c in classifiers:
        if not c.startswith("License ::") or c.strip() == "License :: OSI Approved":
            continue
        leaf = c.rsplit(" :: ", 1)[-1]
        if leaf in CLASSIFIERS:
            known.add(CLASSIFIERS[leaf])
        else:
            other.add(leaf)
    return known, other


def from_classifiers(classifiers: Iterable[str]) -> str | None:
    """An SPDX id when the license classifiers name exactly one license, a known one.

    A classifier with no single SPDX id (``BSD License``) beside a known one
    (``Apache Software License``) decides nothing: the project has two
    licenses, and the files say which and how they combine.
    """
    known, other = _license_classifiers(classifiers)
    return known.pop() if len(known) == 1 and not other else None


# a license file that offers a choice between licenses (packaging's LICENSE: "under the
# terms of *either* of the licenses found in LICENSE.APACHE or LICENSE.BSD")
_CHOICE = re.compile(
    r"\beither of\b|\bdual[- ]licen[cs]ed\b|\bat your (?:option|choice)\b|\beither license\b"
)
# classifiers without one SPDX id, and the ids of their family a license file may settle
_FAMILIES: Mapping[str, str] = {"BSD License": "BSD-", "GNU General Public License (GPL)": "GPL-"}


def _from_files_and_classifiers(texts: Sequence[str], classifiers: Iterable[str]) -> str | None:
    """An expression from the license files' texts, read with the classifiers.

    Every license a file's text is recognised as, or a known classifier names,
    is part of it; a classifier without one SPDX id must be settled by a file
    of its family, or the license is unknown. The licenses combine with ``OR``
    when a file offers a choice between them, with ``AND`` otherwise.
    """
    # emphasis marks (``*either*``) are not words
    normalized = [" ".join(re.sub(r"[*_]", "", t).lower().split()) for t in texts]
    found = {spdx for spdx in map(classify_text, texts) if spdx is not None}
    known, other = _license_classifiers(classifiers)
    for name in other:
        family = _FAMILIES.get(name)
        if family is None or not any(i.startswith(family) for i in found):
            return None
    ids = sorted(found | known)
    if not ids:
        return None
    choice = any(_CHOICE.search(t) for t in normalized)
    return (" OR " if choice else " AND ").join(ids)


_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.+:-]+)")


def _parse(expr: str) -> Any:
    tokens: list[str] = _TOKEN.findall(expr)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> Any:
        tok = take()
        if tok == "(":
            node = disjunction()
            if peek() == ")":
                take()
            return node
        if peek() is not None and peek().upper() == "WITH":  # type: ignore[union-attr]
            take()
            take()  # the exception does not change which license applies
        return tok

    def conjunction() -> Any:
        node = atom()
        while peek() is not None and peek().upper() == "AND":  # type: ignore[union-attr]
            take()
            node = ("AND", node, atom())
        return node

    def disjunction() -> Any:
        node = conjunction()
        while peek() is not None and peek().upper() == "OR":  # type: ignore[union-attr]
            take()
            node = ("OR", node, conjunction())
        return node

    return disjunction()


def acceptable(expression: str, deny: frozenset[str]) -> bool:
    """Whether `expression` can be complied with without a license in `deny`."""

    def ok(node: Any) -> bool:
        if isinstance(node, str):
            return node.lower().removesuffix("+") not in deny and node.lower() not in deny
        op, left, right = node
        return ok(left) and ok(right) if op == "AND" else ok(left) or ok(right)

    try:
        return ok(_parse(expression))
    except IndexError:
        return not any(tok.lower() in deny for tok in _TOKEN.findall(expression))


def _dist_metadata(tree: Path) -> tuple[dict[str, Any], list[Path]]:
    """License fields and files of a project-layout tree (sdist, wheel or source checkout)."""
    meta: dict[str, Any] = {}
    candidates = [tree / "PKG-INFO", *sorted(tree.glob("*.dist-info/METADATA"))]
    for path in candidates:
        if path.is_file():
            msg = email.parser.BytesParser().parsebytes(path.read_bytes())
            if msg.get("License-Expression"):
                meta["license-expression"] = str(msg["License-Expression"]).strip()
            meta["license-classifiers"] = [
                c for c in msg.get_all("Classifier", []) if c.startswith("License ::")
            ]
            break
    pyproject = tree / "pyproject.toml"
    if "license-expression" not in meta and pyproject.is_file():
        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            project = {}
        if isinstance(project.get("license"), str):
            meta["license-expression"] = project["license"]
        classifiers = project.get("classifiers", [])
        if "license-classifiers" not in meta and isinstance(classifiers, list):
            meta["license-classifiers"] = [str(c) for c in classifiers]
    files = [p for p in sorted(tree.iterdir()) if p.is_file() and _LICENSE_FILE.match(p.name)]
    for folder in (tree / "LICENSES", *sorted(tree.glob("*.dist-info/licenses"))):
        if folder.is_dir():
            files += [p for p in sorted(folder.rglob("*")) if p.is_file()]
    return meta, files


def fork_license(project: Project, entry: LockEntry, policy: LicensePolicy) -> ForkLicense:
    """Determine fork `entry`'s license from its vendored tree and lock sections."""
    root = project.root
    section = namespace_section(entry.sections)
    override_expr: str | None = None
    if section is not None:
        transform = section.get("transform", {})
        meta = dict(transform.get("metadata", {}))
        base = root / entry.path
        files = [base / str(item["file"]) for item in transform.get("licenses", [])]
        from ..model.vendoring import vendoring_config

        try:
            overrides = vendoring_config(project.config).license_overrides
        except ConfigError:
            overrides = {}
        over = overrides.get(entry.name)
        override_expr = over.expression if over else None
    else:
        tree = root / entry.path
        meta, files = _dist_metadata(tree) if tree.is_dir() else ({}, [])
        raw = project.config.policy(entry.name).raw.get("license")
        override_expr = raw if isinstance(raw, str) else None
    expression: str | None
    if override_expr:
        expression, origin = override_expr, LicenseOrigin.OVERRIDE
    elif meta.get("license-expression"):
        expression, origin = str(meta["license-expression"]), LicenseOrigin.METADATA
    elif (cl := from_classifiers(meta.get("license-classifiers", []))) is not None:
        expression, origin = cl, LicenseOrigin.CLASSIFIER
    else:
        texts = [p.read_text(encoding="utf-8", errors="replace") for p in files if p.is_file()]
        expression = _from_files_and_classifiers(texts, meta.get("license-classifiers", []))
        origin = LicenseOrigin.FILE_TEXT if expression else LicenseOrigin.UNKNOWN
    refused, reason = False, ""
    if expression is None:
        if policy.deny_unknown:
            refused, reason = True, "license unknown and deny-unknown = true"
    elif not acceptable(expression, policy.deny):
        refused, reason = True, f"{expression} needs a denied license"
    rel = tuple(p.relative_to(root).as_posix() for p in files if p.is_relative_to(root))
    return ForkLicense(
        entry.name, entry.version, expression, origin, rel, refused=refused, reason=reason
    )


def fork_licenses(project: Project, lock: Lock | None = None) -> list[ForkLicense]:
    """The license of every fork of `project`."""
    policy = license_policy(project.config)
    return [fork_license(project, e, policy) for e in (lock or project.load_lock())]
