"""`[tool.forkman.audit]`: database location, ignores, policies."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from forkman.audit._settings import Severity, default_database, load_settings
from forkman.core.errors import ConfigError
from forkman.model.project import Project


def settings_for(tmp_path: Path, table: str):  # type: ignore[no-untyped-def]
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "c"\nversion = "0"\n\n{table}')
    return load_settings(Project(tmp_path))


def test_defaults(tmp_path: Path) -> None:
    s = settings_for(tmp_path, "")
    assert s.database == default_database()
    assert s.database.parent == Path(__import__("os").environ["FORKMAN_CACHE_DIR"])
    assert s.ignores == ()
    assert s.block_on is Severity.HIGH
    assert not s.requires_provenance("x")


def test_database_path_is_relative_to_the_project_and_overridable(tmp_path: Path) -> None:
    s = settings_for(tmp_path, '[tool.forkman.audit]\ndatabase = "db/osv.sqlite"\n')
    assert s.database == tmp_path / "db" / "osv.sqlite"
    s = load_settings(Project(tmp_path), database=tmp_path / "other.sqlite")
    assert s.database == tmp_path / "other.sqlite"


def test_ignores_and_policies(tmp_path: Path) -> None:
    s = settings_for(
        tmp_path,
        '[tool.forkman.audit]\nrequire-provenance = false\nblock-on = "Critical"\n\n'
        '[[tool.forkman.audit.ignore]]\nid = "GHSA-x"\nreason = "unused"\nexpires = "2027-01-01"\n'
        'forks = ["a"]\n\n'
        "[tool.forkman.forks.b.audit]\nrequire-provenance = true\n",
    )
    (ignore,) = s.ignores
    assert ignore.expires == dt.date(2027, 1, 1) and ignore.forks == ("a",)
    assert not ignore.expired(dt.date(2026, 12, 31))
    assert ignore.expired(dt.date(2027, 1, 1))
    assert s.block_on is Severity.CRITICAL
    assert s.requires_provenance("b") and not s.requires_provenance("a")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[[tool.forkman.audit.ignore]]\nreason = "r"\nexpires = 2027-01-01\n', "missing id"),
        ('[[tool.forkman.audit.ignore]]\nid = "X"\nexpires = 2027-01-01\n', "missing reason"),
        ('[[tool.forkman.audit.ignore]]\nid = "X"\nreason = "r"\n', "missing expires"),
        ('[[tool.forkman.audit.ignore]]\nid = "X"\nreason = "r"\nexpires = "soon"\n', "expires"),
        ('[tool.forkman.audit]\nblock-on = "severe"\n', "unknown severity"),
        ("[tool.forkman.audit]\nrequire-provenance = 1\n", "require-provenance"),
        ("[tool.forkman.audit]\ndatabase = 3\n", "database must be a path"),
    ],
)
def test_bad_settings_are_config_errors(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_for(tmp_path, table)


def test_every_severity_parses() -> None:
    for member in Severity:
        assert Severity.parse(member.name.lower(), "x") is member
