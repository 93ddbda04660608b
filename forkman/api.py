"""forkman's public API: one :class:`Project` with a method for every operation.

The CLI, ``forkman ci``, ``forkman watch`` and agents call the same methods.
Every method returns frozen result types (each has ``to_json()``, or pass it
to :func:`forkman.to_json`), raises :class:`~forkman.ForkmanError` subclasses
with their hints, and reports progress to the observer the project was
opened with. Operations that change a fork go through its durable actor
(one operation at a time per fork, journaled and recoverable).

Example::

    import forkman

    fm = forkman.Project.open(".")
    for fork in fm.forks():
        print(fork.name, fork.version)
    run = fm.sync("attrs", dry_run=True)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ._errors import BadInput, NotFound
from ._observer import NullObserver, Observer
from ._project import Project as _CoreProject
from ._project import find_project
from ._results import (
    CheckResult,
    ForkInfo,
)
from ._workflows import Runner

if TYPE_CHECKING:
    from ._patches import PatchInfo
    from ._status import StatusRow
    from .audit.provenance import ProvenanceCheck
    from .audit.review import ReviewReport
    from .vendoring.licenses import ForkLicense


@dataclass(frozen=True)
class Project:
    """A consumer project, and every forkman operation on it.

    Open one with :meth:`open`. The object holds no state of its own beyond
    its settings: every call reads the lock and configuration fresh.

    Example::

        fm = forkman.Project.open("path/to/project")
        fm.status()
    """

    core: _CoreProject
    """The project's files (pyproject.toml, forkman.lock, .forkman/)."""
    observer: Observer = field(default_factory=NullObserver)
    """Where progress goes."""
    engine: str = "embedded"
    """Where fork actors run: ``embedded`` (in this process) or ``ray``."""
    jobs: int | None = None
    """Forks worked on at once (None: the number of cores)."""
    wait: float = 0.0
    """Seconds to queue behind another forkman process working on a fork."""

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] = ".",
        *,
        observer: Observer | None = None,
        engine: str = "embedded",
        jobs: int | None = None,
        wait: float = 0.0,
    ) -> Project:
        """Open the project at `path` (the nearest directory upward with a pyproject.toml).

        Raises :class:`~forkman.ProjectError` when there is none.

        Example::

            fm = forkman.Project.open(".", jobs=2)
        """
        return cls(find_project(Path(path)), observer or NullObserver(), engine, jobs, wait)

    @property
    def root(self) -> Path:
        """The project's directory (holding pyproject.toml).

        Example::

            fm.root / "forkman.lock"
        """
        return self.core.root

    @property
    def _runner(self) -> Runner:
        return Runner(self.core, self.observer, self.engine, self.jobs, self.wait)

    def _names(self, names: str | Sequence[str] | None) -> list[str]:
        """Canonical fork names (each must be a fork), or every fork for None/empty."""
        from ._forks import require_fork

        if isinstance(names, str):
            names = [names]
        if names:
            return list(dict.fromkeys(require_fork(self.core, n).name for n in names))
        return sorted(self.core.load_lock().forks)

    # -- reading ---------------------------------------------------------------------

    def forks(self) -> tuple[ForkInfo, ...]:
        """The forks forkman.lock records, by name: version, path, layout, source, patches.

        Example::

            [f.name for f in fm.forks()]
        """
        from ._status import describe_source

        return tuple(
            ForkInfo(
                name=entry.name,
                version=entry.version,
                path=entry.path,
                layout=entry.layout,
                source=describe_source(entry),
                patches=tuple(p.file for p in entry.patches),
                fixes=tuple(f for p in entry.patches for f in p.fixes),
            )
            for entry in self.core.load_lock()
        )

    def status(self) -> tuple[StatusRow, ...]:
        """Every fork's state: version, source, patches, clean or modified, last test and audit.

        Forks declared in ``[tool.forkman.forks]`` but not made yet come last
        (state ``declared, not forked``). An interrupted write is recovered first.

        Example::

            [(row.name, row.state) for row in fm.status()]
        """
        from ._status import status
        from ._txn import recover
        from .actors import actor_states

        for line in recover(self.core):
            self.observer.warning(f"recovered: {line}")
        return tuple(status(self.core, actor_states=actor_states(self.core)))

    def check(self, names: Sequence[str] = ()) -> CheckResult:
        """Whether the vendored trees still match forkman.lock (fast, offline, read-only).

        Every unrecorded difference is a finding: edited, added or deleted
        files, edited patch files, a hand-edited lock, a sync paused at a conflict.

        Example::

            result = fm.check()
            if not result.ok:
                print(result.hints)
        """
        from ._check import check
        from ._paths import confined_relpath, protected_names
        from ._txn import recover

        config = self.core.config
        vendoring = config.section("vendoring")
        where = "[tool.forkman.vendoring]"
        destination = vendoring.get("destination")
        for line in recover(self.core):
            self.observer.warning(f"recovered: {line}")
        report = check(
            self.core.root,
            vendor_dir=config.vendor_dir,
            patches_dir=config.patches_dir,
            names=list(names),
            protected=protected_names(
                vendoring.get("protected-files", []), f"{where}.protected-files"
            ),
            destination=confined_relpath(destination, f"{where}.destination")
            if destination is not None
            else None,
            declared=sorted(n for n, p in config.forks.items() if "requirement" in p.raw),
        )
        return CheckResult(
            report.ok, report.forks_checked, tuple(report.findings), tuple(report.hints())
        )

    def patches(self, name: str) -> tuple[PatchInfo, ...]:
        """Fork `name`'s patch series in order: file, subject, status against the lock, fixes.

        Example::

            [(p.number, p.subject, p.status.value) for p in fm.patches("attrs")]
        """
        from ._patches import list_patches

        return tuple(list_patches(self.core, name))

    def diff(self, name: str, upstream: str | None = None) -> str:
        """Fork `name`'s patches as one diff against upstream, or upstream's own delta ``A..B``.

        Example::

            fm.diff("attrs")                             # what the fork changes
            fm.diff("attrs", upstream="23.1.0..23.2.0")  # what upstream changed
        """
        from ._patches import fork_diff, upstream_diff

        if upstream:
            return upstream_diff(self.core, name, upstream)
        return fork_diff(self.core, name)

    def _fork_file(self, name: str, path: str) -> Path:
        """The file `path` of fork `name`'s vendored tree, confined to what the fork owns."""
        from ._check import members_of
        from ._forks import require_fork

        entry = require_fork(self.core, name)
        rel = PurePosixPath(path.replace("\\", "/"))
        if rel.is_absolute() or not rel.parts or ".." in rel.parts or rel.parts[0] == "":
            raise BadInput(
                f"{path!r} is not a path inside fork {entry.name}",
                hint=f"give a path relative to {entry.path}, e.g. 'pkg/__init__.py'",
            )
        members = members_of(entry)
        if members is not None and rel.parts[0] not in members:
            raise BadInput(
                f"{path!r} is not one of namespace fork {entry.name}'s files",
                hint=f"its names in {entry.path}: {', '.join(members) or 'none'}",
            )
        root = self.core.root / entry.path
        target = root.joinpath(*rel.parts)
        # no symbolic link on the way: a link could lead outside the fork
        current = root
        for part in rel.parts:
            current = current / part
            if current.is_symlink():
                raise BadInput(f"{path!r} of fork {entry.name} goes through a symbolic link")
        return target

    def read_file(self, name: str, path: str) -> str:
        """The text of file `path` (relative to the fork's folder) of fork `name`.

        Use it to read conflict markers after a sync stopped at a conflict.

        Example::

            print(fm.read_file("attrs", "src/attr/_make.py"))
        """
        target = self._fork_file(name, path)
        try:
            return target.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFound(f"fork {name} has no file {path!r}") from None
        except (IsADirectoryError, UnicodeDecodeError) as exc:
            raise BadInput(f"{path!r} of fork {name} is not a text file: {exc}") from None

    def write_file(self, name: str, path: str, text: str) -> None:
        """Write `text` to file `path` of fork `name` (atomically): an edit or a resolution.

        After a sync stopped at a conflict, write each file without its markers,
        then call :meth:`sync_continue`. Otherwise record edits with :meth:`patch`.

        Example::

            fm.write_file("attrs", "src/attr/_make.py", resolved_text)
            fm.sync_continue("attrs")
        """
        from ._fsutil import atomic_write_text

        target = self._fork_file(name, path)
        if target.is_dir():
            raise BadInput(f"{path!r} of fork {name} is a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)

    def review(
        self, name: str, upstream: str | None = None, *, record: bool = False
    ) -> ReviewReport:
        """Risky changes in an upstream delta of fork `name` (default: its last two releases).

        Install hooks, exec of decoded data, new network or process use,
        credential reads, blobs, new dependencies. `upstream` is ``A..B``; a
        release not imported yet is fetched. Writes nothing unless `record`.

        Example::

            report = fm.review("attrs", upstream="23.1.0..23.2.0")
            [f.rule for f in report.blocking]
        """
        from .audit.review import review_fork

        return review_fork(self.core, name, upstream=upstream, record=record)

    def provenance(
        self,
        name: str,
        *,
        attestation: str | os.PathLike[str] | None = None,
        accept_publisher_change: bool = False,
    ) -> ProvenanceCheck:
        """Verify who published fork `name`'s release file (Sigstore, offline) and record it.

        Raises :class:`~forkman.SecurityError` when it does not verify or the
        publisher changed.

        Example::

            check = fm.provenance("attrs")
            check.publisher.describe()
        """
        from .audit.provenance import verify_fork

        return verify_fork(
            self.core,
            name,
            attestation=Path(attestation) if attestation is not None else None,
            accept=accept_publisher_change,
        )

    def sbom(self) -> dict[str, Any]:
        """A CycloneDX 1.5 SBOM of every fork (a JSON document): source, hashes, patches.

        Example::

            doc = fm.sbom()
            [c["name"] for c in doc["components"]]
        """
        from .vendoring.sbom import build_sbom

        return dict(build_sbom(self.core))

    def licenses(self) -> tuple[ForkLicense, ...]:
        """Each fork's license (SPDX where known), its files, and whether the policy refuses it.

        Example::

            [(lic.fork, lic.expression, lic.refused) for lic in fm.licenses()]
        """
        from .vendoring.licenses import fork_licenses

        return tuple(fork_licenses(self.core))
