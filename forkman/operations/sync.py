"""`forkman sync`: move a fork to a new upstream release, carrying its patch series.

The work is a chain of small steps, each callable on its own (the actor
runtime runs them one message at a time):

resolve_target   policy + index -> the release to move to (or none)
fetch_target     download and verify exactly as `fork` does, unpack (staging)
import_release   the pristine tree as the next commit of the ``upstream`` line
                 (objects only: refs move when the sync commits)
review           :func:`~forkman.sources.delta.summarize_delta` of old vs new upstream,
                 then the caller's confirmation
vendor_release   the base the series is carried onto: the new upstream commit
                 (project layout), or a commit of its transformation into the
                 namespace on top of it (namespace layout)
rebase_series    cherry-pick each patch onto that base (three-way merges);
                 absorbed patches are dropped, the first conflict stops
commit_sync      vendored tree, refreshed patch files, history refs and lock,
                 in one transaction -- or, on a conflict, pause_sync: the
                 conflicted tree in place and the transaction *paused*
                 (see :mod:`forkman.store.txn`), until continue_sync or abort_sync.

:func:`sync_fork` and :func:`sync_all` run the chain. :func:`revendor_fork`
runs its second half for a namespace fork whose release stays but whose
namespace changed (another namespace fork was added or removed, so the imports
to rewrite are not the same): the release is transformed again and the series
carried onto the new transformation, with the same pause, continue and abort.
"""

from __future__ import annotations

import enum
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from ..core.errors import BadInput, Blocked, ForkmanError, NotFound
from ..core.observer import NullObserver, Observer
from ..gate.check import other_modules_of
from ..layouts.wiring import refresh_archive
from ..model.lock import GitSource, IndexSource, LockEntry, Source, _parse_source, _source_table
from ..model.project import Project
from ..series.patchfile import PatchHeader
from ..series.rebase import PickKind, SeriesRebase, commit_info
from ..sources.delta import DeltaSummary, summarize_delta
from ..store.history import ForkHistory, HistoryError
from ..store.treehash import hash_manifest, scan_tree
from ..store.txn import ForkTransaction, abort_paused, fault_point, paused_state, recover, resume
from .forks import FetchedUpstream, fetch_upstream, now_utc, require_fork
from .patches import (
    commit_series,
    history_of,
    load_headers,
    remember_tree,
    require_clean,
    series_commits,
    stage_series,
    today,
)
from .worktree import place_tree, snapshot_worktree, with_members

_MARKERS = (b"<<<<<<< ", b">>>>>>> ")


class SyncOutcome(enum.Enum):
    """How a sync of one fork ended."""

    SYNCED = "synced"
    """The fork moved to the new release."""
    UP_TO_DATE = "up-to-date"
    """No newer release is allowed by the fork's constraint."""
    PINNED = "pinned"
    """The fork is pinned; it is never synced."""
    CONFLICT = "conflict"
    """A patch did not merge; the sync is paused (continue or abort)."""
    DRY_RUN = "dry-run"
    """Nothing changed: what a sync would do was reported."""
    DECLINED = "declined"
    """The review was not confirmed; nothing changed."""
    ABORTED = "aborted"
    """A paused sync was undone."""
    FAILED = "failed"
    """An error stopped this fork's sync (``sync_all`` goes on with the others)."""


@dataclass(frozen=True)
class SyncTarget:
    """The release a fork is to move to."""

    name: str
    """The fork."""
    current: str
    """Its version now."""
    version: str
    """The version to move to."""
    spec: str
    """What to fetch: ``pkg==version`` or ``git+URL@REF``."""
    index_url: str | None
    """The index the fork came from (index sources)."""


@dataclass(frozen=True)
class ConflictInfo:
    """Where a paused sync stopped."""

    number: int
    """The patch's position in the series (1-based)."""
    file: str
    """Its patch file."""
    subject: str
    """Its description's first line."""
    files: tuple[str, ...]
    """Conflicted files, relative to the project root."""
    unmarked: tuple[str, ...] = ()
    """Conflicted files git could not mark (binary, or deleted on one side): decide by hand."""


