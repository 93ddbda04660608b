"""A fork's patch series: record, list, drop, reorder, edit, import; restore; diff.

The series lives in three places that always change together (one
:class:`~forkman.store.txn.ForkTransaction`): the patch files
(``patches/<fork>/0001-<slug>.patch``), the ``patched`` branch of the fork's
history (one commit per patch on top of the base commit) and the lock
(:class:`~forkman.model.lock.PatchRecord` per patch, the vendored tree hash).

Both layouts carry a series. The base commit is the vendored tree as forkman
made it: the upstream tree itself (project layout), or its transformation into
the namespace (namespace layout), whose patches are relative to the namespace
folder and touch only the fork's own members there (:mod:`forkman.operations.worktree`).

Rewriting the series (drop, move, edit, import) replays the commits with
real three-way merges (:mod:`forkman.series.rebase`) onto the base; a patch that no
longer applies after the change refuses the whole operation, nothing changed.
"""

from __future__ import annotations

import datetime as _dt
import enum
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.errors import BadInput, ForkmanError, IntegrityError
from ..core.observer import NullObserver, Observer
from ..gate.check import (
    FindingKind,
    fork_tree_findings,
    leftover_hint,
    members_of,
    other_modules_of,
    save_manifest,
    scan_fork,
)
from ..layouts.wiring import refresh_archive
from ..model.lock import LockEntry, PatchRecord
from ..model.project import Project
from ..series.patchfile import PatchHeader, parse_patch, render_patch, slugify
from ..series.rebase import PickKind, SeriesRebase, commit_info
from ..store.history import ForkHistory, HistoryError
from ..store.treehash import file_digest, hash_manifest, scan_tree
from ..store.txn import ForkTransaction, fault_point, paused_state, recover
from .worktree import fork_root, place_tree, snapshot_worktree, tree_members, with_members


class PatchStatus(enum.Enum):
    """The state of one patch file against the lock."""

    OK = "ok"
    """The file exists and has its recorded hash."""
    EDITED = "edited"
    """The file was changed outside forkman."""
    MISSING = "missing"
    """The file is gone."""


@dataclass(frozen=True)
class PatchInfo:
    """One row of `forkman patches`."""

    number: int
    """1-based position in the series."""
    file: str
    """The patch file, relative to the project root."""
    subject: str
    """First line of its description."""
    status: PatchStatus
    """Whether the file matches the lock."""
    applied: bool
    """Whether the fork's history has it applied on the patched branch."""
    fixes: tuple[str, ...]
    """Vulnerability ids it fixes."""


@dataclass(frozen=True)
class SeriesItem:
    """A patch to (re)build: its header and the commit that holds its change."""

    header: PatchHeader
    """The patch file's header."""
    commit: str
    """A commit whose diff against its parent is the patch."""


def today() -> str:
    """Today's date (UTC), YYYY-MM-DD, for Last-Update."""
    return _dt.datetime.now(_dt.UTC).date().isoformat()


def default_author(project: Project) -> str:
    """``Name <email>`` from the consumer repository's git identity."""
    proc = subprocess.run(
        ["git", "var", "GIT_AUTHOR_IDENT"],
        cwd=project.root,
        capture_output=True,
        text=True,
        check=False,
    )
    ident = proc.stdout.strip()
    if proc.returncode != 0 or "<" not in ident:
        return "forkman <forkman@localhost>"
    return ident[: ident.rindex(">") + 1]


def history_of(project: Project, entry: LockEntry) -> ForkHistory:
    """The fork's history, rebuilt from the lock when `.forkman/` lost it."""
    history = ForkHistory(project.fork_git_dir(entry.name))
    if not history.exists():
        # .forkman/ is a cache (a fresh clone has none): rebuild it from the lock
        from .rebuild import rebuild_history

        return rebuild_history(project, entry)
    return history


def series_commits(history: ForkHistory, entry: LockEntry) -> tuple[str, list[str]]:
    """(base commit, patch commits oldest first) of the fork's patched branch."""
    count = len(entry.patches)
    out = history.git(
        "rev-list", "--first-parent", f"--max-count={count + 1}", "refs/heads/patched", check=False
    )
    commits = out.split()[::-1]
    if not commits:
        raise HistoryError(f"the history of {entry.name} has no patched branch")
    if len(commits) != count + 1:
        raise HistoryError(
            f"the history of {entry.name} has fewer commits than the lock's {count} patches"
        )
    return commits[0], commits[1:]


