"""Audit fixtures: the real PyPA advisory database, imported once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from forkman.audit.osvdb import import_database
from tests.conftest import shared_fixture


@pytest.fixture(scope="session")
def real_db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An imported copy of ../shared/fixtures/advisory-database (read-only use)."""
    source = shared_fixture("advisory-database", "vulns")
    target = tmp_path_factory.mktemp("osv") / "osv.sqlite"
    info = import_database(source, target)
    assert info.advisories > 2600 and info.withdrawn == 10
    return target