@dataclass(frozen=True)
class SyncResult:
    """The outcome of syncing one fork."""

    name: str
    """The fork."""
    outcome: SyncOutcome
    """How it ended."""
    old_version: str
    """The version before."""
    new_version: str | None = None
    """The version moved (or that would be moved) to."""
    message: str = ""
    """One line for humans."""
    delta: DeltaSummary | None = None
    """What upstream changed (when a new release was looked at)."""
    carried: tuple[str, ...] = ()
    """Subjects of the patches carried onto the new release."""
    dropped: tuple[str, ...] = ()
    """Subjects of the patches dropped because upstream already has them."""
    conflict: ConflictInfo | None = None
    """Where the sync stopped (conflict only)."""
    risks: tuple[Any, ...] = ()
    """Risky changes the upstream delta makes (:class:`forkman.audit.review.Finding`)."""


Confirm = Callable[[SyncTarget, DeltaSummary], bool]
"""Asked before a release is taken: True takes it."""


@dataclass
class RebaseProgress:
    """Where carrying the series stands (JSON-serializable, kept in a paused journal)."""

    onto: str
    """The commit the next patch is picked onto."""
    originals: list[str]
    """The series' original patch commits, in order."""
    done: list[tuple[int, str]] = field(default_factory=list)
    """(index, new commit) of carried patches."""
    dropped: list[int] = field(default_factory=list)
    """Indexes of patches upstream absorbed."""
    next: int = 0
    """Index of the next patch to pick."""
    conflicts: list[str] = field(default_factory=list)
    """Conflicted paths (fork-relative) of patch `next` when paused."""


def sync_state(project: Project, name: str) -> str | None:
    """``"conflict"`` while a sync of `name` waits at a conflict, else None."""
    return "conflict" if paused_state(project, name) is not None else None


# -- steps ------------------------------------------------------------------------------


def _package_name(entry: LockEntry) -> str:
    from ..sources.index import parse_requirement

    assert isinstance(entry.source, IndexSource)
    return parse_requirement(entry.source.requirement)[0]


def resolve_target(
    project: Project,
    entry: LockEntry,
    *,
    to: str | None = None,
    observer: Observer = NullObserver(),
) -> SyncTarget | None:
    """The release `entry` should move to (None: nothing newer is allowed)."""
    policy = project.config.policy(entry.name)
    if isinstance(entry.source, GitSource):
        if not to:
            raise BadInput(
                f"{entry.name} comes from git; say which ref to move to",
                hint=f"forkman sync {entry.name} --to v1.2.0 (a tag, branch or commit)",
            )
        spec = f"git+{entry.source.url}@{to}"
        if entry.source.subdirectory:
            spec += f"#subdirectory={entry.source.subdirectory}"
        return SyncTarget(entry.name, entry.version, to, spec, None)
    from ..sources.http import redact
    from ..sources.index import IndexClient, configured_index, select_release
    from ..sources.interface import DistKind

    package = _package_name(entry)
    prefer = DistKind.WHEEL if entry.source.filename.endswith(".whl") else DistKind.SDIST
    if to is not None:
        try:
            wanted = Version(to)
        except InvalidVersion:
            raise BadInput(f"{to!r} is not a version", hint="e.g. --to 1.2.0") from None
        if policy.constraint is not None and not policy.constraint.contains(
            wanted, prereleases=True
        ):
            raise BadInput(
                f"{to} is outside {entry.name}'s constraint {policy.constraint}",
                hint=f"change constraint in [tool.forkman.forks.{entry.name}] first",
            )
        if wanted == Version(entry.version):
            return None
        specifier = SpecifierSet(f"=={wanted}")
    else:
        specifier = SpecifierSet(f">{entry.version}")
        if policy.constraint is not None:
            specifier &= policy.constraint
    index_url = configured_index(entry.source.index_url, project.config.index_urls)
    if index_url is None:
        raise BadInput(
            f"the lock records {entry.name} from {redact(entry.source.index_url)}, "
            "which is not a configured index",
            hint="forkman fetches only from [tool.forkman] index-url and extra-index-urls; "
            "add that index there if you trust it",
        )
    client = IndexClient([index_url], observer=observer, limits=project.config.network)
    try:
        _index, files = client.project_files(package)
        chosen = select_release(
            files, specifier, prereleases=policy.prereleases, prefer=prefer, name=package
        )
    except NotFound:
        if to is not None:
            raise
        return None
    finally:
        client.session.close()
    return SyncTarget(
        entry.name,
        entry.version,
        str(chosen.version),
        f"{package}=={chosen.version}",
        index_url,
    )


