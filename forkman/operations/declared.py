"""Forks a project declares but has not made yet (``[tool.forkman.forks.NAME] requirement``).

``forkman migrate vendoring`` writes such declarations (or a person does);
the next ``forkman sync`` makes them. Namespace forks rewrite each other's
imports, so before any is made :func:`expected_modules` reads, from each
declared namespace fork's wheel (fetched into the download cache, not
unpacked), the importable names it will vendor: every fork is then vendored
once, in parallel, with the imports of all the others rewritten, instead of
being vendored again each time a later one appears.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from packaging.utils import canonicalize_name

from ..core.observer import NullObserver, Observer
from ..model.lock import Layout
from ..model.project import Project
from .upstream import is_git_spec
from .vendor import layout_for


@dataclass(frozen=True)
class DeclaredFork:
    """A fork the configuration declares and the lock does not have."""

    name: str
    """The fork's name."""
    spec: str
    """What to fork (``NAME==VERSION``, a range, or ``git+URL@REF``)."""
    layout: str | None
    """Its layout, when the declaration names one."""


def declared_forks(project: Project, only: str | None = None) -> list[DeclaredFork]:
    """The declared forks missing from the lock (only `only`, when given), by name."""
    lock = project.load_lock()
    wanted = canonicalize_name(only) if only is not None else None
    found = []
    for name, policy in sorted(project.config.forks.items()):
        spec = policy.raw.get("requirement")
        if not isinstance(spec, str) or name in lock.forks:
            continue
        if wanted is not None and wanted != name:
            continue
        layout = policy.raw.get("layout")
        found.append(DeclaredFork(name, spec, str(layout) if layout else None))
    return found


def expected_modules(
    project: Project, declared: Sequence[DeclaredFork], observer: Observer = NullObserver()
) -> list[str]:
    """The importable names the declared namespace-layout forks will vendor.

    A wheel that cannot be fetched or read contributes nothing: forking it
    fails with the real error, and the others are vendored again once it is
    there.
    """
    import zipfile

    from ..core.errors import ForkmanError
    from ..layouts.transform import wheel_modules
    from ..sources.index import fetch_release
    from ..sources.interface import DistKind

    wanted = [
        d
        for d in declared
        if not is_git_spec(d.spec) and layout_for(project, d.name, d.layout) is Layout.NAMESPACE
    ]
    if not wanted:
        return []

    def modules(fork: DeclaredFork) -> list[str]:
        try:
            release = fetch_release(
                fork.spec,
                index_urls=project.config.index_urls,
                prefer=DistKind.WHEEL,
                prereleases=project.config.policy(fork.name).prereleases,
                observer=observer,
                limits=project.config.network,
            )
            if not release.file.filename.endswith(".whl"):
                return []
            return wheel_modules(release.path, project.config)
        except (ForkmanError, OSError, ValueError, zipfile.BadZipFile):
            return []

    with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
        found = pool.map(modules, wanted)
    return sorted({m for names in found for m in names})
