"""One fork's tree judged against the lock: edits, installer leftovers, ignored files.

:func:`check_fork` hashes a fork's vendored tree and, when it differs from
the lock, :func:`explain_tree` says how, file by file, against the cached
manifest of its last recorded state. Files an installer left in a
project-layout fork's ``build/`` or ``*.egg-info/`` (untracked, not
recorded) are findings of their own (:func:`installer_leftovers`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from ..model.lock import LockEntry
from ..store.treehash import StatCache, TreeEntry, hash_manifest
from .findings import TREE_KINDS, Finding, FindingKind
from .gitfiles import git_paths
from .manifest import diff_manifests, members_of, recorded_manifest, scan_fork


def _paused(state_dir: Path, name: str) -> dict[str, object] | None:
    """What a sync of fork `name` paused at a conflict recorded in its journal, or None.

    Only a journal of this fork, read without following a symlink, counts; its
    members must be plain names (recovery validates the rest before acting).
    """
    journal = state_dir / "txn" / f"{name}.json"
    try:
        if journal.is_symlink():
            return None
        data = json.loads(journal.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("fork") != name:
        return None
    paused = data.get("paused")
    if not isinstance(paused, dict):
        return None
    members = paused.get("members")
    if members is not None and not (
        isinstance(members, list)
        and all(isinstance(m, str) and m and "/" not in m and m not in (".", "..") for m in members)
    ):
        return None
    return paused


def paused_members(state_dir: Path, name: str) -> list[str]:
    """The members a sync of namespace fork `name` paused at a conflict put in place."""
    members = (_paused(state_dir, name) or {}).get("members")
    return [str(m) for m in members] if isinstance(members, list) else []


def paused_sync(state_dir: Path, name: str) -> str | None:
    """The version a sync of fork `name` paused at a conflict is moving to, or None."""
    paused = _paused(state_dir, name)
    return None if paused is None else str(paused.get("version", "?"))


def check_fork(
    root: Path,
    state_dir: Path,
    entry: LockEntry,
    cache: StatCache | None,
    ignored: Collection[str] = (),
) -> list[Finding]:
    """Findings for one fork's vendored tree.

    `ignored`: the fork's files (relative to its path) that the consumer's git
    ignores and does not track (see :func:`ignored_untracked`).
    """
    version = paused_sync(state_dir, entry.name)
    if version is not None:
        return [
            Finding(
                FindingKind.SYNC_PAUSED,
                entry.name,
                entry.path,
                f"the sync to {version} waits for a conflict resolution",
            )
        ]
    base = root / entry.path
    if not base.is_dir():
        return [
            Finding(
                FindingKind.MISSING_FORK,
                entry.name,
                entry.path,
                "the lock has an entry but the tree is gone",
            )
        ]
    manifest, special = scan_fork(root, entry, cache)
    if not special and not ignored and hash_manifest(manifest.values()) == entry.vendored_tree:
        return []
    return explain_tree(
        root, entry, manifest, recorded_manifest(state_dir, entry), special=special, ignored=ignored
    )


def explain_tree(
    root: Path,
    entry: LockEntry,
    manifest: dict[str, TreeEntry],
    expected: dict[str, tuple[str, str]] | None,
    *,
    special: Sequence[str] = (),
    ignored: Collection[str] = (),
) -> list[Finding]:
    """Findings for fork `entry`'s scanned tree `manifest` against its recorded tree.

    `expected`: the recorded tree's manifest, proven to hash to the lock's
    vendored tree (None when it is not known: then a tree that differs is one
    "tree changed" finding). Installer leftovers (:func:`installer_leftovers`)
    are findings of their own and left out of the comparison; every other
    file is compared. `ignored`: files of the fork the consumer's git ignores
    and does not track; each that is part of the recorded tree is a finding
    (a commit leaves it out, so a fresh clone does not match the lock).
    """
    name, prefix = entry.name, entry.path + "/"
    findings = [Finding(FindingKind.SPECIAL, name, prefix + p) for p in special]
    left = installer_leftovers(root, entry, manifest, expected)
    judged = {p: e for p, e in manifest.items() if p not in left} if left else manifest
    matches = hash_manifest(judged.values()) == entry.vendored_tree
    if not matches:
        if expected is not None:
            findings += diff_manifests(name, prefix, expected, judged)
        if not any(f.kind in TREE_KINDS for f in findings):
            findings.append(
                Finding(
                    FindingKind.TREE_CHANGED,
                    name,
                    entry.path,
                    f"differs from the lock; `forkman verify {name}` lists the files",
                )
            )
    findings += _leftover_findings(name, prefix, left, judged, expected)
    recorded: Collection[str] = judged if matches else (expected or ())
    findings += [
        Finding(
            FindingKind.IGNORED,
            name,
            prefix + p,
            "part of the fork, but git ignores it and does not track it: a fresh clone lacks it",
        )
        for p in sorted(ignored)
        if p in recorded
    ]
    return findings


def fork_tree_findings(root: Path, state_dir: Path, entry: LockEntry) -> list[Finding]:
    """What differs in fork `entry`'s tree on disk (no bytecode, no patch files)."""
    manifest, special = scan_fork(root, entry, None)
    if not special and hash_manifest(manifest.values()) == entry.vendored_tree:
        return []
    return explain_tree(root, entry, manifest, recorded_manifest(state_dir, entry), special=special)