def fetch_target(
    project: Project,
    entry: LockEntry,
    target: SyncTarget,
    staging: Path,
    observer: Observer = NullObserver(),
    *,
    accept_publisher_change: bool = False,
) -> FetchedUpstream:
    """Download and verify the target release exactly as `fork` does; unpack it in `staging`.

    The release's provenance is checked against the fork's recorded publisher:
    another publisher, or no provenance where the previous release had it, is
    refused unless `accept_publisher_change`.
    """
    from ..model.config import DistPreference

    prefer = None
    if isinstance(entry.source, IndexSource):
        prefer = (
            DistPreference.WHEEL if entry.source.filename.endswith(".whl") else DistPreference.SDIST
        )
    return fetch_upstream(
        project,
        target.spec,
        entry.name,
        staging,
        index_url=target.index_url,
        prefer=prefer,
        prereleases=True,
        previous_provenance=entry.sections.get("provenance"),
        accept_publisher_change=accept_publisher_change,
        observer=observer,
    )


def fetch_release_tree(
    project: Project,
    entry: LockEntry,
    version: str,
    staging: Path,
    observer: Observer = NullObserver(),
) -> Path:
    """The pristine tree of upstream `version` of fork `entry`, fetched into `staging`.

    For commands that read a release the fork's history has not imported
    (``forkman review --upstream``, ``forkman diff --upstream`` after a refused
    sync or a dry run): downloaded and checked exactly as ``sync`` does
    (hashes, provenance), nothing recorded.
    """
    target = resolve_target(project, entry, to=version, observer=observer)
    if target is None:
        raise NotFound(f"{entry.name} is at {version}: nothing to fetch")
    return fetch_target(project, entry, target, staging, observer).tree


@dataclass(frozen=True)
class ImportedRelease:
    """A release committed on the fork's upstream line (refs not moved yet)."""

    commit: str
    """The new upstream commit (parent: the current upstream tip)."""
    tree_hash: str
    """The pristine tree's forkman tree hash."""


def import_release(history: ForkHistory, fetched: FetchedUpstream) -> ImportedRelease:
    """Commit the pristine tree of `fetched` as the next upstream commit (objects only)."""
    manifest, special = scan_tree(fetched.tree)
    if special:
        raise BadInput(f"{fetched.name}: {special[0].path} is a {special[0].what}")
    tree = history.snapshot(fetched.tree)
    parent = history.rev("refs/heads/upstream")
    from .forks import _describe_source

    commit = history.commit(
        tree,
        [parent] if parent else [],
        f"Import upstream {fetched.version}\n\n{_describe_source(fetched.source)}\n",
    )
    return ImportedRelease(commit, hash_manifest(manifest.values()))


