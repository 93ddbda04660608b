"""Fork and unfork: the core operations, as small steps an actor can call one at a time.

fetch_upstream   spec -> FetchedUpstream (verified download or pinned git commit,
                 unpacked safely into a pristine tree in a staging folder)
build_vendored   pristine tree -> vendored tree (the namespace layout transforms it)
fork             the whole thing, committed with the lock in one transaction
unfork           the reverse, in one transaction
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

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
from ..model.lock import GitSource, IndexSource, Lock, LockEntry, Source
from ..model.project import Project, cache_root
from ..store.history import ForkHistory
from ..store.treehash import hash_manifest, scan_tree
from ..store.txn import ForkTransaction, fault_point, recover


@dataclass(frozen=True)
class FetchedUpstream:
    """An upstream release unpacked into a pristine tree (in a staging folder)."""

    name: str
    """The fork's name."""
    version: str
    """The upstream version."""
    source: Source
    """Where it came from, pinned (sha256 or full commit)."""
    tree: Path
    """The pristine tree."""
    sections: Mapping[str, Any] = field(default_factory=dict)
    """Lock sections gathered while fetching (e.g. ``provenance``)."""


def now_utc() -> str:
    """The current time as RFC 3339 UTC with second precision."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def require_initialized(project: Project) -> None:
    """Refuse to work in a project without ``[tool.forkman]``."""
    if not has_config(project.pyproject):
        raise ProjectError(
            f"{project.pyproject} has no [tool.forkman] table",
            hint="run `forkman init` first",
        )


def is_git_spec(spec: str) -> bool:
    """Whether `spec` names a git upstream (``git+...``)."""
    return spec.startswith("git+")


def fork_name_for(spec: str, name: str | None) -> str:
    """The fork's name: --name, else the package name, else the repository name."""
    if name:
        canonical = canonicalize_name(name)
        if not canonical or "/" in canonical:
            raise BadInput(f"invalid fork name {name!r}")
        return canonical
    if is_git_spec(spec):
        from ..sources.git import parse_git_spec

        url = parse_git_spec(spec).url.rstrip("/")
        base = url.rsplit("/", 1)[-1].removesuffix(".git")
        return canonicalize_name(base)
    from ..sources.index import parse_requirement

    return parse_requirement(spec)[0]


def fetch_upstream(
    project: Project,
    spec: str,
    name: str,
    staging: Path,
    *,
    index_url: str | None = None,
    prefer: DistPreference | None = None,
    prereleases: bool | None = None,
    previous_provenance: Mapping[str, Any] | None = None,
    accept_publisher_change: bool = False,
    observer: Observer = NullObserver(),
) -> FetchedUpstream:
    """Download (or clone) and unpack the upstream release `spec` into ``staging/upstream``.

    For index releases the PEP 740 provenance the index announces is fetched and
    verified offline before anything is unpacked, and the publisher policy is
    applied against `previous_provenance` (the fork's recorded publisher, on sync).
    """
    config = project.config
    tree = staging / "upstream"
    if is_git_spec(spec):
        from ..sources import git as gitsrc

        gspec = gitsrc.parse_git_spec(spec)
        observer.step(name, f"resolving {gspec.url} @ {gspec.ref or 'HEAD'}")
        commit = gitsrc.resolve(gspec.url, gspec.ref, observer=observer)
        observer.step(name, f"exporting {commit[:12]}")
        gitsrc.export(gspec.url, commit, tree, subdirectory=gspec.subdirectory, observer=observer)
        version = gitsrc.guess_version(tree, gspec.ref or commit[:12])
        source: Source = GitSource(
            url=gspec.url, ref=gspec.ref or "HEAD", commit=commit, subdirectory=gspec.subdirectory
        )
        return FetchedUpstream(name, version, source, tree)

    from ..sources.index import fetch_release
    from ..sources.interface import DistKind
    from ..sources.unpack import unpack_archive

    policy = config.policy(name)
    urls = (index_url,) if index_url else config.index_urls
    kind = DistKind((prefer or config.prefer).value)
    observer.step(name, f"looking up {spec}")
    release = fetch_release(
        spec,
        index_urls=urls,
        prefer=kind,
        prereleases=policy.prereleases if prereleases is None else prereleases,
        observer=observer,
        limits=config.network,
    )
    sections: dict[str, Any] = {}
    publisher = _verify_publisher(
        project, name, release, previous_provenance, accept_publisher_change, observer
    )
    if publisher is not None:
        sections["provenance"] = publisher
    observer.step(name, f"unpacking {release.file.filename}")
    unpack_archive(release.path, tree)
    from ..sources.http import without_credentials

    source = IndexSource(  # credentials stay in the configuration, out of the lock
        index_url=without_credentials(release.index_url),
        url=without_credentials(release.file.url),
        filename=release.file.filename,
        sha256=release.sha256,
        requirement=spec,
    )
    return FetchedUpstream(name, str(release.version), source, tree, sections)