def require_no_pause(project: Project, name: str) -> None:
    """Refuse while a sync of `name` waits at a conflict."""
    if paused_state(project, name) is not None:
        raise BadInput(
            f"{name} has a sync waiting at a conflict",
            hint=f"resolve the conflict and run `forkman sync {name} --continue`, "
            f"or undo the sync with `forkman sync {name} --abort`",
        )


def vendored_manifest(project: Project, entry: LockEntry) -> str:
    """The tree hash of the fork's vendored tree as it is on disk."""
    manifest, _ = scan_fork(project.root, entry, None)
    return hash_manifest(manifest.values())


def require_clean(project: Project, entry: LockEntry, doing: str) -> None:
    """Refuse when the vendored tree or the patch files differ from the lock.

    Installer leftovers (``build/``, ``*.egg-info``) are not edits: the refusal
    says to remove them, never to record them.
    """
    name = entry.name
    if vendored_manifest(project, entry) != entry.vendored_tree:
        findings = fork_tree_findings(project.root, project.state_dir, entry)
        left = [f.path for f in findings if f.kind is FindingKind.LEFTOVER]
        edits = [f for f in findings if f.kind is not FindingKind.LEFTOVER]
        hint = (
            f"record them as a patch with `forkman patch {name} -m MESSAGE`, or discard "
            f"them with `forkman restore {name}` (`forkman check {name}` lists them)"
        )
        if not edits and left:
            raise BadInput(
                f"{entry.path} holds installer leftovers; refusing to {doing}",
                hint=leftover_hint(left),
            )
        raise BadInput(
            f"{entry.path} has edits that are not recorded; refusing to {doing}",
            hint=hint + ("; " + leftover_hint(left) if left else ""),
        )
    for record in entry.patches:
        path = project.root / record.file
        if not path.is_file() or file_digest(path) != record.sha256:
            raise BadInput(
                f"{record.file} differs from the lock; refusing to {doing}",
                hint="restore the patch file from git (git checkout -- PATH)",
            )


def require_no_leftovers(project: Project, entry: LockEntry, doing: str) -> None:
    """Refuse while installer leftovers lie in the fork's folder (they are never recorded)."""
    if members_of(entry) is not None:
        return
    findings = fork_tree_findings(project.root, project.state_dir, entry)
    left = [f.path for f in findings if f.kind is FindingKind.LEFTOVER]
    if left:
        raise BadInput(
            f"{entry.path} holds installer leftovers; refusing to {doing}",
            hint=leftover_hint(left),
        )


def patch_path(project: Project, name: str, number: int, subject: str) -> Path:
    """Where patch `number` of fork `name` lives."""
    return project.patches_path(name) / f"{number:04d}-{slugify(subject)}.patch"


def load_headers(project: Project, entry: LockEntry) -> list[PatchHeader]:
    """The headers of the fork's patch files, in series order."""
    headers = []
    for record in entry.patches:
        try:
            text = (project.root / record.file).read_text(encoding="utf-8")
        except OSError as exc:
            raise IntegrityError(f"cannot read {record.file}: {exc.strerror}") from None
        headers.append(parse_patch(text)[0])
    return headers


@dataclass(frozen=True)
class BuiltSeries:
    """A rebuilt series staged on disk, ready to be committed in a transaction."""

    tip: str
    """The new tip of the patched branch."""
    patches_dir: Path
    """The staged patches folder (every patch file of the series)."""
    records: tuple[PatchRecord, ...]
    """The lock's patch records, in order."""
    vendored: Path
    """The staged vendored tree."""
    vendored_tree: str
    """Its tree hash."""