def _egg_info(name: str) -> bool:
    return name.endswith(".egg-info") and len(name) > len(".egg-info")


def leftover_folder(rel: str) -> str | None:
    """The installer-output folder a path of a fork lies in (relative to the fork), or None.

    pip and setuptools, run on a fork's folder, write ``build/`` at its root and
    ``NAME.egg-info/`` at its root or under ``src/``. Only paths strictly inside
    such a folder count (scanning never follows a symlink, so the folder is a
    real directory); a file or a symlink of that name does not.
    """
    parts = rel.split("/")
    if len(parts) >= 2 and (parts[0] == "build" or _egg_info(parts[0])):
        return parts[0]
    if len(parts) >= 3 and parts[0] == "src" and _egg_info(parts[1]):
        return f"src/{parts[1]}"
    return None


def installer_leftovers(
    root: Path,
    entry: LockEntry,
    manifest: Mapping[str, TreeEntry],
    expected: Mapping[str, tuple[str, str]] | None,
) -> set[str]:
    """The files of `manifest` that an installer left in a project-layout fork's folder.

    A leftover is a file inside a :func:`leftover_folder` that is not part of
    the recorded tree and that the consumer's git does not track (a committed
    file is an edit, whatever its folder). Without the recorded manifest
    (`expected` None, a fresh clone) they are leftovers only when the rest of
    the tree hashes to the lock's vendored tree, which proves none of them is
    recorded. When git cannot answer, nothing is a leftover.
    """
    if members_of(entry) is not None:
        return set()
    candidates = {
        p for p in manifest if leftover_folder(p) and (expected is None or p not in expected)
    }
    if not candidates:
        return set()
    prefix = entry.path + "/"
    folders = sorted({prefix + str(leftover_folder(p)) for p in candidates})
    tracked = git_paths(root, ["ls-files", "-z", "--cached", "--", *folders])
    if tracked is None:
        return set()
    known = set(tracked)
    left = {p for p in candidates if prefix + p not in known}
    if expected is None and left:
        rest = [e for p, e in manifest.items() if p not in left]
        if hash_manifest(rest) != entry.vendored_tree:
            return set()
    return left


def _leftover_findings(
    name: str,
    prefix: str,
    left: Collection[str],
    judged: Mapping[str, TreeEntry],
    expected: Mapping[str, tuple[str, str]] | None,
) -> list[Finding]:
    """One finding per leftover folder that holds nothing else, else one per leftover file."""
    folders: dict[str, list[str]] = {}
    for p in left:
        folders.setdefault(str(leftover_folder(p)), []).append(p)
    kept = {leftover_folder(p) for p in (*judged, *(expected or ()))}
    findings = []
    for folder, files in sorted(folders.items()):
        if folder in kept:
            findings += [
                Finding(
                    FindingKind.LEFTOVER,
                    name,
                    prefix + p,
                    "an installer wrote it; not part of the fork",
                )
                for p in sorted(files)
            ]
        else:
            findings.append(
                Finding(
                    FindingKind.LEFTOVER,
                    name,
                    f"{prefix}{folder}/",
                    f"{len(files)} file(s) an installer wrote; none is part of the fork",
                )
            )
    return findings