def _verify_publisher(
    project: Project,
    name: str,
    release: Any,
    previous: Mapping[str, Any] | None,
    accept: bool,
    observer: Observer,
) -> dict[str, Any] | None:
    """Verify the release's provenance and publisher policy; the lock table, if attested."""
    from ..audit._settings import load_settings
    from ..audit.provenance import check_release

    require = load_settings(project).requires_provenance(name)
    if release.file.provenance_url:
        observer.step(name, "verifying provenance (PEP 740, offline)")
    publisher = check_release(
        release.file,
        release.path,
        previous,
        accept=accept,
        require=require,
        limits=project.config.network,
    )
    if publisher is None:
        return None
    observer.step(name, f"published by {publisher.describe()}")
    return {
        **publisher.to_lock(),
        "file": release.file.filename,
        "source": release.file.provenance_url or "",
    }


@dataclass(frozen=True)
class VendoredTree:
    """The tree a fork puts into the project, built from its pristine upstream tree."""

    tree: Path
    """The vendored tree (for the project layout, the pristine tree itself)."""
    members: tuple[str, ...] | None = None
    """For the namespace layout: the top-level names the fork owns in the shared folder."""
    sections: Mapping[str, Any] = field(default_factory=dict)
    """Lock sections describing the transformation (``namespace``)."""


def layout_for(project: Project, name: str, requested: str | None = None) -> str:
    """The layout of fork `name`: asked for, configured per fork, or the project's default.

    A project with ``[tool.forkman.vendoring] namespace`` vendors privately
    (namespace layout) by default; otherwise forks are whole projects.
    """
    return layout_and_reason(project, name, requested)[0]


def layout_and_reason(project: Project, name: str, requested: str | None = None) -> tuple[str, str]:
    """The layout of fork `name` (see :func:`layout_for`) and why it is that one."""
    layout = requested
    why = "asked for with --layout"
    if layout is None:
        layout = project.config.policy(name).raw.get("layout")
        why = f"[tool.forkman.forks.{name}] layout"
    if layout is None:
        namespace = project.config.section("vendoring").get("namespace")
        if namespace is not None:
            layout = "namespace"
            why = (
                f"the default while [tool.forkman.vendoring] namespace = {namespace!r} is set; "
                "--layout project forks the whole project instead"
            )
        else:
            layout = "project"
            why = "the default"
    if layout not in ("project", "namespace"):
        raise BadInput(f"unknown layout {layout!r} for {name}", hint="use project or namespace")
    return str(layout), why


def build_vendored(
    project: Project,
    fetched: FetchedUpstream,
    staging: Path,
    *,
    layout: str = "project",
    other_modules: Sequence[str] = (),
    observer: Observer = NullObserver(),
    before_rewrite: Callable[[Path], None] | None = None,
) -> VendoredTree:
    """The vendored tree for `fetched`.

    The project layout vendors the pristine tree as it is. The namespace layout
    transforms a wheel tree: importable packages only, imports rewritten into the
    private namespace (also the imports of `other_modules`, the project's other
    namespace forks), licenses and typing stubs added (see docs/wiring.md).
    `before_rewrite` (namespace layout) changes the tree after the drops and
    before the imports are rewritten (see :func:`transform_tree`).
    """
    if layout == "project":
        return VendoredTree(fetched.tree)
    from ..layouts.transform import TransformCache, transform_tree
    from ..sources.index import fetch_release
    from ..sources.interface import DistKind

    def fetch_sdist(distribution: str, version: str) -> Path:
        return fetch_release(
            f"{distribution}=={version}",
            index_urls=project.config.index_urls,
            prefer=DistKind.SDIST,
            prereleases=True,
            observer=observer,
            limits=project.config.network,
        ).path

    def release_archive() -> Path:
        """The release file itself: from the verified download cache, else downloaded again."""
        if not isinstance(fetched.source, IndexSource):
            raise BadInput(
                f'{fetched.name}: license-source = "archive" needs a release file from an index'
            )
        from ..sources.index import fetch_exact

        return fetch_exact(
            fetched.source,
            index_urls=project.config.index_urls,
            observer=observer,
            limits=project.config.network,
        )

    out = staging / "namespace"
    record = transform_tree(
        fetched.tree,
        out,
        fork_name=fetched.name,
        config=project.config,
        observer=observer,
        other_modules=other_modules,
        project_root=project.root,
        fetch_sdist=fetch_sdist,
        cache=TransformCache(cache_root() / "transform"),
        before_rewrite=before_rewrite,
        release_archive=release_archive,
    )
    record["transform"]["other-modules"] = sorted(set(other_modules) - set(record["modules"]))
    return VendoredTree(out, tuple(record["members"]), {"namespace": record})


