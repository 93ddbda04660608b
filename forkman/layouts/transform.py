"""The namespace layout: turn a pristine wheel tree into privately vendored modules.

The core fetches a release (a wheel: the namespace layout vendors what
``pip install`` would put in site-packages), unpacks it into a pristine tree
and calls :func:`transform_tree`, which writes the fork's part of the shared
namespace directory into `out`:

1. the importable top-level packages and modules (``*.data/purelib`` and
   ``platlib`` merged in; ``dist-info`` and the other ``.data`` folders left
   out), never a name listed in ``protected-files``;
2. ``drop`` patterns removed (globs or regular expressions, relative to the
   namespace directory);
   (here, and only to carry over patches written for the vendoring tool, which
   applies its patches at this point: a ``before_rewrite`` hook)
3. substitutions, then imports of every vendored module rewritten into the
   namespace (:mod:`forkman.layouts.rewrite`);
4. license files: the wheel's ``dist-info/licenses`` (or ``LICENSE*`` /
   ``COPYING*`` files in its dist-info), else the sdist's, else an override
   (``license-source = "archive"``: every file of the release archive whose
   path says LICENSE or COPYING, as the vendoring tool takes them);
5. typing stubs ``<module>.pyi`` for modules that do not ship ``py.typed``.

It returns the record the core stores as the lock section ``namespace``:
``members`` (the top-level names this fork owns in the namespace directory;
the fork's tree hash covers only them), ``modules`` (its importable names)
and ``transform`` (what was applied). :func:`place_members` then installs
the members into the shared directory; :func:`members_tree_hash` hashes them.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from ..core.errors import BadInput
from ..core.fs import atomic_write_bytes
from ..core.observer import Observer
from ..model.config import Config
from ..model.vendoring import VendoringConfig, vendoring_config
from ..store.treehash import hash_manifest, scan_tree
from .rewrite import rewrite_source
from .wheeltree import (
    EXTENSION_SUFFIXES,
    SdistFetcher,
    apply_drops,
    copy_importable,
    dist_info_dir,
    find_licenses,
    read_metadata,
    rewrite_imports,
    walk,
    write_licenses,
    write_stubs,
)
from .wheeltree import TransformCache as TransformCache

SECTION = "namespace"


def transform_tree(
    pristine: Path,
    out: Path,
    *,
    fork_name: str,
    config: Config,
    observer: Observer,
    other_modules: Iterable[str] = (),
    project_root: Path | None = None,
    fetch_sdist: SdistFetcher | None = None,
    cache: TransformCache | None = None,
    before_rewrite: Callable[[Path], None] | None = None,
    release_archive: Callable[[], Path] | None = None,
) -> dict[str, Any]:
    """Write fork `fork_name`'s part of the namespace directory from wheel tree `pristine`.

    `out` must not exist or be empty. `other_modules` are the importable
    names of the project's other namespace forks (their imports are rewritten
    too). `project_root` resolves ``license-overrides`` files; `fetch_sdist`
    downloads the sdist when the wheel carries no license file; `cache`
    remembers rewritten files and sdist licenses across runs;
    `before_rewrite` is called with `out` after the drops, before any
    substitution or rewriting (where the vendoring tool applies its patches);
    `release_archive` gives the release file itself (``license-source =
    "archive"``). Returns the lock section ``namespace``.
    """
    vcfg = vendoring_config(config)
    dist_info = dist_info_dir(pristine)
    meta = read_metadata(dist_info)
    distname = meta["name"] or fork_name
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise BadInput(f"{out} is not empty")
    # 1. importable content; .data/purelib|platlib merge into the root
    copied = copy_importable(pristine, out, vcfg.protected_files)
    if not copied.modules:
        raise BadInput(
            f"{fork_name}: the wheel has no importable top-level module",
            hint="the namespace layout vendors import packages; use the project layout",
        )
    if copied.protected:
        observer.warning(
            f"{fork_name}: left out {', '.join(copied.protected)}: protected in the namespace"
        )
    # 2. drops
    dropped = apply_drops(out, vcfg)
    modules = {m for m in copied.modules if any(out.glob(f"{m}*"))}
    if before_rewrite is not None:
        before_rewrite(out)
    # 3. rewriting
    all_modules = modules | set(other_modules)
    if vcfg.namespace.split(".", 1)[0] in all_modules:
        raise BadInput(
            f"namespace {vcfg.namespace} collides with the vendored module "
            f"{vcfg.namespace.split('.', 1)[0]}",
            hint="the namespace must live inside your own package",
        )
    rewritten = rewrite_imports(out, vcfg, all_modules, fork_name, cache)
    observer.step(
        fork_name,
        f"rewrote {rewritten.imports} imports in {rewritten.files} files into {vcfg.namespace}",
    )
    # 4. licenses
    override = vcfg.license_overrides.get(str(canonicalize_name(distname)))
    found = find_licenses(
        dist_info,
        vcfg,
        distname,
        meta["version"],
        override,
        cache=cache,
        fetch_sdist=fetch_sdist,
        project_root=project_root,
        release_archive=release_archive,
        limits=config.network,
    )
    licenses = write_licenses(
        out, distname, found, override, last_wins=vcfg.license_source == "archive"
    )
    if not licenses:
        observer.warning(
            f"{fork_name}: no license file found in the wheel"
            + ("" if fetch_sdist else " (sdist not consulted)")
        )
    # 5. typing stubs
    stubs = write_stubs(out, modules, vcfg)
    members = sorted(p.name for p in out.iterdir())
    transform: dict[str, Any] = {
        "namespace": vcfg.namespace,
        "destination": vcfg.destination,
        "distribution": distname,
        "rewrite-mode": vcfg.rewrite_mode.value,
        "rewritten-files": rewritten.files,
        "rewritten-imports": rewritten.imports,
        "substitutions": rewritten.substitutions,
        "dropped": dropped,
        **({"unrewritten": list(rewritten.unrewritten)} if rewritten.unrewritten else {}),
        "licenses": licenses,
        "stubs": stubs,
        "metadata": {k: v for k, v in meta.items() if k.startswith("license") and v},
    }
    if copied.protected:
        transform["protected-skipped"] = list(copied.protected)
    if copied.data:
        transform["data-skipped"] = list(copied.data)
    return {"members": members, "modules": sorted(modules), "transform": transform}


def wheel_modules(wheel: Path, config: Config) -> list[str]:
    """The importable names :func:`transform_tree` would vendor from `wheel`, read from
    its file list alone (no unpacking): top-level packages and modules of the wheel and of
    its ``.data/purelib|platlib``, minus protected names and those the drops remove.
    """
    vcfg = vendoring_config(config)
    protected = set(vcfg.protected_files)
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
    files: list[str] = []
    for name in names:
        top, _, rest = name.partition("/")
        if top.endswith(".data"):
            kind, _, inner = rest.partition("/")
            if kind in ("purelib", "platlib") and inner:
                files.append(inner)
        elif not top.endswith(".dist-info"):
            files.append(name)

    modules: set[str] = set()
    for rel in files:
        top, slash, _ = rel.partition("/")
        # the drops remove a package only when they match its folder itself
        if top in protected or any(rule.matches(top) for rule in vcfg.drop):
            continue
        if slash:
            if top.isidentifier():
                modules.add(top)
        elif top.endswith(".py"):
            modules.add(top[:-3])
        elif top.endswith(EXTENSION_SUFFIXES):
            modules.add(top.split(".", 1)[0])
    return sorted(modules)


def unrewritten_warning(fork_name: str, sections: Mapping[str, Any]) -> str | None:
    """A warning naming the imports a vendoring-compat transformation left as they are."""
    section = namespace_section(sections)
    transform = section.get("transform", {}) if section is not None else {}
    left = [str(x) for x in transform.get("unrewritten", [])]
    if not left:
        return None
    shown = ", ".join(left[:3]) + (", ..." if len(left) > 3 else "")
    return (
        f"{fork_name}: {len(left)} import(s) of the form `import a.b` are left as they are "
        f"({shown}): the vendoring tool's rules cannot rewrite them; a patch must change them "
        '(or set rewrite-mode = "syntax")'
    )


def namespace_section(sections: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``namespace`` lock section of an entry's sections, if any."""
    value = sections.get(SECTION)
    return value if isinstance(value, Mapping) else None


