"""The manifests of forks' vendored trees: scanning, the cached manifest, the file diff.

A manifest maps each file of a fork (relative to its path) to its kind and
digest. The manifest of a fork's last recorded tree is cached under
``.forkman/forks/NAME.manifest`` and believed only when it hashes to the
lock's vendored tree (:func:`recorded_manifest`); it lets a check explain a
difference file by file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..model.lock import Layout, LockEntry
from ..store.treehash import (
    StatCache,
    TreeEntry,
    bytes_digest,
    file_digest,
    hash_manifest,
    scan_tree,
)
from .findings import Finding, FindingKind


def members_of(entry: LockEntry) -> list[str] | None:
    """For a namespace-layout fork, the top-level names it owns under its path.

    None for every other layout: a fork of the project layout owns its whole
    path, whatever tables its lock entry carries.
    """
    if entry.layout is not Layout.NAMESPACE:
        return None
    ns = entry.sections.get("namespace")
    if isinstance(ns, dict) and isinstance(ns.get("members"), list):
        return [str(m) for m in ns["members"]]
    return None


def other_modules_of(entry: LockEntry) -> list[str] | None:
    """For a namespace-layout fork, the other forks' modules its imports were rewritten for."""
    ns = entry.sections.get("namespace")
    if entry.layout is not Layout.NAMESPACE or not isinstance(ns, dict):
        return None
    transform = ns.get("transform")
    others = transform.get("other-modules", []) if isinstance(transform, dict) else []
    return sorted(str(m) for m in others)


def scan_fork(
    root: Path, entry: LockEntry, cache: StatCache | None
) -> tuple[dict[str, TreeEntry], list[str]]:
    """Manifest of a fork's vendored tree (only its members for the namespace layout)."""
    base = root / entry.path
    members = members_of(entry)
    if members is None:
        manifest, special = scan_tree(base, cache)
        return manifest, [s.path for s in special]
    manifest = {}
    special_paths: list[str] = []
    for member in members:
        path = base / member
        if path.is_dir() and not path.is_symlink():
            sub, special = scan_tree(path, cache)
            for rel, e in sub.items():
                manifest[f"{member}/{rel}"] = TreeEntry(f"{member}/{rel}", e.kind, e.digest)
            special_paths += [f"{member}/{s.path}" for s in special]
        elif path.is_symlink():
            target = os.fsencode(os.readlink(path))
            manifest[member] = TreeEntry(member, "l", bytes_digest(target))
        elif path.exists():
            st = path.stat()
            digest = cache.digest(str(path), st) if cache else file_digest(path)
            manifest[member] = TreeEntry(member, "x" if st.st_mode & 0o111 else "f", digest)
    return manifest, special_paths


def manifest_path(state_dir: Path, name: str) -> Path:
    """Where the manifest of fork `name`'s last recorded vendored tree is cached."""
    return state_dir / "forks" / f"{name}.manifest"


def save_manifest(state_dir: Path, name: str, manifest: dict[str, TreeEntry]) -> None:
    """Cache the manifest of fork `name`'s recorded vendored tree (for per-file reports).

    JSON: it is only believed when it hashes to the lock's tree (see :func:`check_fork`).
    """
    from ..core.fs import atomic_write_bytes

    data = {p: [e.kind, e.digest] for p, e in manifest.items()}
    atomic_write_bytes(manifest_path(state_dir, name), json.dumps(data).encode())


def load_manifest(state_dir: Path, name: str) -> dict[str, tuple[str, str]] | None:
    """The cached manifest of fork `name`, or None (the caller checks it against the lock)."""
    path = manifest_path(state_dir, name)
    try:
        if path.is_symlink():
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    out: dict[str, tuple[str, str]] = {}
    for p, value in data.items():
        if not (
            isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
        ):
            return None
        out[p] = (value[0], value[1])
    return out


def recorded_manifest(state_dir: Path, entry: LockEntry) -> dict[str, tuple[str, str]] | None:
    """The cached manifest of `entry`'s recorded tree, if it hashes to the lock's tree."""
    expected = load_manifest(state_dir, entry.name)
    if (
        expected is not None
        and hash_manifest(TreeEntry(p, k, d) for p, (k, d) in expected.items())
        == entry.vendored_tree
    ):
        return expected
    return None


def diff_manifests(
    name: str, prefix: str, expected: dict[str, tuple[str, str]], actual: dict[str, TreeEntry]
) -> list[Finding]:
    """Fork `name`'s files in `actual` that differ from the recorded `expected`, one finding each.

    A deleted file whose content reappears under a new name is a rename;
    `prefix` (the fork's path and ``/``) makes the paths relative to the project.
    """
    findings: list[Finding] = []
    added = {p: e for p, e in actual.items() if p not in expected}
    deleted = {p: v for p, v in expected.items() if p not in actual}
    by_digest: dict[str, str] = {}
    for p, e in added.items():
        by_digest.setdefault(e.digest, p)
    for p, (_kind, digest) in sorted(deleted.items()):
        new = by_digest.pop(digest, None)
        if new is not None:
            added.pop(new)
            findings.append(Finding(FindingKind.RENAMED, name, prefix + p, f"now {prefix + new}"))
        else:
            findings.append(Finding(FindingKind.DELETED, name, prefix + p))
    for p in sorted(added):
        findings.append(Finding(FindingKind.ADDED, name, prefix + p))
    for p, e in sorted(actual.items()):
        want = expected.get(p)
        if want is None:
            continue
        kind, digest = want
        if (kind == "l") != (e.kind == "l"):
            findings.append(Finding(FindingKind.SYMLINK, name, prefix + p, "file <-> symlink"))
        elif digest != e.digest:
            what = FindingKind.SYMLINK if e.kind == "l" else FindingKind.MODIFIED
            findings.append(Finding(what, name, prefix + p))
        elif kind != e.kind:
            findings.append(
                Finding(
                    FindingKind.MODE,
                    name,
                    prefix + p,
                    "executable bit " + ("added" if e.kind == "x" else "removed"),
                )
            )
    return findings
