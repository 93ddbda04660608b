"""`forkman verify`: rebuild each fork from its recorded source and compare.

The proof that a vendored tree is exactly upstream plus what the lock
records: the recorded file is re-resolved through the configured index (the
lock's index must be a configured one, and the index must still announce the
file with the recorded sha256, not yanked; the lock's own ``url`` is never
fetched), then taken from the verified download cache or downloaded from the
URL the index gives (its sha256 checked), or the recorded git commit exported;
it is unpacked with the same safety rules, its tree hash compared with the
lock's upstream tree; the recorded transformation and patches are applied
in order and the result compared with the lock's vendored tree and with the
tree actually in the project.
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from ..core.errors import ForkmanError, IntegrityError
from ..core.observer import NullObserver, Observer
from ..core.paths import protected_names
from ..gate.check import (
    CheckReport,
    bytecode_findings,
    explain_tree,
    ignored_untracked,
    lock_fits_config,
    members_of,
    other_modules_of,
    save_manifest,
    scan_fork,
)
from ..model.lock import GitSource, IndexSource, LockEntry
from ..model.project import Project
from ..series.apply import apply_patch_file
from ..store.treehash import TreeEntry, file_digest, hash_manifest, scan_tree
from .forks import require_fork
from .upstream import FetchedUpstream
from .vendor import build_vendored


class VerifyStage(enum.Enum):
    """Where a rebuild stopped agreeing with the lock."""

    SOURCE = "source"
    """The recorded file or commit could not be fetched or did not match its pin."""
    UPSTREAM = "upstream"
    """The unpacked upstream tree does not hash to the lock's upstream tree."""
    PATCHES = "patches"
    """A patch file is missing, edited, or does not apply."""
    REBUILD = "rebuild"
    """Upstream + transformation + patches does not hash to the lock's vendored tree."""
    WORKTREE = "worktree"
    """The tree in the project differs from the lock (see `forkman check`)."""


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of rebuilding one fork."""

    name: str
    """The fork."""
    ok: bool
    """Whether everything matched."""
    stage: VerifyStage | None = None
    """Where it failed (None when ok)."""
    message: str = ""
    """What failed, for humans."""
    hint: str = ""
    """What to do about it (empty when there is nothing to add)."""


def fetch_pristine(
    project: Project,
    entry: LockEntry,
    dest: Path,
    observer: Observer = NullObserver(),
    *,
    recheck: bool = False,
) -> None:
    """Recreate the pristine upstream tree of `entry` at `dest` from its pinned source.

    An index file comes through the configured index only (see
    :func:`forkman.sources.index.fetch_exact`); with `recheck` the index is
    asked whether it still announces it even when the cache has it.
    """
    from ..sources.unpack import unpack_archive

    if isinstance(entry.source, GitSource):
        from ..sources.git import check_declared_remote, export

        check_declared_remote(project, entry.name, entry.source)
        export(
            entry.source.url,
            entry.source.commit,
            dest,
            subdirectory=entry.source.subdirectory,
            observer=observer,
        )
        return
    from ..sources.index import fetch_exact

    archive = fetch_exact(
        entry.source,
        index_urls=project.config.index_urls,
        observer=observer,
        limits=project.config.network,
        recheck=recheck,
    )
    unpack_archive(archive, dest)


def rebuild(
    project: Project,
    entry: LockEntry,
    workdir: Path,
    observer: Observer = NullObserver(),
    *,
    offline: bool = False,
) -> VerifyResult:
    """Rebuild `entry` inside `workdir` and compare every stage with the lock.

    Online (the default) the configured index is asked whether it still
    announces the recorded file; `offline` trusts the verified download cache.
    """
    name = entry.name
    pristine = workdir / "upstream"
    failed = _check_filename(entry)
    if failed is not None:
        return failed
    try:
        fetch_pristine(project, entry, pristine, observer, recheck=not offline)
    except ForkmanError as exc:
        return VerifyResult(name, False, VerifyStage.SOURCE, exc.message, exc.hint or "")
    manifest, _special = scan_tree(pristine)
    got = hash_manifest(manifest.values())
    if got != entry.upstream_tree:
        return VerifyResult(
            name,
            False,
            VerifyStage.UPSTREAM,
            f"upstream tree is {got}, the lock records {entry.upstream_tree}",
        )
    vendored = _build(project, entry, pristine, workdir, observer)
    if isinstance(vendored, VerifyResult):
        return vendored
    failed = _apply_patches(project, entry, vendored) or _check_members(entry, vendored)
    if failed is not None:
        return failed
    rebuilt_manifest = manifest_like(vendored, entry)
    rebuilt = hash_manifest(rebuilt_manifest.values())
    if rebuilt != entry.vendored_tree:
        return VerifyResult(
            name,
            False,
            VerifyStage.REBUILD,
            f"upstream + patches gives {rebuilt}, the lock records {entry.vendored_tree}",
        )
    if project.state_dir.is_dir():  # the proven recorded tree: check can name files now
        with contextlib.suppress(OSError):
            save_manifest(project.state_dir, name, rebuilt_manifest)
    return _check_worktree(project, entry, rebuilt_manifest) or VerifyResult(name, True)


def _check_filename(entry: LockEntry) -> VerifyResult | None:
    """A failure when the recorded release file's name declares another version."""
    if not isinstance(entry.source, IndexSource):
        return None
    recorded = _filename_version(entry.source.filename)
    if recorded is not None and recorded != Version(entry.version):
        return VerifyResult(
            entry.name,
            False,
            VerifyStage.SOURCE,
            f"the lock says version {entry.version} but the file is {entry.source.filename}",
        )
    return None