def members_tree_hash(directory: Path, members: Iterable[str]) -> str:
    """The tree hash of only `members` of the shared namespace `directory`."""
    wanted = set(members)
    others = {p.name: None for p in directory.iterdir() if p.name not in wanted}
    manifest, special = scan_tree(directory, exclude=others)
    if special:
        raise BadInput(f"{directory}: {special[0].path} is a {special[0].what}")
    return hash_manifest(manifest.values())


def member_moves(
    staged: Path,
    destination: Path,
    *,
    members: Iterable[str],
    previous: Iterable[str] = (),
    owned_by_others: Mapping[str, str] | None = None,
    protected: Iterable[str] = (),
) -> list[tuple[Path, Path | None]]:
    """The (target, new content or None to remove) pairs that install a fork's members.

    For the core's transaction (``txn.replace_path(target, source)`` for each
    pair): the fork's `previous` members go, its new `members` come from
    `staged`. Refuses, before anything moves, a member another fork owns
    (`owned_by_others`: member -> fork), a protected one, or one that exists
    but belongs to no fork.
    """
    new = list(members)
    old = [m for m in previous if m not in set(protected)]
    protected_set = set(protected)
    owners = owned_by_others or {}
    for member in new:
        if member in protected_set:
            raise BadInput(f"{member} is protected in {destination}; no fork may write it")
        if member in owners:
            raise BadInput(
                f"{member} in {destination} already belongs to fork {owners[member]}",
                hint="two forks cannot vendor the same top-level module",
            )
        target = destination / member
        if member not in old and (target.exists() or target.is_symlink()):
            raise BadInput(f"{target} exists and belongs to no fork; move it away first")
    moves: list[tuple[Path, Path | None]] = [(destination / m, None) for m in old if m not in new]
    moves += [(destination / m, staged / m) for m in new]
    return moves


