"""`forkman check`: do the vendored trees still match the lock? (fast, offline)

For each fork the vendored tree is hashed (re-reading only files whose stat
signature changed, see :class:`forkman.store.treehash.StatCache`) and compared with
the lock. A fork that differs is explained file by file against the cached
manifest of its last recorded state: modified, added, deleted, renamed,
mode changed, symlink changed. Files an installer left in a project-layout
fork's ``build/`` or ``*.egg-info/`` (untracked, not recorded) are reported
as installer leftovers, to remove rather than record; recorded files git
ignores and does not track are reported too (a fresh clone would lack them).
Patch files are checked against their recorded hashes, the lock against its
canonical form (a hand edit shows), and the vendor directory for trees that
no lock entry claims.

This module imports only the standard library and forkman's lock/tree code,
so that a pre-commit hook pays no start-up cost for the rest of forkman.

The parts live beside it: :mod:`.findings` (what a check reports),
:mod:`.manifest` (scanning trees, the cached manifests), :mod:`.tree` (one
fork's tree judged) and :mod:`.gitfiles` (what the consumer's git knows).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import LockError, NotFound
from ..model.lock import (
    LOCK_NAME,
    Layout,
    Lock,
    LockEntry,
    dump_lock,
    load_lock_data,
    lock_from_data,
    parse_lock,
)
from ..model.statetrust import read_cache, require_trusted_state, write_cache
from ..store.treehash import StatCache, file_digest
from .findings import CheckReport, Finding, FindingKind, ignored_hint, leftover_hint
from .gitfiles import GitView, bytecode_findings, ignored_untracked
from .manifest import (
    load_manifest,
    manifest_path,
    members_of,
    other_modules_of,
    recorded_manifest,
    save_manifest,
    scan_fork,
)
from .tree import (
    check_fork,
    explain_tree,
    fork_tree_findings,
    installer_leftovers,
    leftover_folder,
    paused_members,
    paused_sync,
)

__all__ = [
    "CheckReport",
    "Finding",
    "FindingKind",
    "bytecode_findings",
    "check",
    "check_fork",
    "explain_tree",
    "fork_tree_findings",
    "ignored_hint",
    "ignored_untracked",
    "installer_leftovers",
    "leftover_folder",
    "leftover_hint",
    "load_manifest",
    "lock_fits_config",
    "manifest_path",
    "members_of",
    "other_modules_of",
    "paused_sync",
    "recorded_manifest",
    "save_manifest",
    "scan_fork",
    "unforked",
]


def _check_patches(root: Path, entry: LockEntry, patches_dir: str) -> list[Finding]:
    """Findings for one fork's patch files."""
    findings: list[Finding] = []
    recorded = set()
    for patch in entry.patches:
        recorded.add(patch.file)
        path = root / patch.file
        if not path.is_file():
            findings.append(Finding(FindingKind.PATCH_MISSING, entry.name, patch.file))
        elif file_digest(path) != patch.sha256:
            findings.append(Finding(FindingKind.PATCH_EDITED, entry.name, patch.file))
    series_dir = root / patches_dir / entry.name
    if series_dir.is_dir():
        for path in sorted(series_dir.glob("*.patch")):
            rel = path.relative_to(root).as_posix()
            if rel not in recorded:
                findings.append(Finding(FindingKind.PATCH_UNRECORDED, entry.name, rel))
    return findings


def lock_fits_config(
    root: Path,
    lock: Lock,
    *,
    vendor_dir: str,
    patches_dir: str,
    destination: str | None,
    protected: Sequence[str] = (),
) -> None:
    """Refuse lock paths the configuration does not put there (LockError naming the fork).

    A project-layout fork lives directly in the vendor folder; a namespace fork
    in the configured destination; every patch file in ``patches-dir/NAME/``;
    none of them behind a symlink that leads out of the project. A protected
    name of the namespace folder is never a fork's member (ConfigError).
    """
    from ..core.errors import ConfigError
    from ..core.paths import is_within, require_inside, require_no_symlink

    for entry in lock:
        where = f"{LOCK_NAME}: [forks.{entry.name}]"
        if entry.layout is Layout.NAMESPACE:
            if destination is None or entry.path != destination:
                raise LockError(
                    f"{where} path {entry.path!r} is not the namespace folder "
                    f"([tool.forkman.vendoring] destination = {destination!r})",
                    hint="restore the lock with `git checkout -- forkman.lock`",
                )
            covered = sorted(set(members_of(entry) or ()) & set(protected))
            if covered:
                raise ConfigError(
                    f"[tool.forkman.vendoring].protected-files lists {', '.join(covered)}, "
                    f"which fork {entry.name} owns: protected files never overlap a fork",
                    hint="protected-files names the project's own files in the namespace "
                    "folder; remove the fork's names from it",
                )
        elif entry.path.rpartition("/")[0] != vendor_dir:
            raise LockError(
                f"{where} path {entry.path!r} is not a folder directly in vendor-dir "
                f"({vendor_dir!r})",
                hint="restore the lock with `git checkout -- forkman.lock`",
            )
        require_no_symlink(root, entry.path, f"{where} path", error=LockError)
        series = f"{patches_dir}/{entry.name}"
        for patch in entry.patches:
            if not is_within(patch.file, series) or patch.file == series:
                raise LockError(
                    f"{where} patch file {patch.file!r} is not in its series folder "
                    f"{series}/ (patches-dir = {patches_dir!r})",
                    hint="restore the lock with `git checkout -- forkman.lock`",
                )
            require_inside(root, patch.file, f"{where} patch file", error=LockError)


