"""forkman's public API: one :class:`Project` with a method for every operation.

The CLI, ``forkman ci``, ``forkman watch`` and agents call the same methods.
Every method returns frozen result types (each has ``to_json()``, or pass it
to :func:`forkman.to_json`), raises :class:`~forkman.ForkmanError` subclasses
with their hints, and reports progress to the observer the project was
opened with. Operations that change a fork go through its durable actor
(one operation at a time per fork, journaled and recoverable).

:class:`Project` is assembled from parts, each a small module: reading
(``_reading``), reports and CI (``_reports``), scheduled checks and the
advisory database (``_watch``); the operations that change forks are here.
The method bodies call :mod:`forkman.operations`, :mod:`forkman.ci` and the
other layers below; nothing here orchestrates.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import BadInput, NotFound
from ..core.observer import NullObserver, Observer
from ..model.project import find_project
from ..operations.changes import (
    abort_sync,
    continue_sync,
    fork_one,
    patch_fork,
    restore_fork,
    wire_project,
)
from ..operations.forkops import audit_forks, test_forks, unfork_forks, verify_forks
from ..operations.handlers import PatchArgs, PatchMode
from ..operations.results import (
    AuditRun,
    ForkResult,
    InitResult,
    PatchResult,
    SyncReport,
    SyncRun,
    TestResult,
    UnforkRun,
)
from ..operations.workflows import Confirm, Runner, init_project, sync_forks
from ._reading import Reading
from ._reports import Reports
from ._sandbox import sandbox_run
from ._watch import Watching, database_info, update_database

if TYPE_CHECKING:  # absolute: forkman.agent reads these names to describe the results
    from forkman.operations.doctor import DoctorReport
    from forkman.operations.migrate import Migration
    from forkman.operations.verify import VerifyResult
    from forkman.testing.deps import ForkTestDependencies

__all__ = ["Project", "database_info", "sandbox_run", "update_database"]


@dataclass(frozen=True)
class Project(Reading, Reports, Watching):
    """A consumer project, and every forkman operation on it.

    Open one with :meth:`open`. The object holds no state of its own beyond
    its settings: every call reads the lock and configuration fresh.

    Example::

        fm = forkman.Project.open("path/to/project")
        fm.status()
    """

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
        lock = self.core.load_lock()
        if isinstance(names, str):
            names = [names]
        if names:
            return list(dict.fromkeys(lock.require(n).name for n in names))
        return sorted(lock.forks)

    # -- changing forks (through their actors) ------------------------------------------

    def init(self, *, index_url: str | None = None) -> InitResult:
        """Add ``[tool.forkman]`` to pyproject.toml and create an empty forkman.lock.

        Example::

            fm = forkman.Project.open(".")
            fm.init(index_url="https://pypi.org/simple/")
        """
        return init_project(self.core, index_url=index_url)

    def fork(
        self,
        spec: str,
        *,
        name: str | None = None,
        index_url: str | None = None,
        wheel: bool = False,
        prereleases: bool | None = None,
        layout: str | None = None,
    ) -> ForkResult:
        """Fork `spec`: a requirement from the index (``attrs==23.1.0``) or ``git+URL@REF``.

        The release is fetched, checked against its pins and vendored; the
        other namespace forks are vendored again when their imports change.
        `layout` is ``project`` (default) or ``namespace``.

        Example::

            fm.fork("attrs==23.1.0")
            fm.fork("git+https://github.com/org/repo@v1.2.0", name="foo")
        """
        return fork_one(
            self._runner,
            spec,
            name=name,
            index_url=index_url,
            wheel=wheel,
            prereleases=prereleases,
            layout=layout,
        )

    def unfork(self, *names: str) -> UnforkRun:
        """Remove forks `names`: vendored trees, patches, history and lock entries.

        Every name is checked first (an unknown one removes nothing); a fork
        that cannot be removed (another command holds it) is reported in its
        result and the others are removed.

        Example::

            run = fm.unfork("attrs", "idna")
            [r.name for r in run.results if r.error is None]
        """
        return unfork_forks(self._runner, names)

    def _patch(self, name: str, args: PatchArgs) -> PatchResult:
        return patch_fork(self._runner, name, args)

    def patch(
        self,
        name: str,
        message: str,
        *,
        fixes: Sequence[str] = (),
        origin: str | None = None,
        forwarded: str | None = None,
        author: str | None = None,
    ) -> PatchResult:
        """Record the edits in fork `name`'s vendored tree as the next patch of its series.

        `fixes`: vulnerability ids the patch fixes; `origin`: where the change
        comes from; `forwarded`: ``no``, ``not-needed`` or where it was sent.

        Example::

            fm.write_file("attrs", "src/attr/_make.py", fixed_text)
            fm.patch("attrs", "Fix slots pickling", fixes=["PYSEC-2024-1"])
        """
        if not message:
            raise BadInput("the patch needs a description", hint=f'fm.patch("{name}", "...")')
        return self._patch(
            name,
            PatchArgs(
                message=message,
                fixes=tuple(fixes),
                origin=origin,
                forwarded=forwarded,
                author=author,
            ),
        )

    def drop_patch(self, name: str, number: int) -> PatchResult:
        """Drop patch `number` (1-based) from fork `name`'s series; the tree follows.

        Example::

            fm.drop_patch("attrs", 2)
        """
        return self._patch(name, PatchArgs(PatchMode.DROP, number))

    def move_patch(self, name: str, number: int, to: int) -> PatchResult:
        """Move patch `number` of fork `name`'s series to position `to` (patches re-merged).

        Example::

            fm.move_patch("attrs", 3, to=1)
        """
        return self._patch(name, PatchArgs(PatchMode.MOVE, number, to))

    def edit_patch(
        self,
        name: str,
        number: int,
        *,
        message: str | None = None,
        fixes: Sequence[str] | None = None,
        origin: str | None = None,
        forwarded: str | None = None,
        author: str | None = None,
    ) -> PatchResult:
        """Change the header of patch `number` of fork `name` (its change stays).

        Example::

            fm.edit_patch("attrs", 1, message="Better description")
        """
        return self._patch(
            name,
            PatchArgs(
                PatchMode.EDIT,
                number,
                message=message,
                fixes=tuple(fixes or ()),
                origin=origin,
                forwarded=forwarded,
                author=author,
            ),
        )

    def import_patches(
        self,
        name: str,
        files: Sequence[str | os.PathLike[str]],
        *,
        before_rewrite: bool = False,
    ) -> PatchResult:
        """Apply patch `files` to fork `name` and add them to its series, in order.

        `before_rewrite`: the files were written against the namespace tree
        before its imports were rewritten (the vendoring tool's patches).

        Example::

            fm.import_patches("attrs", ["fix-a.patch", "fix-b.patch"])
        """
        if not files:
            raise BadInput("no patch files given", hint='fm.import_patches("NAME", ["x.patch"])')
        # absolute: the fork's actor may not share this process's working directory
        paths = [os.path.abspath(f) for f in files]
        return self._patch(
            name, PatchArgs(PatchMode.IMPORT, files=tuple(paths), before_rewrite=before_rewrite)
        )

    def restore(self, name: str) -> tuple[str, ...]:
        """Discard unrecorded edits in fork `name`'s tree; the paths restored.

        Example::

            fm.restore("attrs")
        """
        return restore_fork(self._runner, name)

    def sync(
        self,
        names: str | Sequence[str] | None = None,
        *,
        to: str | None = None,
        dry_run: bool = False,
        yes: bool = False,
        confirm: Confirm | None = None,
        accept_publisher_change: bool = False,
        accept_risk: bool = False,
    ) -> SyncRun:
        """Carry forks' patches to a newer upstream release (three-way merges), or dry-run it.

        `names`: one fork, several, or None for every fork. Forks declared in
        ``[tool.forkman.forks]`` and not made yet are forked first. Nothing is
        taken silently: pass ``yes=True``, or `confirm`, called with each fork's
        dry run (a :class:`SyncReport` with its delta and risks) and returning
        whether to take that exact release. A patch that does not merge leaves
        the fork at a conflict: fix the files (:meth:`read_file`,
        :meth:`write_file`), then :meth:`sync_continue`, or :meth:`sync_abort`.

        Example::

            run = fm.sync("attrs", dry_run=True)
            run.report("attrs").conflict        # None: it would merge cleanly
            fm.sync("attrs", confirm=lambda review: not review.risks)
        """
        if isinstance(names, str):
            names = [names]
        return sync_forks(
            self._runner,
            list(names) if names else None,
            to=to,
            dry_run=dry_run,
            yes=yes,
            confirm=confirm,
            accept_publisher_change=accept_publisher_change,
            accept_risk=accept_risk,
        )

    def sync_continue(self, name: str) -> SyncRun:
        """Go on with fork `name`'s sync after its conflicts were resolved.

        Raises :class:`~forkman.BadInput` while conflict markers remain. The
        report's outcome is ``conflict`` again when a later patch conflicts.

        Example::

            fm.write_file("attrs", "src/attr/_make.py", resolved)
            fm.sync_continue("attrs").report("attrs").outcome
        """
        return continue_sync(self._runner, name)

    def sync_abort(self, name: str) -> SyncReport:
        """Undo fork `name`'s sync stopped at a conflict: everything as it was before.

        Example::

            fm.sync_abort("attrs").outcome   # SyncOutcome.ABORTED
        """
        return abort_sync(self._runner, name)

    # -- checking forks ------------------------------------------------------------------

    def verify(self, names: str | Sequence[str] | None = None) -> tuple[VerifyResult, ...]:
        """Rebuild forks (all, or `names`) from their recorded sources and patches, and compare.

        A fork that does not rebuild bit for bit is a result with ``ok=False``
        (its stage, message and hint say where); a fork whose rebuild could not
        run raises its error.

        Example::

            [r.name for r in fm.verify() if not r.ok]
        """
        return verify_forks(self._runner, self._names(names))

    def test(
        self, names: str | Sequence[str] | None = None, *, no_sandbox: bool = False
    ) -> tuple[TestResult, ...]:
        """Run forks' own test suites (all, or `names`) in the no-network sandbox.

        Forks are tested in parallel from one warm fork server, stopped when the
        call returns. Each result is recorded in forkman.lock. A suite that
        could not run has status ``error`` (its ``error`` says why).

        Example::

            [(t.name, t.status) for t in fm.test(["attrs"])]
        """
        return test_forks(self._runner, self._names(names), no_sandbox=no_sandbox)

    def audit(
        self,
        names: str | Sequence[str] | None = None,
        *,
        online: bool = False,
        database: str | os.PathLike[str] | None = None,
    ) -> AuditRun:
        """Known vulnerabilities of the forks (all, or `names`); each fork's lock entry records it.

        A fork that could not be audited is in the report as unaudited (never
        a pass); one whose audit could not run at all is in ``errors`` too.

        Example::

            run = fm.audit()
            [(f.name, f.status.value) for f in run.report.forks]
        """
        db = Path(database) if database is not None else None
        return audit_forks(self._runner, self._names(names), online=online, database=db)

    # -- wiring and migration -----------------------------------------------------------

    def wire(self) -> tuple[str, ...]:
        """Wire every project-layout fork and pack its installable archive; one line each.

        Writes forkman-requirements.txt, ``[tool.uv.sources]`` and the uv
        constraints, and packs each fork's tree into ``.forkman/dist/``.

        Example::

            fm.wire()
        """
        return wire_project(self.core)

    def doctor(self, *, python: str | None = None) -> DoctorReport:
        """Check that every installer resolves each forked name to its fork (read-only).

        `python`: also check the environment of this interpreter.

        Example::

            report = fm.doctor(python=".venv/bin/python")
            [(p.fork, p.message) for p in report.problems]
        """
        from ..operations.doctor import doctor

        return doctor(self.core, python=python)

    def migrate_vendoring(self, *, dry_run: bool = False) -> Migration:
        """Turn ``[tool.vendoring]`` into forkman configuration and patch series.

        Then :meth:`sync` with no names forks each pinned release it declared.

        Example::

            fm.migrate_vendoring()
            fm.sync(yes=True)
        """
        from ..operations.migrate import migrate_vendoring

        return migrate_vendoring(self.core, dry_run=dry_run)

    def test_dependencies(
        self, names: str | Sequence[str] | None = None
    ) -> tuple[ForkTestDependencies, ...]:
        """The test dependencies of forks (all, or `names`) that :meth:`test` would install,
        where each was found, and what was seen but not used; runs nothing.

        Example::

            [f.requirement for f in fm.test_dependencies("attrs")[0].dependencies.found]
        """
        from ..testing.deps import fork_test_dependencies

        wanted = self._names(names)
        if not wanted:
            raise NotFound(
                "the project has no forks", hint="fork something first: forkman fork NAME"
            )
        return tuple(fork_test_dependencies(self.core, name) for name in wanted)
