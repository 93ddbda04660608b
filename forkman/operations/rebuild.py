"""Rebuild a fork's history from the lock: `.forkman/` is a cache.

A fresh clone of the consumer repository has the vendored trees, the lock and
the patch files, but not `.forkman/` (git ignores it). Commands that need a
fork's history (patch, sync, diff) rebuild it here: the pinned upstream release
is taken from the verified download cache or downloaded again (its sha256
checked) or the pinned git commit exported, imported as the upstream commit,
transformed for the namespace layout, and each recorded patch applied and
committed in order. The result must hash to the lock's trees, or nothing is
kept. Earlier upstream releases are not part of the rebuilt history: it starts
at the fork's current release.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..core.errors import IntegrityError
from ..core.observer import NullObserver, Observer
from ..gate.check import other_modules_of, save_manifest
from ..model.lock import LockEntry
from ..model.project import Project
from ..series.apply import apply_patch_file
from ..series.store import load_headers
from ..store.history import ForkHistory
from ..store.treehash import hash_manifest, scan_tree
from .upstream import FetchedUpstream, describe_source
from .vendor import build_vendored
from .verify import fetch_pristine, manifest_like


def rebuild_history(
    project: Project, entry: LockEntry, observer: Observer = NullObserver()
) -> ForkHistory:
    """Recreate the missing history of fork `entry` from the lock and the patch files."""
    target = project.fork_git_dir(entry.name)
    observer.step(entry.name, "rebuilding the fork's history from the lock")
    tmp_parent = project.ensure_state_dir() / "tmp"
    tmp_parent.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"rebuild-{entry.name}-", dir=tmp_parent))
    try:
        pristine = work / "upstream"
        fetch_pristine(project, entry, pristine, observer)
        manifest, _ = scan_tree(pristine)
        if hash_manifest(manifest.values()) != entry.upstream_tree:
            raise IntegrityError(
                f"the upstream release of {entry.name} does not hash to the lock's upstream tree",
                hint=f"run `forkman verify {entry.name}` for details",
            )
        history = ForkHistory.create(work / "history.git")
        upstream = history.import_upstream(pristine, entry.version, describe_source(entry.source))
        others = other_modules_of(entry) or []
        fetched = FetchedUpstream(entry.name, entry.version, entry.source, pristine)
        vendored = build_vendored(
            project, fetched, work, layout=entry.layout, other_modules=others, observer=observer
        ).tree
        tip = upstream
        if vendored != pristine:
            tip = history.commit(
                history.snapshot(vendored), [upstream], f"Vendor {entry.version}\n"
            )
        for record, header in zip(entry.patches, load_headers(project, entry), strict=True):
            apply_patch_file(vendored, project.root / record.file)
            tip = history.commit(
                history.snapshot(vendored), [tip], header.commit_message(), author=header.author
            )
        vendored_manifest = manifest_like(vendored, entry)
        if hash_manifest(vendored_manifest.values()) != entry.vendored_tree:
            raise IntegrityError(
                f"upstream + recorded patches of {entry.name} do not hash to the lock's "
                "vendored tree",
                hint=f"run `forkman verify {entry.name}` for details",
            )
        history.update_ref("refs/heads/patched", tip)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / "history.git", target)
        save_manifest(project.state_dir, entry.name, vendored_manifest)
        observer.step(entry.name, "history rebuilt")
        return ForkHistory(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
