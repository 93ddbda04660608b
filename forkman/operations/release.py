"""A new upstream release of a fork: which one, fetched and checked, imported into
the fork's history, and vendored as the base its series is carried onto.

resolve_target   policy + index -> the release to move to (or none)
fetch_target     download and verify exactly as `fork` does, unpack (staging)
import_release   the pristine tree as the next commit of the ``upstream`` line
                 (objects only: refs move when the sync commits)
vendor_release   the base the series is carried onto: the new upstream commit
                 (project layout), or a commit of its transformation into the
                 namespace on top of it (namespace layout)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from ..core.errors import BadInput, NotFound
from ..core.observer import NullObserver, Observer
from ..model.config import DistPreference
from ..model.lock import GitSource, IndexSource, Layout, LockEntry
from ..model.project import Project
from ..store.history import ForkHistory
from ..store.treehash import hash_manifest, scan_tree
from .upstream import FetchedUpstream, describe_source, fetch_upstream
from .vendor import build_vendored, namespace_owners


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
    commit = history.commit(
        tree,
        [parent] if parent else [],
        f"Import upstream {fetched.version}\n\n{describe_source(fetched.source)}\n",
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
    if entry.layout is not Layout.NAMESPACE:
        return upstream_commit, {}
    _owners, others = namespace_owners(project, entry.name)
    vendored = build_vendored(
        project, fetched, staging, layout=Layout.NAMESPACE, other_modules=others, observer=observer
    )
    tree = history.snapshot(vendored.tree)
    base = history.commit(tree, [upstream_commit], f"Vendor {fetched.version}\n")
    return base, dict(vendored.sections)
