"""`forkman sync`: move a fork to a new upstream release, carrying its patch series.

The work is a chain of small steps, each callable on its own (the actor
runtime runs them one message at a time):

resolve_target   policy + index -> the release to move to (or none)
fetch_target     download and verify exactly as `fork` does, unpack (staging)
import_release   the pristine tree as the next commit of the ``upstream`` line
                 (objects only: refs move when the sync commits)
                 (these three: :mod:`forkman.operations.release`)
review           :func:`~forkman.sources.delta.summarize_delta` of old vs new upstream,
                 then the caller's confirmation
vendor_release   the base the series is carried onto: the new upstream commit
                 (project layout), or a commit of its transformation into the
                 namespace on top of it (namespace layout)
rebase_series    cherry-pick each patch onto that base (three-way merges);
                 absorbed patches are dropped, the first conflict stops
                 (:mod:`forkman.series.rebase`)
commit           vendored tree, refreshed patch files, history refs and lock,
                 in one transaction -- or, on a conflict, a pause until
                 continue_sync or abort_sync (:mod:`forkman.operations.carry`).

:func:`sync_fork` runs the chain.
:func:`~forkman.operations.revendor.revendor_fork` runs its second half for a
namespace fork whose release stays but whose namespace changed (another
namespace fork was added or removed, so the imports to rewrite are not the
same): the release is transformed again and the series carried onto the new
transformation, with the same pause, continue and abort.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core.errors import BadInput, Blocked
from ..core.observer import NullObserver, Observer
from ..model.lock import GitSource, LockEntry
from ..model.project import Project
from ..series.rebase import RebaseProgress, rebase_series
from ..series.store import load_headers, series_commits
from ..sources.delta import DeltaSummary, summarize_delta
from ..store.history import ForkHistory
from ..store.txn import fault_point, paused_state, recover
from .carry import PausedSync, PauseKind, carry
from .carry import abort_sync as abort_sync
from .carry import continue_sync as continue_sync
from .carry import sync_state as sync_state
from .forks import require_fork
from .forkseries import history_of, require_clean, scratch_dir
from .release import ImportedRelease, fetch_target, import_release, vendor_release
from .release import fetch_release_tree as fetch_release_tree
from .release import resolve_target as resolve_target
from .revendor import revendor_fork as revendor_fork
from .revendor import stale_namespace_forks as stale_namespace_forks
from .syncresult import Confirm, SyncResult
from .syncresult import ConflictInfo as ConflictInfo
from .syncresult import SyncOutcome as SyncOutcome
from .upstream import FetchedUpstream, now_utc

# -- steps ------------------------------------------------------------------------------


def review(
    history: ForkHistory,
    entry: LockEntry,
    fetched: FetchedUpstream,
    imported: ImportedRelease,
    staging: Path,
) -> DeltaSummary:
    """Summarize what upstream changed from the fork's release to `fetched`."""
    from ..sources.delta import is_metadata, summarize_changes

    old_rev = history.rev(f"refs/tags/upstream/{entry.version}") or history.rev(
        "refs/heads/upstream"
    )
    old = staging / "old-upstream"
    old.mkdir()
    if old_rev is None:
        return summarize_delta(old, fetched.tree)
    out = history.git(
        "diff-tree", "-r", "-z", "--no-renames", "--name-status", old_rev, imported.commit
    )
    fields = [f for f in out.split("\0") if f]
    kinds: dict[str, list[str]] = {"A": [], "D": [], "M": []}
    for status, path in zip(fields[::2], fields[1::2], strict=True):
        kinds.get(status[:1], kinds["M"]).append(path)
    root_names = history.git("ls-tree", "--name-only", "-z", old_rev).split("\0")
    history.checkout(old_rev, old, [n for n in root_names if n and is_metadata(n)])
    return summarize_changes(
        old, fetched.tree, added=kinds["A"], removed=kinds["D"], changed=kinds["M"]
    )


def risk_review(
    project: Project,
    history: ForkHistory,
    entry: LockEntry,
    fetched: FetchedUpstream,
    staging: Path,
) -> Any:
    """Scan the upstream delta for risky changes (:mod:`forkman.audit.review`)."""
    from ..audit._settings import load_settings
    from ..audit.review import ReviewReport, review_delta

    old_rev = history.rev(f"refs/tags/upstream/{entry.version}")
    old: Path | None = None
    if old_rev is not None:
        old = staging / "old-upstream-full"
        history.checkout(old_rev, old)
    findings = review_delta(old, fetched.tree)
    settings = load_settings(project)
    return ReviewReport(
        entry.name, entry.version, fetched.version, tuple(findings), settings.block_on
    )


# -- commit, pause, continue, abort --------------------------------------------------


