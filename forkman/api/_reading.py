"""Reading a project's forks: :class:`forkman.api.Project`'s read-only methods, and its
fork-file access (what a conflict resolution reads and writes)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..operations.changes import write_fork_file
from ..operations.reads import check_forks, fork_infos, read_fork_file, status_rows
from ..operations.results import CheckResult, ForkInfo
from ._base import ProjectBase

if TYPE_CHECKING:
    from ..audit.provenance import ProvenanceCheck
    from ..audit.review import ReviewReport
    from ..operations.patches import PatchInfo
    from ..operations.status import StatusRow


class Reading(ProjectBase):
    """The read-only methods of :class:`forkman.api.Project`."""

    def forks(self) -> tuple[ForkInfo, ...]:
        """The forks forkman.lock records, by name: version, path, layout, source, patches.

        Example::

            [f.name for f in fm.forks()]
        """
        return fork_infos(self.core)

    def status(self) -> tuple[StatusRow, ...]:
        """Every fork's state: version, source, patches, clean or modified, last test and audit.

        Forks declared in ``[tool.forkman.forks]`` but not made yet come last
        (state ``declared, not forked``). An interrupted write is recovered first.

        Example::

            [(row.name, row.state) for row in fm.status()]
        """
        return status_rows(self.core, self.observer)

    def check(self, names: Sequence[str] = ()) -> CheckResult:
        """Whether the vendored trees still match forkman.lock (fast, offline, read-only).

        Every unrecorded difference is a finding: edited, added or deleted
        files, edited patch files, a hand-edited lock, a sync paused at a conflict.

        Example::

            result = fm.check()
            if not result.ok:
                print(result.hints)
        """
        return check_forks(self.core, names, self.observer)

    def patches(self, name: str) -> tuple[PatchInfo, ...]:
        """Fork `name`'s patch series in order: file, subject, status against the lock, fixes.

        Example::

            [(p.number, p.subject, p.status.value) for p in fm.patches("attrs")]
        """
        from ..operations.patches import list_patches

        return tuple(list_patches(self.core, name))

    def diff(self, name: str, upstream: str | None = None) -> str:
        """Fork `name`'s patches as one diff against upstream, or upstream's own delta ``A..B``.

        Example::

            fm.diff("attrs")                             # what the fork changes
            fm.diff("attrs", upstream="23.1.0..23.2.0")  # what upstream changed
        """
        from ..operations.patches import fork_diff, upstream_diff

        if upstream:
            return upstream_diff(self.core, name, upstream)
        return fork_diff(self.core, name)

    def read_file(self, name: str, path: str) -> str:
        """The text of file `path` (relative to the fork's folder) of fork `name`.

        Use it to read conflict markers after a sync stopped at a conflict.

        Example::

            print(fm.read_file("attrs", "src/attr/_make.py"))
        """
        return read_fork_file(self.core, name, path)

    def write_file(self, name: str, path: str, text: str) -> None:
        """Write `text` to file `path` of fork `name` (atomically): an edit or a resolution.

        After a sync stopped at a conflict, write each file without its markers,
        then call :meth:`sync_continue`. Otherwise record edits with :meth:`patch`.

        Example::

            fm.write_file("attrs", "src/attr/_make.py", resolved_text)
            fm.sync_continue("attrs")
        """
        write_fork_file(self.core, name, path, text)

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
        from ..audit.review import review_fork
        from ..operations.sync import fetch_release_tree

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
        from ..audit.provenance import verify_fork

        return verify_fork(
            self.core,
            name,
            attestation=Path(attestation) if attestation is not None else None,
            accept=accept_publisher_change,
        )