def stage_series(
    project: Project,
    history: ForkHistory,
    name: str,
    items: Sequence[tuple[PatchHeader, str]],
    tip: str,
    staging: Path,
    *,
    vendored: Path | None = None,
) -> BuiltSeries:
    """Stage patch files (header + diff of each commit) and the vendored tree of `tip`.

    `vendored`: a folder that already holds the tree of `tip` (else it is checked out).
    """
    patches_dir = staging / "patches"
    patches_dir.mkdir(parents=True)
    records = []
    for number, (header, commit) in enumerate(items, start=1):
        body = history.diff(f"{commit}~1", commit)
        target = patch_path(project, name, number, header.subject)
        data = render_patch(header, body).encode()
        (patches_dir / target.name).write_bytes(data)
        records.append(
            PatchRecord(
                file=project.relpath(target),
                sha256=file_digest(patches_dir / target.name),
                fixes=header.fixes,
            )
        )
    if vendored is None or not vendored.is_dir():
        vendored = staging / "vendored"
        history.checkout(tip, vendored)
    manifest, _ = scan_tree(vendored)
    return BuiltSeries(tip, patches_dir, tuple(records), vendored, hash_manifest(manifest.values()))


def commit_series(
    txn: ForkTransaction,
    project: Project,
    entry: LockEntry,
    built: BuiltSeries,
    more_refs: dict[str, str] | None = None,
    *,
    also_previous: Sequence[str] = (),
    consumed: Sequence[Path] = (),
) -> list[str] | None:
    """Within `txn`: put the staged tree and patch files in place and move the refs.

    Returns the fork's new members (namespace layout; None for the project
    layout). `also_previous`: members a paused sync put in place besides the
    lock's; `consumed`: files of the series folder that became patches of the
    series (imported from there), which are not kept beside it.
    """
    members = place_tree(txn, project, entry, built.vendored, also_previous=also_previous)
    fault_point("series-tree")
    series_dir = project.patches_path(entry.name)
    used = {path.resolve() for path in consumed}
    keep = [p for p in _unrelated_files(project, entry, series_dir) if p.resolve() not in used]
    for path in keep:  # notes or other files beside the series stay
        target = built.patches_dir / path.name
        if not target.exists():
            shutil.copy2(path, target)
    if built.records or keep:
        txn.replace_path(series_dir, built.patches_dir)
    elif series_dir.exists():
        txn.replace_path(series_dir, None)
    fault_point("series-patches")
    refs = {"refs/heads/patched": built.tip, **(more_refs or {})}
    txn.set_refs(project.fork_git_dir(entry.name), refs)
    fault_point("series-ref")
    return members


def _unrelated_files(project: Project, entry: LockEntry, series_dir: Path) -> list[Path]:
    """Files in the series folder that are not patches of the series."""
    if not series_dir.is_dir():
        return []
    recorded = {record.file for record in entry.patches}
    return [
        path
        for path in sorted(series_dir.iterdir())
        if path.is_file() and project.relpath(path) not in recorded
    ]


def remember_tree(project: Project, entry: LockEntry, observer: Observer = NullObserver()) -> None:
    """Cache the manifest of `entry`'s recorded tree (for `forkman check`'s per-file report)
    and stage its files the consumer's git ignores (see
    :func:`forkman.operations.forks.keep_ignored`)."""
    from .forks import keep_ignored

    manifest, _ = scan_fork(project.root, entry, None)
    save_manifest(project.state_dir, entry.name, manifest)
    keep_ignored(project, entry, manifest, observer)


def _staging(project: Project, name: str, what: str) -> Path:
    project.ensure_state_dir()
    parent = project.state_dir / "tmp"
    parent.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{what}-{name}-", dir=parent))


def _prepare(project: Project, name: str, doing: str) -> tuple[LockEntry, ForkHistory]:
    from .forks import require_fork

    project.require_git()
    recover(project)
    entry = require_fork(project, name)
    require_no_pause(project, entry.name)
    history = history_of(project, entry)
    return entry, history


# -- record ---------------------------------------------------------------------------


