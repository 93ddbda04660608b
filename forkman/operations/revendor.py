"""Vendoring a namespace fork's release again when the namespace changed.

Adding or removing a namespace fork changes which imports the others must
rewrite (``import urllib3`` becomes ``from ns import urllib3`` once urllib3
is vendored, and back when it goes): the release is transformed again and the
series carried onto the new transformation, with the same pause, continue and
abort as a sync (:mod:`forkman.operations.carry`).
"""

from __future__ import annotations

import shutil

from ..core.errors import BadInput
from ..core.observer import NullObserver, Observer
from ..gate.check import other_modules_of
from ..model.project import Project
from ..series.store import load_headers, series_commits
from ..store.history import HistoryError
from ..store.txn import paused_state, recover
from .carry import PausedSync, PauseKind, carry
from .forks import require_fork
from .forkseries import history_of, require_clean, scratch_dir
from .release import vendor_release
from .syncresult import SyncOutcome, SyncResult
from .upstream import FetchedUpstream, now_utc
from .vendor import namespace_owners


def stale_namespace_forks(project: Project) -> list[str]:
    """Namespace forks whose imports were rewritten for another set of namespace modules.

    Adding or removing a namespace fork changes which imports the others must
    rewrite (``import urllib3`` becomes ``from ns import urllib3`` once urllib3
    is vendored, and back when it goes): :func:`revendor_fork` brings them up
    to date.
    """
    lock = project.load_lock()
    stale = []
    for entry in lock:
        recorded = other_modules_of(entry)
        if recorded is None or paused_state(project, entry.name) is not None:
            continue  # a paused fork is brought up to date once its sync is finished
        if recorded != namespace_owners(project, entry.name, lock)[1]:
            stale.append(entry.name)
    return stale


def revendor_fork(
    project: Project, name: str, *, observer: Observer = NullObserver()
) -> SyncResult:
    """Vendor namespace fork `name`'s release again for the namespace's modules as they are now.

    The release stays; its transformation is made again with the other
    namespace forks' modules of today (so its imports of a fork added since
    are rewritten, and those of a fork removed since are not), and the patch
    series is carried onto it by three-way merges. A patch that conflicts
    pauses it exactly as a sync pauses (``--continue`` / ``--abort``).
    ``UP_TO_DATE`` when nothing changed in the namespace.
    """
    project.require_git()
    for line in recover(project):
        observer.warning(line)
    entry = require_fork(project, name)
    name = entry.name
    recorded = other_modules_of(entry)
    if recorded is None:
        raise BadInput(f"{name} uses the {entry.layout} layout: it has no namespace to follow")
    if paused_state(project, name) is not None:
        raise BadInput(
            f"a sync of {name} is waiting at a conflict",
            hint=f"resolve it and run `forkman sync {name} --continue`, or `--abort`",
        )
    current = namespace_owners(project, name)[1]
    if recorded == current:
        return SyncResult(
            name,
            SyncOutcome.UP_TO_DATE,
            entry.version,
            message=f"{name} {entry.version}: its imports follow the namespace already",
        )
    added = sorted(set(current) - set(recorded))
    removed = sorted(set(recorded) - set(current))

    def names(modules: list[str]) -> str:
        if len(modules) <= 5:
            return ", ".join(modules)
        return ", ".join(modules[:4]) + f" and {len(modules) - 4} more"

    why = "; ".join(
        part
        for part in (
            f"now vendored: {names(added)}" if added else "",
            f"no longer vendored: {names(removed)}" if removed else "",
        )
        if part
    )
    require_clean(project, entry, "vendor it again")
    history = history_of(project, entry)
    upstream_commit = history.rev(f"refs/tags/upstream/{entry.version}")
    if upstream_commit is None:
        raise HistoryError(f"the history of {name} has no upstream {entry.version}")
    staging = scratch_dir(project, name, "sync")
    try:
        pristine = staging / "upstream"
        history.checkout(upstream_commit, pristine)
        fetched = FetchedUpstream(name, entry.version, entry.source, pristine)
        observer.step(name, f"vendoring {entry.version} again ({why})")
        onto, sections = vendor_release(
            project, history, entry, fetched, upstream_commit, staging, observer
        )
        _base, originals = series_commits(history, entry)
        headers = load_headers(project, entry)
        state = PausedSync(
            kind=PauseKind.REVENDOR,
            why=why,
            old_version=entry.version,
            version=entry.version,
            source=entry.source,
            upstream_commit=upstream_commit,
            upstream_tree=entry.upstream_tree,
            sections=sections,
            delta={},
            date=now_utc(),
        )
        return carry(
            project,
            entry,
            history,
            state,
            onto,
            originals,
            headers,
            staging,
            observer,
            PauseKind.REVENDOR.value,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
