"""``forkman migrate vendoring``: take over a project that vendors with the vendoring tool.

Reads ``[tool.vendoring]`` from the project's pyproject.toml and produces

* ``[tool.forkman.vendoring]``: namespace, destination, protected files,
  drops (``^...`` entries become ``{ regex = ... }``), substitutions,
  license directories and fallback URLs as ``license-overrides``, typing
  stubs, and the settings that make forkman reproduce the tool's output byte
  for byte (``rewrite-mode = "vendoring-compat"``,
  ``license-source = "archive"``);
* ``[tool.forkman.forks.NAME]`` per pinned requirement: ``requirement =
  "NAME==X"``, ``layout = "namespace"``;
* the patch series: each of the tool's patches is split per fork (by the
  top-level name under the destination that each file section touches),
  its paths made relative to the namespace directory, and written as
  ``patches/NAME/NNNN-<patch name>.patch`` (a bare diff gets a DEP-3 header
  naming where it came from). The first ``forkman sync`` forks each pin and
  imports these files as the fork's patch series.

The tool's ``sbom-file``, when it lies in the destination, stays the
project's file: it is added to the protected files, so no fork writes it.

Everything is validated and written to a staging area first; only then are
the patch folders moved into place and pyproject.toml edited (atomically).
The lock is written by the first ``forkman sync``, which fetches each pinned
release.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..core.errors import BadInput, ConfigError, NotFound
from ..core.fs import staging_dir
from ..layouts.rewrite import RewriteError, check_namespace
from ..model.config import edit_pyproject, fork_table, forkman_table
from ..model.project import Project
from ..model.vendoring import parse_vendoring_config
from ..series.patchfile import BEFORE_REWRITE, STAGE_FIELD, PatchHeader, parse_patch, render_patch

_DIFF_GIT = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class MigratedPatch:
    """One fork's share of one of the tool's patches."""

    source: str
    """The tool's patch file, relative to the project root."""
    fork: str
    """The fork it touches."""
    file: str
    """The written patch, relative to the project root."""


@dataclass(frozen=True)
class Migration:
    """What a migration produced (or would produce, for a dry run)."""

    namespace: str
    """The namespace the forks are vendored into."""
    destination: str
    """The namespace directory, relative to the project root."""
    pins: Mapping[str, str] = field(default_factory=dict)
    """Fork name -> exact version, from the requirements file."""
    modules: Mapping[str, str] = field(default_factory=dict)
    """Top-level name in the destination -> the fork that owns it (as far as known)."""
    patches: tuple[MigratedPatch, ...] = ()
    """The patch series written."""
    skipped: tuple[str, ...] = ()
    """Parts of patches left out, and why (protected files belong to the project)."""
    notes: tuple[str, ...] = ()
    """Settings that were not carried over as they were, and what became of them."""
    vendoring_table: Mapping[str, Any] = field(default_factory=dict)
    """The ``[tool.forkman.vendoring]`` table written."""