def _build(
    project: Project, entry: LockEntry, pristine: Path, workdir: Path, observer: Observer
) -> Path | VerifyResult:
    """The vendored tree rebuilt from `pristine` (before patches), or why it failed."""
    name = entry.name
    fetched = FetchedUpstream(name, entry.version, entry.source, pristine)
    others = other_modules_of(entry) or []
    try:
        built = build_vendored(
            project,
            fetched,
            workdir,
            layout=entry.layout,
            other_modules=others,
            observer=observer,
        )
    except ForkmanError as exc:
        return VerifyResult(name, False, VerifyStage.REBUILD, exc.message)
    hidden = _protected_code(pristine, built.sections)
    if hidden:
        return VerifyResult(
            name,
            False,
            VerifyStage.REBUILD,
            f"protected-files lists {', '.join(hidden)}, which the release of {name} provides: "
            "protected files never overlap a fork (they would hide its code from check)",
        )
    return built.tree


def _apply_patches(project: Project, entry: LockEntry, vendored: Path) -> VerifyResult | None:
    """Apply the recorded patches to `vendored` in order; a failure if one is off."""
    name = entry.name
    for patch in entry.patches:
        path = project.root / patch.file
        if not path.is_file():
            return VerifyResult(name, False, VerifyStage.PATCHES, f"{patch.file} is missing")
        if file_digest(path) != patch.sha256:
            return VerifyResult(
                name, False, VerifyStage.PATCHES, f"{patch.file} differs from its recorded hash"
            )
        try:
            apply_patch_file(vendored, path)
        except IntegrityError as exc:
            return VerifyResult(name, False, VerifyStage.PATCHES, exc.message)
    return None


def _check_members(entry: LockEntry, vendored: Path) -> VerifyResult | None:
    """A failure when the rebuilt namespace fork has names its lock entry does not list."""
    members = members_of(entry)
    if members is None:
        return None
    strays = sorted(set(os.listdir(vendored)) - set(members))
    if not strays:
        return None
    return VerifyResult(
        entry.name,
        False,
        VerifyStage.REBUILD,
        f"the rebuilt fork has {', '.join(strays)}, which its lock entry does not list as members",
    )


