"""The reading operations behind :class:`forkman.api.Project`: what the lock records,
every fork's state, the quick check, and a fork's files.

Each takes the consumer project (and the observer for warnings) and returns
the typed results of :mod:`forkman.operations.results`. Nothing here changes a
fork; the status and the check recover an interrupted write first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core.errors import BadInput, NotFound
from ..core.observer import Observer
from ..model.project import Project
from .forkops import fork_file
from .results import CheckResult, ForkInfo

if TYPE_CHECKING:
    from ..gate.check import CheckReport
    from .status import StatusRow


def fork_infos(project: Project) -> tuple[ForkInfo, ...]:
    """The forks forkman.lock records, by name."""
    from .status import describe_source

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
        for entry in project.load_lock()
    )


def recover_writes(project: Project, observer: Observer) -> None:
    """Finish or undo a write an earlier command left half done; each as a warning."""
    from ..store.txn import recover

    for line in recover(project):
        observer.warning(f"recovered: {line}")


def status_rows(project: Project, observer: Observer) -> tuple[StatusRow, ...]:
    """Every fork's state, declared forks not made yet last (a half-done write recovered first)."""
    from ..actors import actor_states
    from .status import status

    recover_writes(project, observer)
    return tuple(status(project, actor_states=actor_states(project)))


def gate_report(project: Project, names: Sequence[str] = ()) -> CheckReport:
    """The quick check's report on `names` (default: every fork), with the project's settings."""
    from ..core.paths import confined_relpath, protected_names
    from ..gate.check import check

    config = project.config
    vendoring = config.section("vendoring")
    where = "[tool.forkman.vendoring]"
    destination = vendoring.get("destination")
    return check(
        project.root,
        vendor_dir=config.vendor_dir,
        patches_dir=config.patches_dir,
        names=list(names),
        protected=protected_names(vendoring.get("protected-files", []), f"{where}.protected-files"),
        destination=confined_relpath(destination, f"{where}.destination")
        if destination is not None
        else None,
        declared=sorted(n for n, p in config.forks.items() if "requirement" in p.raw),
    )


def check_forks(project: Project, names: Sequence[str], observer: Observer) -> CheckResult:
    """Whether the vendored trees of `names` (default: every fork) match forkman.lock.

    A write an earlier command left half done is recovered first.
    """
    recover_writes(project, observer)
    report = gate_report(project, names)
    return CheckResult(
        report.ok, report.forks_checked, tuple(report.findings), tuple(report.hints())
    )


def read_fork_file(project: Project, name: str, path: str) -> str:
    """The text of file `path` (relative to the fork's folder) of fork `name`."""
    target = fork_file(project, name, path)
    try:
        return target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"fork {name} has no file {path!r}") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path!r} of fork {name} is not a text file: {exc}") from None
