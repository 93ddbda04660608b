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

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.errors import BadInput, NotFound
from .core.observer import NullObserver, Observer
from .model.config import DistPreference
from .model.project import Project as _CoreProject
from .model.project import find_project
from .operations.forkops import audit_forks, fork_file, test_forks, unfork_forks, verify_forks
from .operations.handlers import (
    ForkArgs,
    PatchArgs,
    PatchMode,
    RestoreArgs,
    SyncArgs,
    SyncMode,
)
from .operations.results import (
    AuditRun,
    CheckResult,
    ForkInfo,
    ForkResult,
    InitResult,
    PatchResult,
    SyncReport,
    SyncRun,
    TestResult,
    UnforkRun,
)
from .operations.workflows import Confirm, Runner, init_project, revendor_stale, sync_forks

if TYPE_CHECKING:
    from .actors.watch import WatchRound, WatchSummary
    from .audit.osvdb import DatabaseInfo
    from .audit.provenance import ProvenanceCheck
    from .audit.review import ReviewReport
    from .operations.doctor import DoctorReport
    from .operations.migrate import Migration
    from .operations.patches import PatchInfo
    from .operations.status import StatusRow
    from .operations.verify import VerifyResult
    from .reports.licenses import ForkLicense


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
        from .operations.forks import require_fork

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
        from .operations.status import describe_source

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
        from .actors import actor_states
        from .operations.status import status
        from .store.txn import recover

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
        from .core.paths import confined_relpath, protected_names
        from .gate.check import check
        from .store.txn import recover

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
        from .operations.patches import list_patches

        return tuple(list_patches(self.core, name))

    def diff(self, name: str, upstream: str | None = None) -> str:
        """Fork `name`'s patches as one diff against upstream, or upstream's own delta ``A..B``.

        Example::

            fm.diff("attrs")                             # what the fork changes
            fm.diff("attrs", upstream="23.1.0..23.2.0")  # what upstream changed
        """
        from .operations.patches import fork_diff, upstream_diff

        if upstream:
            return upstream_diff(self.core, name, upstream)
        return fork_diff(self.core, name)

    def read_file(self, name: str, path: str) -> str:
        """The text of file `path` (relative to the fork's folder) of fork `name`.

        Use it to read conflict markers after a sync stopped at a conflict.

        Example::

            print(fm.read_file("attrs", "src/attr/_make.py"))
        """
        target = fork_file(self.core, name, path)
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
        from .core.fs import atomic_write_text

        target = fork_file(self.core, name, path)
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
        from .operations.sync import fetch_release_tree

        return review_fork(
            self.core, name, upstream=upstream, record=record, fetch=fetch_release_tree
        )

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
        from .reports.sbom import build_sbom

        return dict(build_sbom(self.core))

    def licenses(self) -> tuple[ForkLicense, ...]:
        """Each fork's license (SPDX where known), its files, and whether the policy refuses it.

        Example::

            [(lic.fork, lic.expression, lic.refused) for lic in fm.licenses()]
        """
        from .reports.licenses import fork_licenses

        return tuple(fork_licenses(self.core))

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
        from .operations.forks import fork_name_for, layout_and_reason, require_initialized

        self.core.require_git()
        require_initialized(self.core)
        fork_name = fork_name_for(spec, name)
        chosen, why = layout_and_reason(self.core, fork_name, layout)
        args = ForkArgs(
            spec,
            index_url=index_url,
            prefer=DistPreference.WHEEL if wheel else None,
            prereleases=prereleases,
            layout=layout,
        )
        result = self._runner.one(fork_name, args)
        made = ForkResult(
            name=fork_name,
            version=str(result["version"]),
            path=str(result["path"]),
            spec=spec,
            layout=chosen,
            layout_reason=why,
            warnings=tuple(str(w) for w in result.get("warnings", [])),
        )
        # the other namespace forks' imports of this one are rewritten now
        return dataclasses.replace(made, revendored=tuple(revendor_stale(self._runner)))

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
        from .operations.forks import require_fork

        self.core.require_git()
        fork = require_fork(self.core, name).name
        result = self._runner.one(fork, args)
        files = result.get("patches") or ([result["file"]] if result.get("file") else [])
        return PatchResult(fork, args.mode.value, tuple(str(f) for f in files))

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
        from .operations.forks import require_fork

        self.core.require_git()
        fork = require_fork(self.core, name).name
        return tuple(str(p) for p in self._runner.one(fork, RestoreArgs())["restored"])

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
        from .operations.forks import require_fork
        from .operations.sync import SyncOutcome

        self.core.require_git()
        fork = require_fork(self.core, name).name
        report = SyncReport.from_reply(self._runner.one(fork, SyncArgs(SyncMode.CONTINUE)))

        if report.outcome is SyncOutcome.CONFLICT:
            return SyncRun((report,), considered=(fork,))
        return SyncRun((report, *revendor_stale(self._runner)), considered=(fork,))

    def sync_abort(self, name: str) -> SyncReport:
        """Undo fork `name`'s sync stopped at a conflict: everything as it was before.

        Example::

            fm.sync_abort("attrs").outcome   # SyncOutcome.ABORTED
        """
        from .operations.forks import require_fork

        self.core.require_git()
        fork = require_fork(self.core, name).name
        return SyncReport.from_reply(self._runner.one(fork, SyncArgs(SyncMode.ABORT)))

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
        from .layouts.wiring import wire_all
        from .operations.forks import wiring_enabled
        from .store.txn import lock_file_mutex

        if not wiring_enabled(self.core):
            raise BadInput(
                "[tool.forkman] wire = false: forkman does not wire this project's forks",
                hint="remove `wire = false` from [tool.forkman] to let forkman wire them",
            )
        self.core.ensure_state_dir()
        with lock_file_mutex(self.core):
            return tuple(wire_all(self.core))

    def doctor(self, *, python: str | None = None) -> DoctorReport:
        """Check that every installer resolves each forked name to its fork (read-only).

        `python`: also check the environment of this interpreter.

        Example::

            report = fm.doctor(python=".venv/bin/python")
            [(p.fork, p.message) for p in report.problems]
        """
        from .operations.doctor import doctor

        return doctor(self.core, python=python)

    def migrate_vendoring(self, *, dry_run: bool = False) -> Migration:
        """Turn ``[tool.vendoring]`` into forkman configuration and patch series.

        Then :meth:`sync` with no names forks each pinned release it declared.

        Example::

            fm.migrate_vendoring()
            fm.sync(yes=True)
        """
        from .operations.migrate import migrate_vendoring

        return migrate_vendoring(self.core, dry_run=dry_run)

    # -- scheduled checks ------------------------------------------------------------------

    def watch(
        self,
        *,
        once: bool = False,
        interval: float = 60.0,
        on_round: Callable[[WatchRound], None] | None = None,
        observer: Observer | None = None,
    ) -> WatchSummary:
        """Run every fork's scheduled checks (``[tool.forkman.watch]``) until interrupted.

        Each pass delivers the due checks and goes to `on_round`; `once`: one
        pass. `observer` (default: this project's) sees the fork actors at work.

        Example::

            fm.watch(once=True, on_round=lambda r: print(r.events())).exit_code()
        """
        from .actors.watch import watch_forks

        return watch_forks(
            self.core,
            engine=self.engine,
            jobs=self.jobs,
            wait=self.wait,
            observer=observer or self.observer,
            once=once,
            interval=interval,
            on_round=on_round,
        )

    # -- the advisory database -------------------------------------------------------------

    def db_update(self, source: str, *, database: Path | None = None) -> DatabaseInfo:
        """Import an OSV advisory database (a folder, an ``all.zip`` or its URL) into the
        project's advisory database (or `database`), replacing it atomically.

        Example::

            fm.db_update("https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip")
        """
        from .audit._settings import load_settings
        from .audit.osvdb import import_database

        target = load_settings(self.core, database=database).database
        return import_database(
            source, target, observer=self.observer, limits=self.core.config.network
        )

    def db_info(self, *, database: Path | None = None) -> DatabaseInfo:
        """Where the project's advisory database (or `database`) came from, what it holds.

        Example::

            fm.db_info().advisories
        """
        from .audit._settings import load_settings
        from .audit.osvdb import OsvDatabase

        with OsvDatabase(load_settings(self.core, database=database).database) as db:
            return db.info

    def test_dependencies(
        self, names: str | Sequence[str] | None = None
    ) -> tuple[ForkTestDependencies, ...]:
        """The test dependencies of forks (all, or `names`) that :meth:`test` would install,
        where each was found, and what was seen but not used; runs nothing.

        Example::

            [f.requirement for f in fm.test_dependencies("attrs")[0].dependencies.found]
        """
        from .testing.deps import fork_test_dependencies

        wanted = self._names(names)
        if not wanted:
            raise NotFound(
                "the project has no forks", hint="fork something first: forkman fork NAME"
            )
        return tuple(fork_test_dependencies(self.core, name) for name in wanted)


def sandbox_run(
    argv: Sequence[str],
    *,
    project: Project | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    memory: int | None = None,
    writable: Sequence[str | os.PathLike[str]] = (),
    no_sandbox: bool = False,
) -> CommandRun:
    """Run `argv` in the no-network sandbox (what ``forkman sandbox run`` does), under
    `project`'s ``[tool.forkman.sandbox]`` policy (the defaults without one).

    `timeout` (seconds) and `memory` (bytes) override the policy; `writable` are the
    directories the command may write (default: `cwd`, itself the current directory
    by default). A run that breaks a limit is killed; its result says which.

    Example::

        run = forkman.api.sandbox_run(["python", "-c", "print(1)"], timeout=10)
        run.result.returncode, run.result.stdout
    """
    from .testing.command import run_command

    return run_command(
        argv,
        project.core.config if project is not None else None,
        Path(cwd) if cwd is not None else Path.cwd(),
        timeout=timeout,
        memory=memory,
        writable=tuple(Path(w) for w in writable),
        no_sandbox=no_sandbox,
    )


if TYPE_CHECKING:
    from .testing.command import CommandRun
    from .testing.deps import ForkTestDependencies