def place_members(
    staged: Path,
    destination: Path,
    *,
    members: Iterable[str],
    previous: Iterable[str] = (),
    owned_by_others: Mapping[str, str] | None = None,
    protected: Iterable[str] = (),
) -> None:
    """Install a fork's `members` from `staged` into the shared `destination` (no transaction).

    See :func:`member_moves` for what is refused.
    """
    moves = member_moves(
        staged,
        destination,
        members=members,
        previous=previous,
        owned_by_others=owned_by_others,
        protected=protected,
    )
    destination.mkdir(parents=True, exist_ok=True)
    for target, source in moves:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        if source is not None:
            os.replace(source, target)


def namespace_modules(sections_by_fork: Mapping[str, Mapping[str, Any]], *, but: str) -> set[str]:
    """The importable names of every namespace fork except `but` (from lock sections)."""
    found: set[str] = set()
    for name, sections in sections_by_fork.items():
        section = namespace_section(sections)
        if name != but and section is not None:
            found.update(str(m) for m in section.get("modules", []))
    return found


def rewrite_consumer(
    project_root: Path, config: Config, modules: Iterable[str], observer: Observer
) -> list[str]:
    """Rewrite imports of `modules` in the consumer's own package (``rewrite-consumer``).

    The package is the namespace's parent directory, minus the namespace
    directory itself. Returns the files changed (relative to the project).
    """
    vcfg = vendoring_config(config)
    dest = project_root / vcfg.destination
    package = dest.parent
    changed: list[str] = []
    module_set = set(modules)
    for rel, path in walk(package):
        if not rel.endswith((".py", ".pyi")) or path.is_relative_to(dest) or not path.is_file():
            continue
        data = path.read_bytes()
        result = rewrite_source(
            data,
            modules=module_set,
            namespace=vcfg.namespace,
            filename=path.relative_to(project_root).as_posix(),
        )
        if result.data != data:
            atomic_write_bytes(path, result.data)
            changed.append(path.relative_to(project_root).as_posix())
    if changed:
        observer.step("consumer", f"rewrote imports in {len(changed)} files")
    return changed


def check_destination(project_root: Path, vcfg: VendoringConfig) -> None:
    """Refuse a namespace that collides with an existing module of the project."""
    dest = project_root / vcfg.destination
    if dest.with_suffix(".py").exists() or dest.is_file():
        raise BadInput(
            f"namespace {vcfg.namespace} collides with the module "
            f"{dest.with_suffix('.py').relative_to(project_root)}",
            hint="pick another namespace, e.g. a _vendor package no module uses",
        )