def namespace_owners(
    project: Project, but: str, lock: Lock | None = None
) -> tuple[dict[str, str], list[str]]:
    """Members of the shared namespace folder owned by other forks, and their modules
    (from `lock` when given, else the lock as it is now)."""
    owners: dict[str, str] = {}
    modules: list[str] = []
    for entry in lock if lock is not None else project.load_lock():
        ns = entry.sections.get("namespace")
        if entry.name == but or not isinstance(ns, Mapping):
            continue
        owners.update({str(m): entry.name for m in ns.get("members", [])})
        modules += [str(m) for m in ns.get("modules", [])]
    return owners, sorted(set(modules))


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
    layout = layout_for(project, fork_name, layout)
    if layout == "namespace":
        from ..layouts.transform import check_destination
        from ..model.vendoring import vendoring_config

        vcfg = vendoring_config(project.config)
        check_destination(project.root, vcfg)
        dest = project.root / vcfg.destination
        prefer = DistPreference.WHEEL
    project.ensure_state_dir()
    tmp_parent = project.state_dir / "tmp"
    tmp_parent.mkdir(exist_ok=True)
    import tempfile

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
        description = _describe_source(fetched.source)
        upstream_commit = history.import_upstream(fetched.tree, fetched.version, description)
        owners, other_modules = namespace_owners(project, fork_name)
        other_modules = sorted({*other_modules, *expect_modules})
        vendored = build_vendored(
            project,
            fetched,
            staging,
            layout=layout,
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
            layout=layout,
            sections={**fetched.sections, **vendored.sections},
        )
        pyproject_text = _constraint_edit(project, fork_name, spec)
        with ForkTransaction(
            project, fork_name, "fork", namespace=layout == "namespace", archive=refresh_archive
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
            if layout == "project" and wiring_enabled(project):
                from ..layouts.wiring import archive_for, plan_wire

                _write_wiring(
                    txn,
                    project,
                    plan_wire(project, fork_name, entry.path, archive=archive_for(entry)),
                )
            txn.commit(lambda lock: lock.with_entry(entry))
        if txn.archive_problem:
            observer.warning(txn.archive_problem)
        save_manifest(project.state_dir, fork_name, vendored_manifest)
        keep_ignored(project, entry, vendored_manifest, observer)
        if layout == "namespace":
            from ..layouts.transform import unrewritten_warning

            warning = unrewritten_warning(fork_name, entry.sections)
            if warning:
                observer.warning(warning)
        observer.step(fork_name, f"forked {fork_name} {fetched.version}")
        return entry
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def wiring_enabled(project: Project) -> bool:
    """Whether project-layout forks are wired into pyproject.toml (``[tool.forkman] wire``)."""
    return project.config.raw.get("wire", True) is not False


def _write_wiring(txn: ForkTransaction, project: Project, edit: Any) -> None:
    """Write a wiring edit (pyproject.toml, forkman-requirements.txt) inside `txn`."""
    if not edit.changed:
        return
    from ..layouts.wiring import REQUIREMENTS_FILE

    if edit.pyproject_text != project.pyproject.read_text(encoding="utf-8"):
        txn.write_file(project.pyproject, edit.pyproject_text.encode())
    requirements = project.root / REQUIREMENTS_FILE
    if edit.requirements_text is None:
        if requirements.exists():
            txn.replace_path(requirements, None)
    else:
        txn.write_file(requirements, edit.requirements_text.encode())


def ignored_by_git(project: Project, paths: list[str], *, tracked: bool = True) -> list[str]:
    """Which of `paths` (relative to the project root) the consumer's git ignores.

    Without `tracked`, files git tracks are left out (their ignore rules no longer apply).
    """
    if not paths:
        return []
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    proc = subprocess.run(
        ["git", "check-ignore", *(["--no-index"] if tracked else []), "-z", "--stdin"],
        cwd=project.root,
        env=env,
        input=b"\0".join(p.encode("utf-8", "surrogateescape") for p in paths) + b"\0",
        capture_output=True,
        check=False,
    )
    if proc.returncode not in (0, 1):
        return []
    return sorted(p.decode("utf-8", "surrogateescape") for p in proc.stdout.split(b"\0") if p)


def keep_ignored(
    project: Project,
    entry: LockEntry,
    manifest: Mapping[str, object],
    observer: Observer = NullObserver(),
) -> list[str]:
    """Stage (``git add -f``) the files of fork `entry` that the consumer's git ignores.

    A release may ship files the consumer's ignore rules name (packaging's
    ``tests/.pytest_cache/``, a package folder called ``lib``): ``git add``
    would leave them out, and a fresh clone would not match the lock. forkman
    never drops a file of a release (a dropped module could change what runs),
    so it stages the ones git does not track yet, and says so. `manifest`: the
    fork's files relative to its path. The paths staged; when git cannot
    stage them the warning gives the command, and `forkman check` names them
    until they are tracked.
    """
    from ..store.txn import lock_file_mutex

    paths = [f"{entry.path}/{p}" for p in manifest]
    with lock_file_mutex(project):  # one `git add` of forkman's at a time on the index
        ignored = ignored_by_git(project, paths, tracked=False)
        if not ignored:
            return []
        env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE")}
        env["GIT_LITERAL_PATHSPECS"] = "1"
        proc = subprocess.run(
            ["git", "add", "-f", "--pathspec-from-file=-", "--pathspec-file-nul"],
            cwd=project.root,
            env=env,
            input=b"\0".join(p.encode("utf-8", "surrogateescape") for p in ignored) + b"\0",
            capture_output=True,
            check=False,
        )
    shown = ", ".join(ignored[:3]) + (f" and {len(ignored) - 3} more" if len(ignored) > 3 else "")
    if proc.returncode == 0:
        observer.warning(
            f"{len(ignored)} file(s) of {entry.path} are ignored by this repository's git "
            f"({shown}): forkman staged them with `git add -f` so that a commit, and every "
            "fresh clone, has them"
        )
        return ignored
    from ..gate.check import ignored_hint

    error = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    observer.warning(
        f"{len(ignored)} file(s) of {entry.path} are ignored by this repository's git "
        f"({shown}) and could not be staged ({error[-1] if error else 'git add failed'}); "
        + ignored_hint(ignored)
    )
    return []


def _constraint_edit(project: Project, name: str, spec: str) -> str | None:
    """New pyproject text recording a version range as the fork's sync constraint."""
    if is_git_spec(spec):
        return None
    from ..sources.index import parse_requirement

    specifier = parse_requirement(spec)[1]
    if not specifier or _is_exact_pin(specifier):
        return None

    def change(doc: Any) -> None:
        table = fork_table(doc, name)
        assert table is not None
        table["constraint"] = str(specifier)

    return render_pyproject_edit(project.pyproject, change)


def _is_exact_pin(specifier: SpecifierSet) -> bool:
    specs = list(specifier)
    return len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version


def _describe_source(source: Source) -> str:
    if isinstance(source, IndexSource):
        return f"From {source.url}\nsha256: {source.sha256}"
    return f"From {source.url} at {source.commit}"


def unfork(project: Project, name: str, *, observer: Observer = NullObserver()) -> LockEntry:
    """Remove fork `name`: vendored tree, patches, history, config and lock entry, at once."""
    project.require_git()
    for line in recover(project):
        observer.warning(line)
    entry = require_fork(project, name)
    with ForkTransaction(
        project, name, "unfork", namespace=entry.layout == "namespace", archive=refresh_archive
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

            _write_wiring(txn, project, plan_unwire(project, name))
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
