"""Fork and unfork: the core operations, as small steps an actor can call one at a time.

fetch_upstream   spec -> FetchedUpstream (:mod:`forkman.operations.upstream`)
build_vendored   pristine tree -> vendored tree (:mod:`forkman.operations.vendor`)
fork             the whole thing, committed with the lock in one transaction
unfork           the reverse, in one transaction
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet

from ..core.errors import BadInput, ProjectError
from ..core.observer import NullObserver, Observer
from ..gate.check import manifest_path, save_manifest
from ..layouts.wiring import refresh_archive
from ..model.config import (
    DistPreference,
    fork_table,
    has_config,
    remove_fork_table,
    render_pyproject_edit,
)
from ..model.lock import Layout, LockEntry
from ..model.project import Project
from ..store.history import ForkHistory
from ..store.treehash import hash_manifest, scan_tree
from ..store.txn import ForkTransaction, fault_point, recover
from .consumer import keep_ignored, write_wiring
from .consumer import wiring_enabled as wiring_enabled
from .upstream import describe_source, fetch_upstream, is_git_spec, now_utc
from .upstream import fork_name_for as fork_name_for
from .vendor import build_vendored, namespace_owners
from .vendor import layout_and_reason as layout_and_reason
from .vendor import layout_for as layout_for


def require_initialized(project: Project) -> None:
    """Refuse to work in a project without ``[tool.forkman]``."""
    if not has_config(project.pyproject):
        raise ProjectError(
            f"{project.pyproject} has no [tool.forkman] table",
            hint="run `forkman init` first",
        )


def fork(
    project: Project,
    spec: str,
    *,
    name: str | None = None,
    index_url: str | None = None,
    prefer: DistPreference | None = None,
    prereleases: bool | None = None,
    layout: str | None = None,
    adopt: bool = False,
    expect_modules: Sequence[str] = (),
    observer: Observer = NullObserver(),
) -> LockEntry:
    """Make a new fork of `spec` (``attrs==23.1.0``, ``pkg>=1,<2`` or ``git+URL@REF``).

    A namespace fork never overwrites a top-level name of the namespace folder
    that no fork owns, unless `adopt`: then it takes over the names its release
    provides (a migrated project's tree, written by the vendoring tool); what
    it replaces is kept in the transaction until the fork is committed.
    `expect_modules`: importable names of namespace forks about to be made
    alongside this one (forked in parallel), whose imports it rewrites too.
    """
    project.require_git()
    require_initialized(project)
    for line in recover(project):
        observer.warning(line)
    fork_name = fork_name_for(spec, name)
    if project.load_lock().get(fork_name) is not None:
        raise BadInput(
            f"fork {fork_name!r} already exists",
            hint=f"`forkman sync {fork_name} --dry-run` shows the release it would move to "
            f"(--to VERSION picks one, --yes takes it); `forkman unfork {fork_name}` removes it",
        )
    dest = project.vendor_path(fork_name)
    if layout == "project" and (dest.exists() or dest.is_symlink()):
        raise BadInput(
            f"{project.relpath(dest)} already exists and is not a fork in forkman.lock",
            hint="move it away, or pass --name to fork under another name",
        )
    chosen = layout_for(project, fork_name, layout)
    if chosen is Layout.NAMESPACE:
        from ..layouts.transform import check_destination
        from ..model.vendoring import vendoring_config

        vcfg = vendoring_config(project.config)
        check_destination(project.root, vcfg)
        dest = project.root / vcfg.destination
        prefer = DistPreference.WHEEL
    project.ensure_state_dir()
    tmp_parent = project.state_dir / "tmp"
    tmp_parent.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"fork-{fork_name}-", dir=tmp_parent))
    try:
        fetched = fetch_upstream(
            project,
            spec,
            fork_name,
            staging,
            index_url=index_url,
            prefer=prefer,
            prereleases=prereleases,
            observer=observer,
        )
        observer.step(fork_name, "recording history")
        upstream_manifest, special = scan_tree(fetched.tree)
        if special:
            raise BadInput(f"{fetched.name}: {special[0].path} is a {special[0].what}")
        upstream_tree = hash_manifest(upstream_manifest.values())
        history_dir = staging / "history.git"
        history = ForkHistory.create(history_dir)
        description = describe_source(fetched.source)
        upstream_commit = history.import_upstream(fetched.tree, fetched.version, description)
        owners, other_modules = namespace_owners(project, fork_name)
        other_modules = sorted({*other_modules, *expect_modules})
        vendored = build_vendored(
            project,
            fetched,
            staging,
            layout=chosen,
            other_modules=other_modules,
            observer=observer,
        )
        if vendored.tree == fetched.tree:
            base = upstream_commit
            vendored_manifest = upstream_manifest
        else:
            tree_id = history.snapshot(vendored.tree)
            base = history.commit(tree_id, [upstream_commit], f"Vendor {fetched.version}\n")
            vendored_manifest, _ = scan_tree(vendored.tree)
        history.update_ref("refs/heads/patched", base)
        vendored_tree = hash_manifest(vendored_manifest.values())
        entry = LockEntry(
            name=fork_name,
            version=fetched.version,
            path=project.relpath(dest),
            source=fetched.source,
            upstream_tree=upstream_tree,
            vendored_tree=vendored_tree,
            fetched=now_utc(),
            layout=chosen,
            sections={**fetched.sections, **vendored.sections},
        )
        pyproject_text = _constraint_edit(project, fork_name, spec)
        with ForkTransaction(
            project,
            fork_name,
            "fork",
            namespace=chosen is Layout.NAMESPACE,
            archive=refresh_archive,
        ) as txn:
            txn.replace_path(project.fork_git_dir(fork_name), history_dir)
            fault_point("fork-history")
            if vendored.members is None:
                txn.replace_path(dest, vendored.tree)
            else:
                from ..layouts.transform import member_moves
                from ..model.vendoring import vendoring_config

                # read again under the namespace mutex: a parallel fork may have claimed names
                owners = namespace_owners(project, fork_name)[0]
                taken = [
                    m
                    for m in vendored.members
                    if adopt
                    and m not in owners
                    and ((dest / m).exists() or (dest / m).is_symlink())
                ]
                if taken:
                    observer.step(fork_name, f"taking over {len(taken)} existing name(s)")
                for target, source in member_moves(
                    vendored.tree,
                    dest,
                    members=vendored.members,
                    previous=taken,
                    owned_by_others=owners,
                    protected=vendoring_config(project.config).protected_files,
                ):
                    txn.replace_path(target, source)
            fault_point("fork-tree")
            if pyproject_text is not None:
                txn.write_file(project.pyproject, pyproject_text.encode())
            if chosen is Layout.PROJECT and wiring_enabled(project):
                from ..layouts.wiring import archive_for, plan_wire

                write_wiring(
                    txn,
                    project,
                    plan_wire(project, fork_name, entry.path, archive=archive_for(entry)),
                )
            txn.commit(lambda lock: lock.with_entry(entry))
        if txn.archive_problem:
            observer.warning(txn.archive_problem)
        save_manifest(project.state_dir, fork_name, vendored_manifest)
        keep_ignored(project, entry, vendored_manifest, observer)
        if chosen is Layout.NAMESPACE:
            from ..layouts.transform import unrewritten_warning

            warning = unrewritten_warning(fork_name, entry.sections)
            if warning:
                observer.warning(warning)
        observer.step(fork_name, f"forked {fork_name} {fetched.version}")
        return entry
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _constraint_edit(project: Project, name: str, spec: str) -> str | None:
    """New pyproject text recording a version range as the fork's sync constraint."""
    if is_git_spec(spec):
        return None
    from ..sources.index import parse_requirement

    specifier = parse_requirement(spec)[1]
    if not specifier or is_exact_pin(specifier):
        return None

    def change(doc: Any) -> None:
        table = fork_table(doc, name)
        assert table is not None
        table["constraint"] = str(specifier)

    return render_pyproject_edit(project.pyproject, change)


def is_exact_pin(specifier: SpecifierSet) -> bool:
    """Whether `specifier` pins one exact version (``==1.2``, not a range or a wildcard)."""
    specs = list(specifier)
    return len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version


def unfork(project: Project, name: str, *, observer: Observer = NullObserver()) -> LockEntry:
    """Remove fork `name`: vendored tree, patches, history, config and lock entry, at once."""
    project.require_git()
    for line in recover(project):
        observer.warning(line)
    entry = require_fork(project, name)
    with ForkTransaction(
        project, name, "unfork", namespace=entry.layout is Layout.NAMESPACE, archive=refresh_archive
    ) as txn:
        ns = entry.sections.get("namespace")
        if isinstance(ns, Mapping):
            for member in ns.get("members", []):
                target = project.root / entry.path / str(member)
                if target.exists() or target.is_symlink():
                    txn.replace_path(target, None)
        else:
            txn.replace_path(project.root / entry.path, None)
            from ..layouts.wiring import plan_unwire

            write_wiring(txn, project, plan_unwire(project, name))
        patches = project.patches_path(name)
        if patches.exists():
            txn.replace_path(patches, None)
        if project.fork_git_dir(name).exists():
            txn.replace_path(project.fork_git_dir(name), None)
        if name in project.config.forks:
            text = render_pyproject_edit(
                project.pyproject, lambda doc: remove_fork_table(doc, name)
            )
            txn.write_file(project.pyproject, text.encode())
        txn.commit(lambda lock: lock.without(name))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(manifest_path(project.state_dir, name))
    observer.step(name, f"removed fork {name}")
    return entry


def require_fork(project: Project, name: str) -> LockEntry:
    """The lock entry of fork `name`, or a NotFound error listing the forks."""
    return project.load_lock().require(name)