def sync_fork(
    project: Project,
    name: str,
    *,
    to: str | None = None,
    yes: bool = False,
    dry_run: bool = False,
    confirm: Confirm | None = None,
    accept_publisher_change: bool = False,
    accept_risk: bool = False,
    observer: Observer = NullObserver(),
) -> SyncResult:
    """Move fork `name` to the newest release its policy allows (or `to`).

    Before anything changes, the upstream delta is summarized and `confirm`
    asked (unless `yes`); without either the sync is refused, so automation
    never takes a release silently.
    """
    project.require_git()
    for line in recover(project):
        observer.warning(line)
    entry = require_fork(project, name)
    name = entry.name
    if paused_state(project, name) is not None:
        raise BadInput(
            f"a sync of {name} is waiting at a conflict",
            hint=f"resolve it and run `forkman sync {name} --continue`, or `--abort`",
        )
    if project.config.policy(name).pinned:
        observer.step(name, "pinned: not synced")
        return SyncResult(
            name, SyncOutcome.PINNED, entry.version, message=f"{name} is pinned; skipped"
        )
    require_clean(project, entry, "sync")
    history = history_of(project, entry)
    fault_point("sync-start")
    target = resolve_target(project, entry, to=to, observer=observer)
    if target is None:
        return SyncResult(
            name,
            SyncOutcome.UP_TO_DATE,
            entry.version,
            message=f"{name} {entry.version}: no newer release allowed by its constraint"
            if to is None
            else f"{name} is already at {entry.version}",
        )
    if not (yes or dry_run or confirm is not None):
        raise BadInput(
            f"taking {name} {target.version} needs confirmation and no one can answer",
            hint=f"review it with `forkman sync {name} --dry-run`, then pass --yes to take it",
        )
    fault_point("sync-resolved")
    staging = scratch_dir(project, name, "sync")
    try:
        fetched = fetch_target(
            project,
            entry,
            target,
            staging,
            observer,
            accept_publisher_change=accept_publisher_change,
        )
        fault_point("sync-fetched")
        if (
            isinstance(entry.source, GitSource)
            and isinstance(fetched.source, GitSource)
            and fetched.source.commit == entry.source.commit
        ):
            return SyncResult(
                name, SyncOutcome.UP_TO_DATE, entry.version, message=f"{name} is already there"
            )
        observer.step(name, f"importing upstream {fetched.version}")
        imported = import_release(history, fetched)
        fault_point("sync-imported")
        delta = review(history, entry, fetched, imported, staging)
        risk = risk_review(project, history, entry, fetched, staging)
        fault_point("sync-reviewed")
        _base, originals = series_commits(history, entry)
        headers = load_headers(project, entry)
        onto, vendored_sections = vendor_release(
            project, history, entry, fetched, imported.commit, staging, observer
        )
        if vendored_sections and not dry_run:
            from ..layouts.transform import unrewritten_warning

            warning = unrewritten_warning(name, vendored_sections)
            if warning:
                observer.warning(warning)
        if dry_run:
            progress = rebase_series(
                history,
                RebaseProgress(onto, originals),
                headers,
                staging,
                observer=observer,
                name=name,
            )
            conflict = None
            if progress.conflicts:
                i = progress.next
                conflict = ConflictInfo(
                    i + 1,
                    entry.patches[i].file,
                    headers[i].subject,
                    tuple(f"{entry.path}/{p}" for p in progress.conflicts),
                )
            return SyncResult(
                name,
                SyncOutcome.DRY_RUN,
                entry.version,
                fetched.version,
                f"{name}: would move {entry.version} -> {fetched.version}",
                delta=delta,
                risks=risk.findings,
                carried=tuple(headers[i].subject for i, _ in progress.done),
                dropped=tuple(headers[i].subject for i in progress.dropped),
                conflict=conflict,
            )
        if risk.blocking and not accept_risk:
            shown = "; ".join(
                f"{f.severity.name.lower()} {f.rule} {f.file}:{f.line}" for f in risk.blocking[:5]
            )
            raise Blocked(
                f"upstream {entry.version} -> {fetched.version} of {name} has "
                f"{len(risk.blocking)} risky change(s) at or above "
                f"{risk.block_on.name.lower()}: {shown}",
                hint=f"read them with `forkman review {name} --upstream "
                f"{entry.version}..{fetched.version}` after a dry run, or take the release "
                "anyway with --accept-risk",
            )
        if not yes:
            assert confirm is not None
            if not confirm(target, delta):
                return SyncResult(
                    name,
                    SyncOutcome.DECLINED,
                    entry.version,
                    fetched.version,
                    f"{name}: {fetched.version} not taken",
                    delta=delta,
                )
        fault_point("sync-confirmed")
        state = PausedSync(
            kind=PauseKind.SYNC,
            old_version=entry.version,
            version=fetched.version,
            source=fetched.source,
            upstream_commit=imported.commit,
            upstream_tree=imported.tree_hash,
            sections={**fetched.sections, **vendored_sections, "review": risk.lock_section()},
            delta=delta.as_section(),
            date=now_utc(),
        )
        result = carry(
            project, entry, history, state, onto, originals, headers, staging, observer, "sync"
        )
        return replace(result, delta=delta)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
