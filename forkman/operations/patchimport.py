"""`forkman patch NAME --import FILE...`: existing patch files as new patches of a series.

A file written against the namespace tree before its imports were rewritten
(the vendoring tool's patches) is carried over to the transformed tree first.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..core.errors import BadInput, IntegrityError
from ..core.observer import NullObserver, Observer
from ..gate.check import other_modules_of
from ..model.lock import Layout, LockEntry
from ..model.project import Project
from ..series.apply import apply_patch_file
from ..series.patchfile import applies_before_rewrite, parse_patch, today
from ..series.store import SeriesItem, series_commits
from ..store.history import ForkHistory, HistoryError
from .consumer import default_author
from .forkseries import items_of, prepare, require_clean, scratch_dir, write_series
from .upstream import FetchedUpstream
from .vendor import build_vendored


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
        if entry.layout is not Layout.NAMESPACE:
            raise BadInput(
                f"{entry.name} uses the {entry.layout} layout: forkman rewrites no imports in it",
                hint="import the patch as it is (without --before-rewrite)",
            )
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
            layout=Layout.NAMESPACE,
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
    entry, history = prepare(project, name, "import patches")
    require_clean(project, entry, "import patches")
    _base, items = items_of(project, entry, history)
    tip = history.rev("refs/heads/patched")
    assert tip is not None
    staging = scratch_dir(project, entry.name, "import")
    try:
        tree_dir = staging / "work"
        history.checkout(tip, tree_dir)
        head = tip
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
        new = write_series(
            project, history, entry, built_items, head, staging, "patch-import", consumed=files
        )
        observer.step(entry.name, f"imported {len(files)} patch(es)")
        return new
    finally:
        shutil.rmtree(staging, ignore_errors=True)