def record_patch(
    project: Project,
    name: str,
    message: str,
    *,
    fixes: Sequence[str] = (),
    origin: str = "",
    forwarded: str = "no",
    author: str | None = None,
    observer: Observer = NullObserver(),
) -> PatchRecord:
    """Turn the unrecorded edits of fork `name` into the next patch of its series."""
    if not message.strip():
        raise BadInput("the patch needs a description", hint="pass -m MESSAGE")
    entry, history = _prepare(project, name, "record a patch")
    for record in entry.patches:
        path = project.root / record.file
        if not path.is_file() or file_digest(path) != record.sha256:
            raise BadInput(
                f"{record.file} differs from the lock",
                hint="restore the patch file from git (git checkout -- PATH) first",
            )
    require_no_leftovers(project, entry, "record a patch")
    tip = history.rev("refs/heads/patched")
    assert tip is not None
    tree = snapshot_worktree(history, project, entry)
    if tree == history.tree_of(tip):
        raise BadInput(
            f"{entry.path} has no unrecorded edits of {entry.name}",
            hint=f"edit files under {entry.path} first; `forkman patches {name}` lists the series",
        )
    who = author or default_author(project)
    header = PatchHeader(
        description=message.strip(),
        author=who,
        origin=origin,
        forwarded=forwarded or "no",
        last_update=today(),
        fixes=tuple(fixes),
    )
    commit = history.commit(tree, [tip], header.commit_message(), author=who)
    number = len(entry.patches) + 1
    target = patch_path(project, entry.name, number, header.subject)
    data = render_patch(header, history.diff(tip, commit)).encode()
    record = PatchRecord(project.relpath(target), _sha256(data), header.fixes)
    # a namespace fork's patch may delete members; it cannot add top-level names
    members = tree_members(history, commit) if members_of(entry) is not None else None
    new = with_members(replace(entry, patches=(*entry.patches, record)), members)
    manifest, _ = scan_fork(project.root, new, None)
    new = replace(new, vendored_tree=hash_manifest(manifest.values()))
    with ForkTransaction(
        project, entry.name, "patch", namespace=_shared(entry), archive=refresh_archive
    ) as txn:
        txn.write_file(target, data)
        fault_point("patch-file")
        txn.set_ref(project.fork_git_dir(entry.name), "refs/heads/patched", commit)
        fault_point("patch-ref")
        txn.commit(lambda lock: lock.with_entry(new))
    save_manifest(project.state_dir, entry.name, manifest)
    from .forks import keep_ignored

    keep_ignored(project, new, manifest, observer)
    observer.step(entry.name, f"recorded {record.file}")
    return record


def _shared(entry: LockEntry) -> bool:
    """Whether the fork's transactions take the namespace mutex (its folder is shared)."""
    return entry.layout == "namespace"


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# -- list -----------------------------------------------------------------------------


def list_patches(project: Project, name: str) -> list[PatchInfo]:
    """The series of fork `name` with each patch's status."""
    from .forks import require_fork

    entry = require_fork(project, name)
    applied = 0
    history = ForkHistory(project.fork_git_dir(entry.name))
    if history.exists():
        try:
            applied = len(series_commits(history, entry)[1])
        except ForkmanError:
            applied = 0
    rows = []
    for number, record in enumerate(entry.patches, start=1):
        path = project.root / record.file
        subject = ""
        if not path.is_file():
            status = PatchStatus.MISSING
        else:
            status = PatchStatus.OK if file_digest(path) == record.sha256 else PatchStatus.EDITED
            subject = parse_patch(path.read_text(encoding="utf-8", errors="replace"))[0].subject
        rows.append(
            PatchInfo(number, record.file, subject, status, number <= applied, record.fixes)
        )
    return rows


# -- rewrite the series ---------------------------------------------------------------


def _check_number(entry: LockEntry, number: int, what: str = "patch") -> None:
    count = len(entry.patches)
    if not 1 <= number <= count:
        raise BadInput(
            f"{entry.name} has no {what} {number} (its series has {count} "
            f"patch{'es' if count != 1 else ''})",
            hint=f"`forkman patches {entry.name}` lists them",
        )


