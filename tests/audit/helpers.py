"""Shared helpers of the audit tests: locks with forks at given versions."""

from __future__ import annotations

import hashlib
from pathlib import Path

from forkman.model.lock import IndexSource, Lock, LockEntry, PatchRecord, write_lock

TREE = "sha256:" + "0" * 64


def entry(name: str, version: str, *, fixes: tuple[str, ...] = (), sha256: str = "") -> LockEntry:
    """A lock entry for an index fork `name==version` (optionally with a patch fixing ids)."""
    filename = f"{name}-{version}.tar.gz"
    patches: tuple[PatchRecord, ...] = ()
    if fixes:
        patches = (
            PatchRecord(f"patches/{name}/0001-fix.patch", hashlib.sha256(b"p").hexdigest(), fixes),
        )
    return LockEntry(
        name=name,
        version=version,
        path=f"vendor/{name}",
        source=IndexSource(
            index_url="https://pypi.org/simple/",
            url=f"https://files.example/{filename}",
            filename=filename,
            sha256=sha256 or hashlib.sha256(filename.encode()).hexdigest(),
            requirement=f"{name}=={version}",
        ),
        upstream_tree=TREE,
        vendored_tree=TREE,
        fetched="2024-10-10T00:00:00Z",
        patches=patches,
    )


def write_forks(project: Path, *entries: LockEntry) -> None:
    """Write forkman.lock of `project` with `entries`."""
    lock = Lock()
    for e in entries:
        lock = lock.with_entry(e)
    write_lock(project / "forkman.lock", lock)