def _check_worktree(
    project: Project, entry: LockEntry, rebuilt_manifest: Mapping[str, TreeEntry]
) -> VerifyResult | None:
    """A failure when the tree in the project differs from the proven rebuilt one."""
    name = entry.name
    expected = {p: (e.kind, e.digest) for p, e in rebuilt_manifest.items()}
    actual = project.root / entry.path
    if not actual.is_dir():
        return VerifyResult(name, False, VerifyStage.WORKTREE, f"{entry.path} is missing")
    manifest, special = scan_fork(project.root, entry, None)
    ignored = ignored_untracked(project.root, [entry]).get(name, set())
    if special or ignored or hash_manifest(manifest.values()) != entry.vendored_tree:
        findings = explain_tree(
            project.root, entry, manifest, expected, special=special, ignored=ignored
        )
        if findings:
            shown = "; ".join(f.message() for f in findings[:_SHOWN])
            more = len(findings) - _SHOWN
            return VerifyResult(
                name,
                False,
                VerifyStage.WORKTREE,
                f"{entry.path} differs from the lock: {shown}"
                + (f"; and {more} more (`forkman check {name}` lists them)" if more > 0 else ""),
                "; ".join(CheckReport(findings).hints()),
            )
    bytecode = bytecode_findings(project.root, [entry])
    if bytecode:
        return VerifyResult(
            name,
            False,
            VerifyStage.WORKTREE,
            f"bytecode {', '.join(f.path for f in bytecode)}: git tracks it or does not ignore "
            "it, and Python may run it instead of the source (see `forkman check`)",
        )
    return None


_CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyi", ".pth", ".so", ".pyd")


def _protected_code(pristine: Path, sections: Mapping[str, Any]) -> list[str]:
    """Importable names of the release that ``protected-files`` kept out of the fork.

    The namespace package's own ``__init__.py`` is the project's; any other
    package, module or ``.pth`` file a release provides belongs to the fork.
    """
    ns = sections.get("namespace")
    transform = ns.get("transform") if isinstance(ns, Mapping) else None
    skipped = transform.get("protected-skipped", []) if isinstance(transform, Mapping) else []
    roots = [pristine, *pristine.glob("*.data/purelib"), *pristine.glob("*.data/platlib")]
    return sorted(
        str(n)
        for n in skipped
        if n != "__init__.py"
        and (str(n).endswith(_CODE_SUFFIXES) or any((r / str(n)).is_dir() for r in roots))
    )


def _filename_version(filename: str) -> Version | None:
    """The version a release file's name declares, if it parses."""
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidSdistFilename, InvalidWheelFilename, InvalidVersion):
        return None


_SHOWN = 10
"""How many differing files a failed verify names in its message."""


def manifest_like(tree: Path, entry: LockEntry) -> dict[str, TreeEntry]:
    """The manifest of a rebuilt tree, taken the way the lock hashes `entry`'s tree."""
    from dataclasses import replace

    probe = replace(entry, path=tree.name)
    manifest, _ = scan_fork(tree.parent, probe, None)
    return manifest


def _tree_hash_like(tree: Path, entry: LockEntry) -> str:
    """Hash a rebuilt tree the way the lock hashes `entry`'s tree."""
    return hash_manifest(manifest_like(tree, entry).values())


def verify(
    project: Project,
    names: Sequence[str] = (),
    observer: Observer = NullObserver(),
    *,
    offline: bool = False,
) -> list[VerifyResult]:
    """Rebuild and compare every fork (or `names`); a result per fork (see :func:`rebuild`)."""
    lock = project.load_lock()
    config = project.config
    vendoring = config.section("vendoring")
    destination = vendoring.get("destination")
    lock_fits_config(
        project.root,
        lock,
        vendor_dir=config.vendor_dir,
        patches_dir=config.patches_dir,
        destination=str(destination).rstrip("/") if destination is not None else None,
        protected=protected_names(
            vendoring.get("protected-files", []), "[tool.forkman.vendoring].protected-files"
        ),
    )
    entries = [require_fork(project, n) for n in names] if names else list(lock)
    results = []
    for entry in entries:
        observer.step(entry.name, "rebuilding from upstream")
        workdir = Path(tempfile.mkdtemp(prefix=f"forkman-verify-{entry.name}-"))
        try:
            result = rebuild(project, entry, workdir, observer, offline=offline)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        observer.step(entry.name, "verified" if result.ok else f"FAILED: {result.message}")
        results.append(result)
    return results