def unforked(lock: Lock, declared: Sequence[str]) -> list[str]:
    """The `declared` forks (``[tool.forkman.forks.NAME] requirement``) the lock lacks."""
    return sorted(set(declared) - set(lock.forks))


def _load_lock_cached(root: Path, text: str) -> tuple[Lock, bool]:
    """Parse lock `text` (cached by content hash); the lock and whether it is canonical."""
    import hashlib

    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
    cache_path = root / ".forkman" / "lock.cache"
    # sealed: only a cache this user's forkman wrote for this file is believed
    cached = read_cache(cache_path, "lock.cache")
    if isinstance(cached, list) and len(cached) == 3 and cached[0] == digest:
        try:
            return lock_from_data(cached[1]), bool(cached[2])
        except (LockError, ValueError, TypeError, KeyError, AttributeError):
            pass
    data = load_lock_data(text)
    lock = lock_from_data(data)
    canonical = dump_lock(lock) == text
    if cache_path.parent.is_dir() and not cache_path.parent.is_symlink():
        write_cache(cache_path, "lock.cache", [digest, data, canonical])
    return lock, canonical


def check(
    root: Path,
    *,
    vendor_dir: str = "vendor",
    patches_dir: str = "patches",
    names: Sequence[str] = (),
    use_cache: bool = True,
    protected: Sequence[str] = (),
    destination: str | None = None,
    declared: Sequence[str] = (),
) -> CheckReport:
    """Compare every fork (or `names`) with forkman.lock under project `root`.

    `protected`: the project's own names in namespace folders (``protected-files``);
    any other name there that no fork owns is a finding. `destination`: the
    namespace folder (``[tool.forkman.vendoring] destination``), examined even
    before any namespace fork exists. `declared`: the forks the configuration
    declares (``[tool.forkman.forks.NAME] requirement``); one the lock lacks is
    a finding. The paths are taken as the configuration validated them
    (:func:`forkman.core.paths.config_dirs`); lock paths are checked against them.
    """
    report = CheckReport()
    lock = _read_lock(
        root,
        report,
        use_cache=use_cache,
        vendor_dir=vendor_dir,
        patches_dir=patches_dir,
        destination=destination,
        protected=protected,
    )
    if lock is None:
        return report
    state_dir = root / ".forkman"
    require_trusted_state(root)  # state a commit supplied is refused, never read
    warm = use_cache and state_dir.is_dir()
    entries = _selected(lock, names)
    known_trees = _known_trees(state_dir) if warm else {}
    view = GitView(root, [e.path for e in entries if members_of(e) is None] if warm else [])
    report.forks_checked = len(entries)
    if not names:
        report.findings += _project_findings(
            root, state_dir, lock, vendor_dir, protected, destination, declared
        )
    for entry in entries:
        report.findings += _check_patches(root, entry, patches_dir)
    bytecode = bytecode_findings(root, entries)
    report.findings += bytecode
    ignored = ignored_untracked(root, entries)
    view.wait()
    found, learned = _hash_forks(root, state_dir, entries, view, known_trees, ignored, warm)
    report.findings += found
    if learned and not bytecode:
        write_cache(state_dir / "gittrees", "gittrees", known_trees)
    report.findings.sort(key=lambda f: (f.fork or "", f.path, f.kind.value))
    if warm and not names:
        from .quickcheck import forget_dirs, record_dirs

        if report.ok and view.ok:
            record_dirs(root, vendor_dir)
        else:
            forget_dirs(root)
    return report