def rewrite_series(
    project: Project,
    entry: LockEntry,
    history: ForkHistory,
    base: str,
    items: Sequence[SeriesItem],
    operation: str,
    observer: Observer = NullObserver(),
) -> LockEntry:
    """Replay `items` onto `base` and commit the new series (all or nothing)."""
    staging = _staging(project, entry.name, operation)
    try:
        built_items: list[tuple[PatchHeader, str]] = []
        with SeriesRebase(history, staging, base) as rebase:
            for number, item in enumerate(items, start=1):
                outcome = rebase.pick(item.commit, message=item.header.commit_message())
                if outcome.kind is PickKind.CONFLICT:
                    raise BadInput(
                        f"patch {number} ({item.header.subject}) no longer applies after this "
                        f"change (conflicts in {', '.join(outcome.conflicts)}); nothing changed",
                        hint="patches that depend on each other must keep their order",
                    )
                if outcome.kind is PickKind.EMPTY:
                    raise BadInput(
                        f"patch {number} ({item.header.subject}) would become empty after this "
                        "change; nothing changed",
                        hint=f"drop it first with `forkman patch {entry.name} --drop N`",
                    )
                assert outcome.commit is not None
                built_items.append((item.header, outcome.commit))
            tip = rebase.head
        new = _write_series(project, history, entry, built_items, tip, staging, operation)
        observer.step(entry.name, f"series rewritten ({len(new.patches)} patches)")
        return new
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_series(
    project: Project,
    history: ForkHistory,
    entry: LockEntry,
    built_items: Sequence[tuple[PatchHeader, str]],
    tip: str,
    staging: Path,
    operation: str,
    consumed: Sequence[Path] = (),
) -> LockEntry:
    """Stage a rewritten series, commit it with the lock in one transaction; the new entry."""
    built = stage_series(project, history, entry.name, built_items, tip, staging / "out")
    new = replace(entry, patches=built.records, vendored_tree=built.vendored_tree)
    with ForkTransaction(
        project, entry.name, operation, namespace=_shared(entry), archive=refresh_archive
    ) as txn:
        new = with_members(new, commit_series(txn, project, entry, built, consumed=consumed))
        txn.commit(lambda lock: lock.with_entry(new))
    remember_tree(project, new)
    return new


def _items(
    project: Project, entry: LockEntry, history: ForkHistory
) -> tuple[str, list[SeriesItem]]:
    base, commits = series_commits(history, entry)
    headers = load_headers(project, entry)
    return base, [SeriesItem(h, c) for h, c in zip(headers, commits, strict=True)]


def drop_patch(
    project: Project, name: str, number: int, observer: Observer = NullObserver()
) -> LockEntry:
    """Remove patch `number` from the series (the later ones are renumbered)."""
    entry, history = _prepare(project, name, "drop a patch")
    _check_number(entry, number)
    require_clean(project, entry, "drop a patch")
    base, items = _items(project, entry, history)
    del items[number - 1]
    return rewrite_series(project, entry, history, base, items, "patch-drop", observer)


def move_patch(
    project: Project, name: str, number: int, to: int, observer: Observer = NullObserver()
) -> LockEntry:
    """Move patch `number` to position `to`."""
    entry, history = _prepare(project, name, "reorder the series")
    _check_number(entry, number)
    _check_number(entry, to, "position")
    require_clean(project, entry, "reorder the series")
    base, items = _items(project, entry, history)
    items.insert(to - 1, items.pop(number - 1))
    return rewrite_series(project, entry, history, base, items, "patch-move", observer)


def edit_patch(
    project: Project,
    name: str,
    number: int,
    *,
    message: str | None = None,
    fixes: Sequence[str] | None = None,
    origin: str | None = None,
    forwarded: str | None = None,
    author: str | None = None,
    observer: Observer = NullObserver(),
) -> LockEntry:
    """Change the header of patch `number` (its change stays as it is)."""
    entry, history = _prepare(project, name, "edit a patch")
    _check_number(entry, number)
    require_clean(project, entry, "edit a patch")
    base, items = _items(project, entry, history)
    old = items[number - 1].header
    header = replace(
        old,
        description=message.strip() if message else old.description,
        fixes=tuple(fixes) if fixes else old.fixes,
        origin=old.origin if origin is None else origin,
        forwarded=old.forwarded if forwarded is None else forwarded,
        author=old.author if author is None else author,
        last_update=today(),
    )
    if header == old.with_update(today()) and message is None:
        raise BadInput(
            "nothing to change", hint="pass -m MESSAGE, --fixes, --origin or --forwarded"
        )
    items[number - 1] = SeriesItem(header, items[number - 1].commit)
    return rewrite_series(project, entry, history, base, items, "patch-edit", observer)


STAGE_FIELD = "Forkman-Stage"
"""Patch header field naming the tree a patch was written against, when not the vendored one."""
BEFORE_REWRITE = "before-rewrite"
"""`STAGE_FIELD` value: written against the namespace tree before its imports were rewritten."""


def applies_before_rewrite(header: PatchHeader) -> bool:
    """Whether the patch was written against the tree before import rewriting."""
    return any(
        key.lower() == STAGE_FIELD.lower() and value.strip().lower() == BEFORE_REWRITE
        for key, value in header.extra
    )


