"""Reports on a project's forks: :class:`forkman.api.Project`'s SBOM, licenses, CI run,
provenance cards and CI templates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._base import ProjectBase

if TYPE_CHECKING:
    from ..ci.report import CiReport
    from ..reports.licenses import ForkLicense
    from ..reports.templates import RenderedFile


class Reports(ProjectBase):
    """The report methods of :class:`forkman.api.Project`."""

    def sbom(self) -> dict[str, Any]:
        """A CycloneDX 1.5 SBOM of every fork (a JSON document): source, hashes, patches.

        Example::

            doc = fm.sbom()
            [c["name"] for c in doc["components"]]
        """
        from ..reports.sbom import build_sbom

        return dict(build_sbom(self.core))

    def licenses(self) -> tuple[ForkLicense, ...]:
        """Each fork's license (SPDX where known), its files, and whether the policy refuses it.

        Example::

            [(lic.fork, lic.expression, lic.refused) for lic in fm.licenses()]
        """
        from ..reports.licenses import fork_licenses

        return tuple(fork_licenses(self.core))

    def ci(self, *, base: str | None = None, offline: bool = False) -> CiReport:
        """Run every gate a pipeline needs: policy, check, verify, audit, tests of changed forks.

        `base`: the pull request's target revision (default: ``$GITHUB_BASE_REF``
        or ``$CI_MERGE_REQUEST_TARGET_BRANCH_NAME``). With one, every stage uses
        the base's security settings (a change the checked-out tree makes to them
        is a finding to review) and only forks changed since the merge base are
        tested; without one, the checked-out settings apply and every fork is
        tested. `offline`: verify from the local download cache and git mirrors
        only. A stage that cannot run is an ``error`` stage (CI fails closed);
        the report's ``exit_code`` is 0, 1 (findings) or 2 (a stage could not run).

        Raises :class:`~forkman.ProjectError` outside a forkman project and
        :class:`~forkman.BadInput` for a `base` that is not a revision.

        Example::

            report = fm.ci(base="main")
            [(s.name, s.status.value) for s in report.stages]
        """
        from ..ci.pipeline import CiOptions, run_ci

        return run_ci(self.core, CiOptions(base=base, offline=offline), observer=self.observer)

    def cards(self, names: Sequence[str] = ()) -> tuple[str, ...]:
        """The FORK.md provenance cards of forks `names` (default: every fork), as text.

        A card says where a fork comes from (source, hashes, publisher), which
        patches it carries and why, and its last audit and test run.

        Example::

            print(fm.cards(["attrs"])[0])
        """
        from ..reports.templates import render_card

        lock = self.core.load_lock()
        entries = [lock.require(n) for n in names] if names else list(lock)
        return tuple(render_card(self.core, entry) for entry in entries)

    def write_cards(self, names: Sequence[str] = ()) -> tuple[RenderedFile, ...]:
        """Write the FORK.md card of forks `names` (default: every fork) beside its patches.

        Cards are derived from the lock and the patch series, so they are always
        rewritten (``patches/NAME/FORK.md``).

        Example::

            [str(f.path) for f in fm.write_cards()]
        """
        from ..reports.templates import write_cards

        return tuple(write_cards(self.core, names))

    def write_ci(self, provider: str, *, force: bool = False) -> tuple[RenderedFile, ...]:
        """Render the pipeline that runs ``forkman ci`` for `provider` (``github`` or ``gitlab``).

        A file that exists is kept (its action is ``kept``) unless `force`.

        Example::

            [(f.path.name, f.action.value) for f in fm.write_ci("github")]
        """
        from ..core.errors import BadInput
        from ..reports.templates import CiProvider, render_ci

        try:
            chosen = CiProvider(provider)
        except ValueError:
            known = ", ".join(p.value for p in CiProvider)
            raise BadInput(f"unknown CI provider {provider!r}", hint=f"one of: {known}") from None
        return tuple(render_ci(self.core, chosen, force=force))
