"""The vendored tree a fork puts into the project, and the layout that decides it.

build_vendored   pristine tree -> vendored tree (the namespace layout transforms it)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import BadInput
from ..core.observer import NullObserver, Observer
from ..model.lock import IndexSource, Layout, Lock
from ..model.project import Project, cache_root
from .upstream import FetchedUpstream


@dataclass(frozen=True)
class VendoredTree:
    """The tree a fork puts into the project, built from its pristine upstream tree."""

    tree: Path
    """The vendored tree (for the project layout, the pristine tree itself)."""
    members: tuple[str, ...] | None = None
    """For the namespace layout: the top-level names the fork owns in the shared folder."""
    sections: Mapping[str, Any] = field(default_factory=dict)
    """Lock sections describing the transformation (``namespace``)."""


def layout_for(project: Project, name: str, requested: str | None = None) -> Layout:
    """The layout of fork `name`: asked for, configured per fork, or the project's default.

    A project with ``[tool.forkman.vendoring] namespace`` vendors privately
    (namespace layout) by default; otherwise forks are whole projects.
    """
    return layout_and_reason(project, name, requested)[0]


def layout_and_reason(
    project: Project, name: str, requested: str | None = None
) -> tuple[Layout, str]:
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
    return Layout(layout), why


def build_vendored(
    project: Project,
    fetched: FetchedUpstream,
    staging: Path,
    *,
    layout: Layout = Layout.PROJECT,
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
    before the imports are rewritten (see :func:`forkman.layouts.transform.transform_tree`).
    """
    if layout is Layout.PROJECT:
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