def _read_lock(
    root: Path,
    report: CheckReport,
    *,
    use_cache: bool,
    vendor_dir: str,
    patches_dir: str,
    destination: str | None,
    protected: Sequence[str],
) -> Lock | None:
    """The lock (empty when there is none); None, the finding added to `report`, if invalid."""
    try:
        text = (root / LOCK_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return Lock()
    try:
        if use_cache:
            lock, canonical = _load_lock_cached(root, text)
        else:
            lock = parse_lock(text)
            canonical = dump_lock(lock) == text
        if not canonical:
            report.findings.append(
                Finding(FindingKind.LOCK_EDITED, None, LOCK_NAME, "not as forkman wrote it")
            )
        lock_fits_config(
            root,
            lock,
            vendor_dir=vendor_dir,
            patches_dir=patches_dir,
            destination=destination,
            protected=protected,
        )
    except LockError as exc:
        report.findings.append(Finding(FindingKind.LOCK_INVALID, None, LOCK_NAME, exc.message))
        return None
    return lock


def _selected(lock: Lock, names: Sequence[str]) -> list[LockEntry]:
    """The entries `names` name (any PEP 503 spelling), every entry when there are none.

    One unknown name is the one "no fork named" error (:meth:`Lock.require`);
    several are listed together.
    """
    if not names:
        return list(lock)
    unknown = sorted({name for name in names if lock.get(name) is None})
    if len(unknown) == 1:
        lock.require(unknown[0])
    if unknown:
        known = ", ".join(sorted(lock.forks)) or "none"
        raise NotFound(
            f"no fork named {', '.join(repr(n) for n in unknown)} in {LOCK_NAME} (forks: {known})",
            hint="`forkman status` lists the forks; `forkman fork NAME` makes one",
        )
    wanted = {entry.name for entry in map(lock.require, names)}
    return [entry for entry in lock if entry.name in wanted]


def _known_trees(state_dir: Path) -> dict[str, str]:
    """Lock tree hash -> the git tree id a full check proved it to be (``.forkman/gittrees``)."""
    loaded = read_cache(state_dir / "gittrees", "gittrees")
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def _project_findings(
    root: Path,
    state_dir: Path,
    lock: Lock,
    vendor_dir: str,
    protected: Sequence[str],
    destination: str | None,
    declared: Sequence[str],
) -> list[Finding]:
    """What a check of every fork adds: declared forks not made, trees no fork owns."""
    findings = [
        Finding(
            FindingKind.NOT_FORKED,
            name,
            name,
            f"declared in [tool.forkman.forks.{name}] but not in {LOCK_NAME}",
        )
        for name in unforked(lock, declared)
    ]
    findings += _untracked_forks(root, lock, vendor_dir)
    findings += _unowned_names(root, state_dir, lock, protected, destination)
    return findings


def _hash_forks(
    root: Path,
    state_dir: Path,
    entries: Sequence[LockEntry],
    view: GitView,
    known_trees: dict[str, str],
    ignored: dict[str, set[str]],
    warm: bool,
) -> tuple[list[Finding], bool]:
    """Findings of the forks' trees, and whether `known_trees` learned a tree id.

    A fork git reports clean, at a committed tree id already proven to match
    its lock entry, is not hashed; one that hashes clean teaches its tree id.
    """
    findings: list[Finding] = []
    cache: StatCache | None = None
    learned = False
    for entry in entries:
        committed = view.clean_tree(entry.path) if members_of(entry) is None else None
        # files git ignores are not in its status: a fork holding any is hashed
        theirs = ignored.get(entry.name, set())
        if (
            committed is not None
            and not theirs
            and known_trees.get(entry.vendored_tree) == committed
        ):
            continue
        if cache is None and warm:
            cache = StatCache(state_dir / "statcache")
        found = check_fork(root, state_dir, entry, cache, theirs)
        findings += found
        if committed is not None and not found:
            known_trees[entry.vendored_tree] = committed
            learned = True
    if cache is not None:
        cache.save()
    return findings, learned


_PACKAGE_FILES = frozenset({"__init__.py", "__pycache__"})


def _unowned_names(
    root: Path,
    state_dir: Path,
    lock: Lock,
    protected: Sequence[str],
    destination: str | None = None,
) -> list[Finding]:
    """Names in namespace folders that no fork owns and the project does not protect.

    The folder's ``__init__.py`` is the project's (it makes the namespace a package).
    The configured `destination` is a namespace folder even before any fork owns a
    name in it (a project migrated from the vendoring tool, not yet synced).
    """
    owned: dict[str, set[str]] = {}
    if destination is not None:
        owned[destination] = set()
    for entry in lock:
        members = members_of(entry)
        if members is not None:
            names = owned.setdefault(entry.path, set())
            names.update(members, paused_members(state_dir, entry.name))
    findings = []
    for folder, names in sorted(owned.items()):
        try:
            children = sorted(os.listdir(root / folder))
        except OSError:
            continue
        for child in children:
            if child not in names and child not in protected and child not in _PACKAGE_FILES:
                findings.append(Finding(FindingKind.UNOWNED, None, f"{folder}/{child}"))
    return findings


def _untracked_forks(root: Path, lock: Lock, vendor_dir: str) -> list[Finding]:
    findings = []
    claimed = {entry.path for entry in lock}
    vendor = root / vendor_dir
    if vendor.is_dir():
        for child in sorted(vendor.iterdir()):
            rel = child.relative_to(root).as_posix()
            if (
                child.is_dir()
                and not child.name.startswith(".")
                and rel not in claimed
                and not any(c.startswith(rel + "/") for c in claimed)
            ):
                findings.append(Finding(FindingKind.UNTRACKED_FORK, None, rel))
    return findings