class _BeforeRewrite:
    """Carries patches written before import rewriting over to the vendored tree.

    The vendoring tool applies its patches after the drops and *before* it
    rewrites imports, so its patches (and their context lines) speak of
    ``import six``, not of ``from pkg._vendor import six``. For each such patch
    the fork's release is transformed again with the patches so far applied at
    that point; the difference the patch makes to the transformed tree is the
    patch forkman records.
    """

    def __init__(
        self,
        project: Project,
        entry: LockEntry,
        history: ForkHistory,
        work: Path,
        observer: Observer,
    ) -> None:
        if entry.layout != "namespace":
            raise BadInput(
                f"{entry.name} uses the {entry.layout} layout: forkman rewrites no imports in it",
                hint="import the patch as it is (without --before-rewrite)",
            )
        from .forks import FetchedUpstream

        self.project, self.entry, self.history = project, entry, history
        self.work, self.observer = work, observer
        base, _commits = series_commits(history, entry)
        upstream = history.rev(f"{base}^")
        if upstream is None:
            raise HistoryError(f"the history of {entry.name} has no upstream release")
        pristine = work / "upstream"
        history.checkout(upstream, pristine)
        self.fetched = FetchedUpstream(entry.name, entry.version, entry.source, pristine)
        self.others = other_modules_of(entry) or []
        self.applied: list[Path] = []
        self.tree = self._transform()

    def _transform(self) -> str:
        """The tree id of the release transformed with the patches applied so far."""
        from .forks import build_vendored
        from .verify import apply_patch_file

        patches = list(self.applied)

        def apply(tree: Path) -> None:
            for patch in patches:
                apply_patch_file(tree, patch)

        out = self.work / f"stage-{len(patches)}"
        out.mkdir()
        vendored = build_vendored(
            self.project,
            self.fetched,
            out,
            layout="namespace",
            other_modules=self.others,
            observer=self.observer,
            before_rewrite=apply,
        )
        return self.history.snapshot(vendored.tree)

    def carry(self, patch: Path) -> Path:
        """A patch file making `patch`'s change to the transformed tree (IntegrityError if it
        does not apply before rewriting)."""
        self.applied.append(patch)
        before, self.tree = self.tree, self._transform()
        out = self.work / f"carried-{len(self.applied)}.patch"
        out.write_text(self.history.diff(before, self.tree), encoding="utf-8")
        return out


def import_patches(
    project: Project,
    name: str,
    files: Sequence[Path],
    *,
    before_rewrite: bool = False,
    observer: Observer = NullObserver(),
) -> LockEntry:
    """Apply existing patch files on top of the series, as new patches.

    A file written against the namespace tree before its imports were
    rewritten (the vendoring tool's patches: `before_rewrite`, or a
    ``Forkman-Stage: before-rewrite`` header field, which ``forkman migrate
    vendoring`` writes) is carried over to the transformed tree first.
    """
    if not files:
        raise BadInput("no patch files given", hint="forkman patch NAME --import FILE...")
    entry, history = _prepare(project, name, "import patches")
    require_clean(project, entry, "import patches")
    _base, items = _items(project, entry, history)
    tip = history.rev("refs/heads/patched")
    assert tip is not None
    staging = _staging(project, entry.name, "import")
    try:
        tree_dir = staging / "work"
        history.checkout(tip, tree_dir)
        head = tip
        from .verify import apply_patch_file

        carrier: _BeforeRewrite | None = None
        for path in files:
            if not path.is_file():
                raise BadInput(f"{path} does not exist")
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            header, body = parse_patch(text)
            if not body.strip():
                raise BadInput(f"{path} holds no diff")
            change = path
            if before_rewrite or applies_before_rewrite(header):
                if carrier is None:
                    carrier = _BeforeRewrite(project, entry, history, staging / "carry", observer)
                    observer.step(entry.name, "carrying patches written before import rewriting")
                try:
                    change = carrier.carry(path)
                except IntegrityError as exc:
                    raise BadInput(
                        f"{path.name} does not apply on {entry.name} before its imports are "
                        f"rewritten: {exc.message}; nothing changed"
                    ) from None
                header = replace(
                    header, extra=tuple(f for f in header.extra if f[0].lower() != "forkman-stage")
                )
            try:
                apply_patch_file(tree_dir, change)
            except IntegrityError as exc:
                raise BadInput(
                    f"{path.name} does not apply on {entry.name}: {exc.message}; nothing changed"
                ) from None
            if not header.description:
                # a bare diff: named after its file, without a series number
                stem = re.sub(r"^\d+-", "", path.stem) or path.stem
                header = replace(header, description=stem)
            header = replace(
                header,
                author=header.author or default_author(project),
                last_update=today(),
            )
            tree = history.snapshot(tree_dir)
            if tree == history.tree_of(head):
                raise BadInput(f"{path.name} changes nothing on {entry.name}; nothing changed")
            head = history.commit(tree, [head], header.commit_message(), author=header.author)
            items.append(SeriesItem(header, head))
        built_items = [(i.header, i.commit) for i in items]
        new = _write_series(
            project, history, entry, built_items, head, staging, "patch-import", consumed=files
        )
        observer.step(entry.name, f"imported {len(files)} patch(es)")
        return new
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# -- restore and diff -----------------------------------------------------------------


