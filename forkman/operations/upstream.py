"""An upstream release, fetched: the first step of fork and sync.

fetch_upstream   spec -> FetchedUpstream (verified download or pinned git commit,
                 unpacked safely into a pristine tree in a staging folder)
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from ..core.errors import BadInput
from ..core.observer import NullObserver, Observer
from ..model.config import DistPreference
from ..model.lock import GitSource, IndexSource, Source
from ..model.project import Project


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


def describe_source(source: Source) -> str:
    """The description of `source` an imported upstream commit carries."""
    if isinstance(source, IndexSource):
        return f"From {source.url}\nsha256: {source.sha256}"
    return f"From {source.url} at {source.commit}"
