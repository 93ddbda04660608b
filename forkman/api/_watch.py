"""Scheduled checks and the advisory database: :class:`forkman.api.Project`'s ``watch``,
``db_update`` and ``db_info``, and the advisory database without a project."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.observer import NullObserver, Observer
from ._base import ProjectBase

if TYPE_CHECKING:  # absolute: forkman.agent reads these names to describe the results
    from forkman.actors.watch import WatchRound, WatchSummary
    from forkman.audit.osvdb import DatabaseInfo


class Watching(ProjectBase):
    """The scheduled checks and the advisory database of :class:`forkman.api.Project`."""

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
        from ..actors.watch import watch_forks

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
        return update_database(source, project=self, database=database, observer=self.observer)

    def db_info(self, *, database: Path | None = None) -> DatabaseInfo:
        """Where the project's advisory database (or `database`) came from, what it holds.

        Example::

            fm.db_info().advisories
        """
        return database_info(project=self, database=database)


def update_database(
    source: str,
    *,
    project: ProjectBase | None = None,
    database: Path | None = None,
    observer: Observer | None = None,
) -> DatabaseInfo:
    """Import an OSV advisory database (a folder, an ``all.zip`` or its URL), replacing
    the previous one atomically: `project`'s (:meth:`Project.db_update`), or without a
    project the user's default one; `database` overrides either.

    Example::

        forkman.api.update_database("./advisory-database/vulns")
    """
    from ..audit._settings import load_settings
    from ..audit.osvdb import import_database

    core = project.core if project is not None else None
    return import_database(
        source,
        load_settings(core, database=database).database,
        observer=observer or NullObserver(),
        limits=core.config.network if core is not None else None,
    )


def database_info(
    *, project: ProjectBase | None = None, database: Path | None = None
) -> DatabaseInfo:
    """Where an advisory database came from and what it holds: `project`'s
    (:meth:`Project.db_info`), or without a project the user's default one.

    Example::

        forkman.api.database_info().advisories
    """
    from ..audit._settings import load_settings
    from ..audit.osvdb import OsvDatabase

    core = project.core if project is not None else None
    with OsvDatabase(load_settings(core, database=database).database) as db:
        return db.info