def restore(project: Project, name: str, observer: Observer = NullObserver()) -> list[str]:
    """Discard unrecorded edits of fork `name`; the paths that were restored."""
    entry, history = _prepare(project, name, "restore")
    tip = history.rev("refs/heads/patched")
    assert tip is not None
    changed: list[str] = []
    if fork_root(project, entry).is_dir():
        tree = snapshot_worktree(history, project, entry)
        out = history.git("diff", "--name-only", "-z", "--no-renames", tip, tree)
        changed = [p for p in out.split("\0") if p]
        if not changed:
            return []
    staging = _staging(project, entry.name, "restore")
    try:
        fresh = staging / "tree"
        history.checkout(tip, fresh)
        manifest, _ = scan_tree(fresh)
        if hash_manifest(manifest.values()) != entry.vendored_tree:
            raise HistoryError(
                f"the history of {name} does not match the lock",
                hint=f"`forkman verify {name}` shows what differs",
            )
        with ForkTransaction(
            project, entry.name, "restore", namespace=_shared(entry), archive=refresh_archive
        ) as txn:
            place_tree(txn, project, entry, fresh)
            fault_point("restore-tree")
            txn.commit(lambda lock: lock)
        remember_tree(project, entry, observer)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    observer.step(entry.name, f"restored {len(changed) or 'all'} file(s)")
    return changed


def fork_diff(project: Project, name: str) -> str:
    """The whole series as one diff against the tree forkman vendored.

    That is the pristine upstream tree for the project layout, and its
    transformation into the namespace for the namespace layout.
    """
    from .forks import require_fork

    entry = require_fork(project, name)
    history = history_of(project, entry)
    base, commits = series_commits(history, entry)
    return history.diff(base, commits[-1]) if commits else ""


def upstream_diff(project: Project, name: str, span: str) -> str:
    """What upstream changed between two releases known to the fork (``A..B``)."""
    from .forks import require_fork

    entry = require_fork(project, name)
    old, sep, new = span.partition("..")
    if not sep or not old or not new:
        raise BadInput(f"{span!r} is not a range", hint="give two versions: --upstream 1.0..1.1")
    history = history_of(project, entry)
    known = history.upstream_versions()
    revs = []
    with tempfile.TemporaryDirectory(prefix="forkman-diff-") as tmp:
        for version in (old, new):
            rev = history.rev(f"refs/tags/upstream/{version}")
            if rev is None:
                # not imported (a refused sync or a dry run only looked at it): fetch it as
                # sync does; its tree is written as loose objects only, no ref records it
                from .sync import fetch_release_tree

                try:
                    tree = fetch_release_tree(project, entry, version, Path(tmp) / version)
                except ForkmanError as exc:
                    raise BadInput(
                        f"{name} has no upstream release {version}: {exc.message}",
                        hint=f"known releases: {', '.join(known) or 'none'}",
                    ) from None
                rev = history.snapshot(tree)
            revs.append(rev)
        return history.diff(revs[0], revs[1])


def patch_commit_info(history: ForkHistory, commit: str) -> str:
    """The author of a patch commit (for messages)."""
    return commit_info(history, commit).author