def vendor_release(
    project: Project,
    history: ForkHistory,
    entry: LockEntry,
    fetched: FetchedUpstream,
    upstream_commit: str,
    staging: Path,
    observer: Observer = NullObserver(),
) -> tuple[str, dict[str, Any]]:
    """(base commit, lock sections) the series is carried onto, for release `fetched`.

    Project layout: the upstream commit itself. Namespace layout: the release
    transformed into the namespace (with the project's other namespace
    modules as they are now), committed on top of the upstream commit, and its
    ``namespace`` lock section.
    """
    if entry.layout != "namespace":
        return upstream_commit, {}
    from .forks import build_vendored, namespace_owners

    _owners, others = namespace_owners(project, entry.name)
    vendored = build_vendored(
        project, fetched, staging, layout="namespace", other_modules=others, observer=observer
    )
    tree = history.snapshot(vendored.tree)
    base = history.commit(tree, [upstream_commit], f"Vendor {fetched.version}\n")
    return base, dict(vendored.sections)


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


def rebase_series(
    history: ForkHistory,
    progress: RebaseProgress,
    headers: Sequence[PatchHeader],
    tmp_parent: Path,
    *,
    export_to: Path | None = None,
    final_to: Path | None = None,
    observer: Observer = NullObserver(),
    name: str = "",
) -> RebaseProgress:
    """Pick the remaining patches onto ``progress.onto``; stops at the first conflict.

    On a conflict the worktree (with conflict markers) is copied to `export_to`;
    when every patch went through, the finished tree is moved to `final_to`.
    """
    with SeriesRebase(history, tmp_parent, progress.onto) as rebase:
        while progress.next < len(progress.originals):
            index = progress.next
            header = headers[index]
            outcome = rebase.pick(progress.originals[index])
            if outcome.kind is PickKind.CONFLICT:
                progress.conflicts = list(outcome.conflicts)
                if export_to is not None:
                    rebase.export(export_to)
                return progress
            if outcome.kind is PickKind.EMPTY:
                observer.step(
                    name,
                    f"patch {index + 1} ({header.subject}) is already upstream: dropped",
                )
                progress.dropped.append(index)
            else:
                assert outcome.commit is not None
                observer.step(name, f"patch {index + 1} ({header.subject}) carried")
                progress.done.append((index, outcome.commit))
                progress.onto = outcome.commit
            progress.next += 1
        if final_to is not None:
            rebase.take(final_to)
    progress.conflicts = []
    return progress


# -- commit, pause, continue, abort --------------------------------------------------


def _new_entry(
    project: Project,
    entry: LockEntry,
    state: dict[str, Any],
    built_records: Any,
    vendored_tree: str,
    dropped: list[str],
) -> LockEntry:
    sections = dict(entry.sections)
    new_sections = state.get("sections", {})
    if state.get("kind") == REVENDOR:
        # the same release, transformed again: only the namespace section changes
        sections.update(new_sections)
        return replace(
            entry,
            vendored_tree=vendored_tree,
            patches=tuple(built_records),
            sections=sections,
        )
    # provenance belongs to a release file: the new release's (verified) or none at all
    sections.pop("provenance", None)
    sections.update(new_sections)
    sync_section = {
        "from": state["old_version"],
        "to": state["version"],
        "date": state["date"],
        **state["delta"],
        "carried-patches": len(built_records),
        "dropped-patches": dropped,
    }
    sections["sync"] = sync_section
    return replace(
        entry,
        version=state["version"],
        source=_parse_source(state["source"], "sync"),
        upstream_tree=state["upstream_tree"],
        vendored_tree=vendored_tree,
        fetched=state["date"],
        patches=tuple(built_records),
        sections=sections,
    )


REVENDOR = "revendor"
"""The ``kind`` of a paused or finishing :func:`revendor_fork` (a sync's has none)."""


def _progress_from(state: dict[str, Any]) -> RebaseProgress:
    raw = state["progress"]
    return RebaseProgress(
        onto=raw["onto"],
        originals=list(raw["originals"]),
        done=[(int(i), str(c)) for i, c in raw["done"]],
        dropped=[int(i) for i in raw["dropped"]],
        next=int(raw["next"]),
        conflicts=list(raw["conflicts"]),
    )