def _table(project: Project) -> dict[str, Any]:
    try:
        data = tomllib.loads(project.pyproject.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"{project.pyproject} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{project.pyproject} is not valid TOML: {exc}") from None
    table = data.get("tool", {}).get("vendoring")
    if not isinstance(table, dict):
        raise ConfigError(
            f"{project.pyproject} has no [tool.vendoring] table",
            hint="forkman migrate vendoring takes over projects that use the vendoring tool",
        )
    for key in ("destination", "namespace", "requirements"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise ConfigError(f"[tool.vendoring] needs a {key} string")
    tool_forkman = data.get("tool", {}).get("forkman", {})
    if isinstance(tool_forkman, dict) and "vendoring" in tool_forkman:
        raise BadInput(
            "[tool.forkman.vendoring] exists already: this project was migrated",
            hint="remove [tool.forkman.vendoring] to migrate again",
        )
    return table


def parse_pins(path: Path, rel: str) -> dict[str, str]:
    """Exact pins (canonical name -> version) of a vendoring requirements file."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise BadInput(f"{rel}:{number}: not a requirement: {raw.strip()!r} ({exc})") from None
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
            raise BadInput(
                f"{rel}:{number}: {line!r} is not an exact pin",
                hint="the vendoring tool's requirements pin each package with ==",
            )
        pins[str(canonicalize_name(req.name))] = specs[0].version
    if not pins:
        raise BadInput(f"{rel} names no packages")
    return pins


def _owner_names(pins: Mapping[str, str], directories: Mapping[str, str]) -> dict[str, str]:
    """Top-level destination names each fork is known to own."""
    owners: dict[str, str] = {}
    for name in pins:
        owners[name.replace("-", "_")] = name
        owners[name] = name
    for dist, folder in directories.items():
        owners[folder] = str(canonicalize_name(dist))
    return owners


def _owner(top: str, owners: Mapping[str, str]) -> str | None:
    for candidate in (top, top.split(".", 1)[0], top.lower(), top.split(".", 1)[0].lower()):
        if candidate in owners:
            return owners[candidate]
        canon = str(canonicalize_name(candidate))
        if canon in owners:
            return owners[canon]
    return None


def split_patch(
    text: str, destination: str, owners: Mapping[str, str], protected: set[str]
) -> tuple[dict[str, str], list[str]]:
    """Split a git patch into per-fork patches relative to the destination."""
    dest = destination.strip("/") + "/"
    starts = [m.start() for m in _DIFF_GIT.finditer(text)]
    if not starts:
        raise BadInput("not a git patch (no 'diff --git' header)")
    preamble = text[: starts[0]]
    per_fork: dict[str, list[str]] = {}
    skipped: list[str] = []
    for begin, end in zip(starts, [*starts[1:], len(text)], strict=True):
        section = text[begin:end]
        m = _DIFF_GIT.match(section)
        assert m is not None
        paths = {m.group(1), m.group(2)}
        if not all(p.startswith(dest) for p in paths):
            raise BadInput(f"it changes {m.group(2)}, outside {destination}")
        rel = m.group(2)[len(dest) :]
        top = rel.split("/", 1)[0]
        if rel in protected:
            skipped.append(f"{rel} (protected: the project's own file)")
            continue
        owner = _owner(top, owners)
        if owner is None:
            raise BadInput(
                f"cannot tell which pinned package provides {top} (changed by the patch)",
                hint="map it with [tool.vendoring.license.directories] PACKAGE = "
                f'"{top}" and migrate again',
            )
        for p in paths:
            section = section.replace(f"a/{p}", f"a/{p[len(dest) :]}").replace(
                f"b/{p}", f"b/{p[len(dest) :]}"
            )
        per_fork.setdefault(owner, []).append(section)
    return {fork: preamble + "".join(parts) for fork, parts in per_fork.items()}, skipped


def _sbom_member(table: Mapping[str, Any], destination: str) -> str | None:
    """The name of the tool's SBOM file in the destination, when it writes one there."""
    sbom = table.get("sbom-file")
    if not isinstance(sbom, str) or not sbom:
        return None
    rel = PurePosixPath(sbom)
    dest = PurePosixPath(destination)
    if rel.parent != dest:
        return None
    return rel.name


def _with_header(text: str, rel: str) -> str:
    """The tool's patch `text` as a forkman patch file, marked as written before rewriting.

    Its header (DEP-3, a ``git format-patch`` mail, or none: then one naming the
    tool's file) becomes DEP-3, with ``Forkman-Stage: before-rewrite``: the
    vendoring tool applies its patches before it rewrites imports, so the
    first ``forkman sync`` carries them over to the transformed tree when it
    imports them (:func:`forkman.operations.patchimport.import_patches`).
    """
    header, body = parse_patch(text)
    if not header.description:
        header = PatchHeader(
            description=f"{PurePosixPath(rel).stem}\nThe vendoring tool's patch {rel}, "
            "split per package by forkman migrate vendoring."
        )
    extra = tuple(f for f in header.extra if f[0].lower() != STAGE_FIELD.lower())
    header = replace(header, extra=(*extra, (STAGE_FIELD, BEFORE_REWRITE)))
    return render_patch(header, body)


def _forkman_vendoring_table(table: Mapping[str, Any], destination: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "namespace": table["namespace"],
        "destination": destination,
        "rewrite-mode": "vendoring-compat",
        "license-source": "archive",
    }
    protected = [str(p) for p in table.get("protected-files", [])]
    sbom = _sbom_member(table, destination)
    if sbom is not None and sbom not in protected:
        protected.append(sbom)
    if protected:
        out["protected-files"] = protected
    trans = table.get("transformations", {})
    drops: list[Any] = []
    for item in trans.get("drop", []):
        drops.append({"regex": item} if str(item).startswith("^") else str(item).rstrip("/"))
    if drops:
        out["drop"] = drops
    if trans.get("substitute"):
        out["substitute"] = [
            {"match": s["match"], "replace": s["replace"]} for s in trans["substitute"]
        ]
    lic = table.get("license", {})
    overrides: dict[str, dict[str, str]] = {}
    for dist, folder in lic.get("directories", {}).items():
        overrides.setdefault(str(canonicalize_name(dist)), {})["directory"] = folder
    for dist, url in lic.get("fallback-urls", {}).items():
        overrides.setdefault(str(canonicalize_name(dist)), {})["url"] = url
    if overrides:
        out["license-overrides"] = overrides
    if "typing-stubs" in table:
        out["typing-stubs"] = {k: list(v) for k, v in table["typing-stubs"].items()}
    return out


def _checked_table(project: Project, table: Mapping[str, Any]) -> tuple[str, str, Path]:
    """(destination, namespace, requirements file) of ``[tool.vendoring]``, checked."""
    root = project.root
    destination = PurePosixPath(str(table["destination"]).rstrip("/")).as_posix()
    namespace = str(table["namespace"])
    try:
        check_namespace(namespace)
    except RewriteError as exc:
        raise BadInput(f"[tool.vendoring] {exc.message}") from None
    req_rel = str(table["requirements"])
    req_path = root / req_rel
    if not req_path.is_file():
        raise NotFound(
            f"[tool.vendoring] requirements file {req_rel} does not exist",
            hint="fix [tool.vendoring] requirements, or restore the file",
        )
    patches_rel = table.get("patches-dir")
    if patches_rel is not None and not (root / str(patches_rel)).is_dir():
        raise NotFound(f"[tool.vendoring] patches-dir {patches_rel} does not exist")
    dest_path = root / destination
    if dest_path.with_suffix(".py").exists() or dest_path.is_file():
        raise BadInput(
            f"namespace {namespace} collides with the module "
            f"{dest_path.with_suffix('.py').relative_to(root)}",
            hint="pick a namespace no module of the project uses",
        )
    return destination, namespace, req_path


def _sbom_notes(table: Mapping[str, Any], destination: str) -> list[str]:
    """What becomes of the tool's SBOM file."""
    if not table.get("sbom-file"):
        return []
    sbom = _sbom_member(table, destination)
    return [
        f"sbom-file {table['sbom-file']}: "
        + (
            "kept as the project's file (protected)"
            if sbom is not None
            else "not migrated (outside the destination)"
        )
        + "; `forkman sbom` writes an SBOM of the forks with their provenance"
    ]


def _split_patches(
    root: Path,
    patches_rel: str | None,
    destination: str,
    owners: Mapping[str, str],
    protected: set[str],
) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """The tool's patches split per fork ({fork: [(tool's file, text)]}), and what was skipped."""
    split: dict[str, list[tuple[str, str]]] = {}
    skipped: list[str] = []
    if patches_rel is None:
        return split, skipped
    for patch in sorted((root / patches_rel).glob("*.patch")):
        rel = patch.relative_to(root).as_posix()
        try:
            parts, skip = split_patch(
                _with_header(patch.read_text(encoding="utf-8"), rel),
                destination,
                owners,
                protected,
            )
        except BadInput as exc:
            raise BadInput(f"{rel}: {exc.message}", hint=exc.hint) from None
        skipped += [f"{rel}: {s}" for s in skip]
        for fork, text in sorted(parts.items()):
            split.setdefault(fork, []).append((rel, text))
    return split, skipped


def _numbered(project: Project, split: Mapping[str, list[tuple[str, str]]]) -> list[MigratedPatch]:
    """Where each split patch goes in its fork's series (no series folder may exist yet)."""
    patches_root = project.root / project.config.patches_dir
    for fork in split:
        if (patches_root / fork).exists():
            raise BadInput(
                f"{project.relpath(patches_root / fork)} exists already",
                hint="move it away, or remove it if it is left from an earlier attempt",
            )
    migrated: list[MigratedPatch] = []
    for fork, items in sorted(split.items()):
        for number, (source, _) in enumerate(items, 1):
            stem = PurePosixPath(source).stem
            name = f"{number:04d}-{re.sub(r'[^A-Za-z0-9._-]+', '-', stem)}.patch"
            migrated.append(
                MigratedPatch(source, fork, f"{project.config.patches_dir}/{fork}/{name}")
            )
    return migrated


def migrate_vendoring(project: Project, *, dry_run: bool = False) -> Migration:
    """Turn ``[tool.vendoring]`` into forkman configuration and patch series."""
    table = _table(project)
    destination, namespace, req_path = _checked_table(project, table)
    pins = parse_pins(req_path, str(table["requirements"]))
    if namespace.split(".", 1)[0] in {p.replace("-", "_") for p in pins}:
        raise BadInput(f"namespace {namespace} collides with the vendored package {namespace}")
    vtable = _forkman_vendoring_table(table, destination)
    try:
        parse_vendoring_config(vtable)
    except ConfigError as exc:
        raise BadInput(f"[tool.vendoring] cannot be expressed: {exc.message}") from None
    existing = project.config.forks
    clash = sorted(set(pins) & set(existing))
    if clash:
        raise BadInput(f"[tool.forkman.forks] already has {', '.join(clash)}")
    owners = _owner_names(pins, table.get("license", {}).get("directories", {}))
    protected = set(vtable.get("protected-files", []))
    patches_rel = table.get("patches-dir")
    split, skipped = _split_patches(
        project.root,
        None if patches_rel is None else str(patches_rel),
        destination,
        owners,
        protected,
    )
    migrated = _numbered(project, split)
    result = Migration(
        namespace=namespace,
        destination=destination,
        pins=pins,
        modules={k: v for k, v in sorted(owners.items()) if k.isidentifier()},
        patches=tuple(migrated),
        skipped=tuple(skipped),
        notes=tuple(_sbom_notes(table, destination)),
        vendoring_table=vtable,
    )
    if not dry_run:
        _write(project, pins, vtable, split, migrated)
    return result


def _write(
    project: Project,
    pins: Mapping[str, str],
    vtable: Mapping[str, Any],
    split: Mapping[str, list[tuple[str, str]]],
    migrated: Sequence[MigratedPatch],
) -> None:
    """Put the split patch series in place and write the configuration (all or nothing)."""
    patches_root = project.root / project.config.patches_dir

    def change(doc: tomlkit.TOMLDocument) -> None:
        ftable = forkman_table(doc)
        if "prefer" not in ftable:
            ftable["prefer"] = "wheel"
        vt = tomlkit.table()
        for key, value in vtable.items():
            vt[key] = value
        ftable["vendoring"] = vt
        for fork, version in sorted(pins.items()):
            ft = fork_table(doc, fork)
            assert ft is not None
            ft["requirement"] = f"{fork}=={version}"
            ft["layout"] = "namespace"

    with staging_dir(project.ensure_state_dir(), "migrate-") as stage:
        by_fork: dict[str, list[MigratedPatch]] = {}
        for mp in migrated:
            by_fork.setdefault(mp.fork, []).append(mp)
        for fork, fork_patches in by_fork.items():
            texts = [t for _, t in split[fork]]
            for mp, text in zip(fork_patches, texts, strict=True):
                target = stage / fork / PurePosixPath(mp.file).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        moved: list[Path] = []
        try:
            for fork in sorted(by_fork):
                patches_root.mkdir(parents=True, exist_ok=True)
                (stage / fork).rename(patches_root / fork)
                moved.append(patches_root / fork)
            edit_pyproject(project.pyproject, change)
        except BaseException:
            for path in moved:
                shutil.rmtree(path, ignore_errors=True)
            raise