def _progress_data(progress: RebaseProgress) -> dict[str, Any]:
    return {
        "onto": progress.onto,
        "originals": progress.originals,
        "done": [[i, c] for i, c in progress.done],
        "dropped": progress.dropped,
        "next": progress.next,
        "conflicts": progress.conflicts,
    }


def _finish_or_pause(
    project: Project,
    entry: LockEntry,
    history: ForkHistory,
    txn: ForkTransaction,
    state: dict[str, Any],
    progress: RebaseProgress,
    headers: Sequence[PatchHeader],
    staging: Path,
    observer: Observer,
) -> SyncResult:
    """Within `txn`: commit the sync, or pause it at the conflict in `progress`."""
    name = entry.name
    dropped = [headers[i].subject for i in progress.dropped]
    if progress.conflicts:
        conflicted = staging / "conflicted"
        unmarked = tuple(
            f"{entry.path}/{p}" for p in progress.conflicts if not _has_markers(conflicted / p)
        )
        index = progress.next
        revendor = state.get("kind") == REVENDOR
        ours = (
            f"{state['version']} vendored again" if revendor else f"upstream {state['version']}"
        ) + (" + earlier patches" if progress.done else "")
        theirs = f"patch {index + 1}: {headers[index].subject}"
        for rel in progress.conflicts:
            _label_markers(conflicted / rel, ours, theirs)
        members = place_tree(
            txn, project, entry, conflicted, also_previous=state.get("members") or ()
        )
        fault_point("sync-pause-tree")
        state = {**state, "progress": _progress_data(progress)}
        if members is not None:
            state["members"] = members
        txn.pause(state)
        index = progress.next
        info = ConflictInfo(
            number=index + 1,
            file=entry.patches[index].file,
            subject=headers[index].subject,
            files=tuple(f"{entry.path}/{p}" for p in progress.conflicts),
            unmarked=unmarked,
        )
        observer.step(name, f"conflict in patch {index + 1} ({headers[index].subject})")
        into = f"{state['version']} vendored again" if revendor else state["version"]
        return SyncResult(
            name,
            SyncOutcome.CONFLICT,
            state["old_version"],
            state["version"],
            f"patch {index + 1} ({entry.patches[index].file}) does not merge into {into}",
            dropped=tuple(dropped),
            conflict=info,
        )
    day = today()
    items = [(headers[i].with_update(day), commit) for i, commit in progress.done]
    built = stage_series(
        project, history, name, items, progress.onto, staging / "out", vendored=staging / "final"
    )
    new = _new_entry(project, entry, state, built.records, built.vendored_tree, dropped)
    fault_point("sync-staged")
    refs = {}
    if state.get("kind") != REVENDOR:
        refs = {
            "refs/heads/upstream": state["upstream_commit"],
            f"refs/tags/upstream/{state['version']}": state["upstream_commit"],
        }
    members = commit_series(
        txn, project, entry, built, refs, also_previous=state.get("members") or ()
    )
    new = with_members(new, members)
    fault_point("sync-refs")
    txn.commit(lambda lock: lock.with_entry(new))
    remember_tree(project, new, observer)
    carried = f"{len(items)} patch(es) carried" + (
        f", {len(dropped)} dropped (already upstream)" if dropped else ""
    )
    if state.get("kind") == REVENDOR:
        observer.step(name, f"vendored {state['version']} again")
        message = f"{name} {state['version']}: vendored again ({state['why']}), {carried}"
    else:
        observer.step(name, f"synced {state['old_version']} -> {state['version']}")
        message = f"{name}: {state['old_version']} -> {state['version']}, {carried}"
    return SyncResult(
        name,
        SyncOutcome.SYNCED,
        state["old_version"],
        state["version"],
        message,
        carried=tuple(h.subject for h, _ in items),
        dropped=tuple(dropped),
    )


def _carry(
    project: Project,
    entry: LockEntry,
    history: ForkHistory,
    state: dict[str, Any],
    onto: str,
    originals: list[str],
    headers: Sequence[PatchHeader],
    staging: Path,
    observer: Observer,
    operation: str,
) -> SyncResult:
    """Carry the series onto `onto`, then commit it, or pause at a conflict: one transaction."""
    progress = rebase_series(
        history,
        RebaseProgress(onto, originals),
        headers,
        staging,
        export_to=staging / "conflicted",
        final_to=staging / "final",
        observer=observer,
        name=entry.name,
    )
    fault_point(f"{operation}-rebased")
    namespace = entry.layout == "namespace"
    with ForkTransaction(
        project, entry.name, operation, namespace=namespace, archive=refresh_archive
    ) as txn:
        return _finish_or_pause(
            project, entry, history, txn, state, progress, headers, staging, observer
        )


def _staging(project: Project, name: str) -> Path:
    project.ensure_state_dir()
    parent = project.state_dir / "tmp"
    parent.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"sync-{name}-", dir=parent))


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
    staging = _staging(project, name)
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
        state: dict[str, Any] = {
            "old_version": entry.version,
            "version": fetched.version,
            "source": _source_table(fetched.source),
            "upstream_commit": imported.commit,
            "upstream_tree": imported.tree_hash,
            "sections": {**fetched.sections, **vendored_sections, "review": risk.lock_section()},
            "delta": delta.as_section(),
            "date": now_utc(),
        }
        result = _carry(
            project, entry, history, state, onto, originals, headers, staging, observer, "sync"
        )
        return replace(result, delta=delta)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def stale_namespace_forks(project: Project) -> list[str]:
    """Namespace forks whose imports were rewritten for another set of namespace modules.

    Adding or removing a namespace fork changes which imports the others must
    rewrite (``import urllib3`` becomes ``from ns import urllib3`` once urllib3
    is vendored, and back when it goes): :func:`revendor_fork` brings them up
    to date.
    """
    from .forks import namespace_owners

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
    from .forks import FetchedUpstream, namespace_owners

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
    staging = _staging(project, name)
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
        state: dict[str, Any] = {
            "kind": REVENDOR,
            "why": why,
            "old_version": entry.version,
            "version": entry.version,
            "source": _source_table(entry.source),
            "upstream_commit": upstream_commit,
            "upstream_tree": entry.upstream_tree,
            "sections": sections,
            "delta": {},
            "date": now_utc(),
        }
        return _carry(
            project, entry, history, state, onto, originals, headers, staging, observer, REVENDOR
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _label_markers(path: Path, ours: str, theirs: str) -> None:
    """Name the two sides of git's conflict markers for the reader."""
    if not path.is_file() or path.is_symlink():
        return
    data = path.read_bytes()
    out = []
    changed = False
    for line in data.splitlines(keepends=True):
        body = line.rstrip(b"\r\n")
        end = line[len(body) :]
        if body == b"<<<<<<< HEAD":
            line, changed = b"<<<<<<< " + ours.encode() + end, True
        elif body.startswith(b">>>>>>> ") and body != b">>>>>>> ":
            line, changed = b">>>>>>> " + theirs.encode() + end, True
        out.append(line)
    if changed:
        path.write_bytes(b"".join(out))


def _has_markers(path: Path) -> bool:
    """Whether `path` still holds conflict markers."""
    if not path.is_file() or path.is_symlink():
        return False
    return any(
        line.startswith(_MARKERS) or line == b"=======" for line in path.read_bytes().splitlines()
    )


def _unresolved(project: Project, entry: LockEntry, paths: Sequence[str]) -> list[str]:
    return [f"{entry.path}/{rel}" for rel in paths if _has_markers(project.root / entry.path / rel)]


def continue_sync(
    project: Project, name: str, *, observer: Observer = NullObserver()
) -> SyncResult:
    """Record the resolution of the paused patch and carry the rest of the series."""
    project.require_git()
    for line in recover(project):
        observer.warning(line)
    entry = require_fork(project, name)
    name = entry.name
    state = paused_state(project, name)
    if state is None:
        raise BadInput(f"no sync of {name} is waiting at a conflict")
    progress = _progress_from(state)
    left = _unresolved(project, entry, progress.conflicts)
    if left:
        raise BadInput(
            f"conflict markers remain in {', '.join(left)}",
            hint="edit the files to resolve every <<<<<<< ... >>>>>>> block, then run "
            f"`forkman sync {name} --continue` again (or `--abort`)",
        )
    history = history_of(project, entry)
    headers = load_headers(project, entry)
    index = progress.next
    tree = snapshot_worktree(history, project, entry, state.get("members"))
    if tree == history.tree_of(progress.onto):
        observer.step(
            name, f"patch {index + 1} ({headers[index].subject}) resolved to nothing: dropped"
        )
        progress.dropped.append(index)
    else:
        info = commit_info(history, progress.originals[index])
        commit = history.commit(
            tree, [progress.onto], info.message, author=info.author, date=info.date
        )
        progress.done.append((index, commit))
        progress.onto = commit
        observer.step(name, f"patch {index + 1} ({headers[index].subject}) resolved")
    progress.next += 1
    progress.conflicts = []
    fault_point("continue-recorded")
    staging = _staging(project, name)
    try:
        progress = rebase_series(
            history,
            progress,
            headers,
            staging,
            export_to=staging / "conflicted",
            final_to=staging / "final",
            observer=observer,
            name=name,
        )
        with resume(project, name, archive=refresh_archive) as txn:
            fault_point("continue-resumed")
            result = _finish_or_pause(
                project, entry, history, txn, state, progress, headers, staging, observer
            )
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def abort_sync(project: Project, name: str, *, observer: Observer = NullObserver()) -> SyncResult:
    """Undo a paused sync of `name`: every file, ref and the lock as before it."""
    project.require_git()
    entry = require_fork(project, name)
    state = paused_state(project, entry.name)
    if state is None:
        raise BadInput(f"no sync of {entry.name} is waiting at a conflict")
    abort_paused(project, entry.name)
    what = (
        f"vendoring {state['version']} again"
        if state.get("kind") == REVENDOR
        else f"sync to {state['version']}"
    )
    observer.step(entry.name, f"{what} aborted")
    return SyncResult(
        entry.name,
        SyncOutcome.ABORTED,
        entry.version,
        state["version"],
        f"{entry.name}: {what} aborted; back at {entry.version}",
    )


def sync_all(
    project: Project,
    *,
    to: str | None = None,
    yes: bool = False,
    dry_run: bool = False,
    confirm: Confirm | None = None,
    accept_publisher_change: bool = False,
    accept_risk: bool = False,
    observer: Observer = NullObserver(),
) -> list[SyncResult]:
    """Sync every fork in the lock, one result each.

    A conflict pauses only its own fork; an error (a dirty tree, an index that
    cannot be reached, a release that needs confirmation) is that fork's
    ``FAILED`` result, and the other forks go on.
    """
    if to is not None:
        raise BadInput("--to names one release of one fork", hint="forkman sync NAME --to VERSION")
    results = []
    for entry in project.load_lock():
        try:
            result = sync_fork(
                project,
                entry.name,
                yes=yes,
                dry_run=dry_run,
                confirm=confirm,
                accept_publisher_change=accept_publisher_change,
                accept_risk=accept_risk,
                observer=observer,
            )
        except ForkmanError as exc:
            text = exc.message + (f" ({exc.hint})" if exc.hint else "")
            result = SyncResult(entry.name, SyncOutcome.FAILED, entry.version, message=text)
        results.append(result)
    return results


def source_of(state: dict[str, Any]) -> Source:
    """The upstream source a paused sync is moving to."""
    return _parse_source(state["source"], "sync")
