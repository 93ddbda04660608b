"""The local OSV database: import, matching rules, known answers from the real PyPA database."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import sqlite3
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from forkman.audit.osvdb import (
    DatabaseError,
    OsvDatabase,
    import_database,
    in_range,
    parse_advisory,
    sort_events,
)
from forkman.audit.osvdb import parse_version as V
from forkman.core.errors import BadInput
from forkman.core.observer import RecordingObserver


def osv(
    vid: str,
    name: str = "demo-pkg",
    events: list[dict[str, str]] | None = None,
    versions: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A minimal OSV record for PyPI package `name`."""
    affected: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": name}}
    if events is not None:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": events}]
    if versions is not None:
        affected["versions"] = versions
    return {"id": vid, "details": f"{vid} details", "affected": [affected], **extra}


def build(tmp_path: Path, *records: dict[str, Any], yaml_files: bool = False) -> OsvDatabase:
    folder = tmp_path / "vulns"
    folder.mkdir(exist_ok=True)
    for rec in records:
        if yaml_files:
            (folder / f"{rec['id']}.yaml").write_text(yaml.safe_dump(rec))
        else:
            (folder / f"{rec['id']}.json").write_text(json.dumps(rec))
    target = tmp_path / "osv.sqlite"
    import_database(folder, target)
    return OsvDatabase(target)


def ids(db: OsvDatabase, name: str, version: str) -> list[str]:
    return [a.id for a in db.affecting(name, version)]


# -- matching rules on hand-written records ---------------------------------------------


def test_introduced_fixed_is_half_open(tmp_path: Path) -> None:
    db = build(tmp_path, osv("X-1", events=[{"introduced": "1.0"}, {"fixed": "1.5"}]))
    assert ids(db, "demo-pkg", "0.9") == []
    assert ids(db, "demo-pkg", "1.0") == ["X-1"]
    assert ids(db, "demo-pkg", "1.4.99") == ["X-1"]
    assert ids(db, "demo-pkg", "1.5") == []
    assert ids(db, "demo-pkg", "2.0") == []


def test_unordered_events_are_sorted_before_pairing(tmp_path: Path) -> None:
    # Stored as urllib3 stores them: the 2.x range first, then the 1.x one.
    events = [
        {"introduced": "2.0.0"},
        {"fixed": "2.0.6"},
        {"introduced": "0"},
        {"fixed": "1.26.17"},
    ]
    db = build(tmp_path, osv("X-2", events=events))
    assert ids(db, "demo-pkg", "1.26.16") == ["X-2"]
    assert ids(db, "demo-pkg", "1.26.17") == []
    assert ids(db, "demo-pkg", "1.26.99") == []
    assert ids(db, "demo-pkg", "2.0.0") == ["X-2"]
    assert ids(db, "demo-pkg", "2.0.6") == []
    assert db.affecting("demo-pkg", "2.0.5")[0].fixed == ("1.26.17", "2.0.6")


def test_sort_events_orders_by_version_not_text() -> None:
    events = [("fixed", "1.10"), ("introduced", "1.9"), ("introduced", "0")]
    assert sort_events(events) == [("introduced", "0"), ("introduced", "1.9"), ("fixed", "1.10")]


def test_last_affected_is_inclusive(tmp_path: Path) -> None:
    db = build(tmp_path, osv("X-3", events=[{"introduced": "0"}, {"last_affected": "1.11.0"}]))
    assert ids(db, "demo-pkg", "1.11.0") == ["X-3"]
    assert ids(db, "demo-pkg", "1.11.1") == []
    assert db.affecting("demo-pkg", "1.0")[0].fixed == ()


def test_introduced_without_end_affects_everything_after(tmp_path: Path) -> None:
    db = build(tmp_path, osv("X-4", events=[{"introduced": "3.0"}]))
    assert ids(db, "demo-pkg", "2.9") == []
    assert ids(db, "demo-pkg", "99.0") == ["X-4"]


def test_explicit_versions_list_matches_without_ranges(tmp_path: Path) -> None:
    db = build(tmp_path, osv("X-5", versions=["1.0", "1.2.0-alpha2"]))
    assert ids(db, "demo-pkg", "1.0") == ["X-5"]
    assert ids(db, "demo-pkg", "1.0.0") == ["X-5"]  # PEP 440 equal
    assert ids(db, "demo-pkg", "1.2.0a2") == ["X-5"]  # normalized form
    assert ids(db, "demo-pkg", "1.1") == []


def test_withdrawn_records_are_not_imported(tmp_path: Path) -> None:
    db = build(
        tmp_path,
        osv("X-6", events=[{"introduced": "0"}], withdrawn="2023-01-01T00:00:00Z"),
        osv("X-7", events=[{"introduced": "0"}, {"fixed": "2"}]),
    )
    assert ids(db, "demo-pkg", "1.0") == ["X-7"]
    assert db.info.withdrawn == 1


def test_git_ranges_are_ignored(tmp_path: Path) -> None:
    rec = osv("X-8", versions=["1.0"])
    rec["affected"][0]["ranges"] = [
        {"type": "GIT", "repo": "https://x", "events": [{"introduced": "0"}, {"fixed": "abc123"}]}
    ]
    db = build(tmp_path, rec)
    assert ids(db, "demo-pkg", "1.0") == ["X-8"]
    assert ids(db, "demo-pkg", "0.5") == []  # the GIT range did not make everything affected
    assert db.affecting("demo-pkg", "1.0")[0].fixed == ()  # commit ids are not fix versions


def test_names_are_normalized_and_other_ecosystems_ignored(tmp_path: Path) -> None:
    rec = osv("X-9", name="Demo_Pkg", events=[{"introduced": "0"}, {"fixed": "2"}])
    rec["affected"].append({"package": {"ecosystem": "npm", "name": "other"}, "versions": ["1.0"]})
    db = build(tmp_path, rec)
    assert ids(db, "demo.pkg", "1") == ["X-9"]
    assert ids(db, "DEMO-PKG", "1") == ["X-9"]
    assert ids(db, "other", "1.0") == []


def test_yaml_datetimes_and_aliases_are_kept(tmp_path: Path) -> None:
    (tmp_path / "vulns").mkdir()
    (tmp_path / "vulns" / "X-10.yaml").write_text(
        "id: X-10\npublished: 2023-03-31T20:15:00Z\nmodified: 2023-07-25T16:31:58.309647Z\n"
        "aliases:\n- CVE-2022-4899\ndetails: boom\naffected:\n- package:\n    ecosystem: PyPI\n"
        "    name: demo-pkg\n  ranges:\n  - type: ECOSYSTEM\n    events:\n    - introduced: '0'\n"
    )
    assert isinstance(
        yaml.safe_load((tmp_path / "vulns" / "X-10.yaml").read_text())["published"], dt.datetime
    )
    import_database(tmp_path / "vulns", tmp_path / "osv.sqlite")
    (adv,) = OsvDatabase(tmp_path / "osv.sqlite").affecting("demo-pkg", "1.0")
    assert adv.aliases == ("CVE-2022-4899",)
    assert adv.published == "2023-03-31T20:15:00Z"


def test_in_range_is_the_osv_algorithm() -> None:
    events = sort_events([("introduced", "1.0"), ("fixed", "1.1"), ("introduced", "1.3")])
    assert [in_range(V(v), events) for v in ("0.1", "1.0", "1.1", "1.2", "1.3", "5")] == [  # type: ignore[arg-type]
        False,
        True,
        False,
        False,
        True,
        True,
    ]


def test_range_with_unorderable_event_keeps_the_listed_versions(tmp_path: Path) -> None:
    obs = RecordingObserver()
    rec = osv("X-11", events=[{"introduced": "0"}, {"fixed": "2019-09-12"}], versions=["1.0"])
    (tmp_path / "vulns").mkdir()
    (tmp_path / "vulns" / "X-11.json").write_text(json.dumps(rec))
    import_database(tmp_path / "vulns", tmp_path / "osv.sqlite", observer=obs)
    db = OsvDatabase(tmp_path / "osv.sqlite")
    assert ids(db, "demo-pkg", "1.0") == ["X-11"]
    assert any("X-11.json" in w and "range ignored" in w for w in obs.warnings)


# -- import: sources, malformed input, atomicity ----------------------------------------


def test_malformed_advisories_are_skipped_with_a_warning_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "vulns"
    folder.mkdir()
    (folder / "GOOD-1.json").write_text(json.dumps(osv("GOOD-1", versions=["1.0"])))
    (folder / "broken.yaml").write_text("id: [unclosed\n")
    (folder / "noid.json").write_text(json.dumps({"affected": []}))
    (folder / "badevent.json").write_text(
        json.dumps(osv("BAD-2", events=[{"introduced": "0", "fixed": "1"}]))
    )
    obs = RecordingObserver()
    info = import_database(folder, tmp_path / "osv.sqlite", observer=obs)
    assert info.advisories == 1
    assert info.skipped == 3
    joined = "\n".join(obs.warnings)
    for name in ("broken.yaml", "noid.json", "badevent.json"):
        assert name in joined


def test_import_from_an_osv_zip_export(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("GHSA-aaaa.json", json.dumps(osv("GHSA-aaaa", versions=["1.0"])))
        zf.writestr(
            "MAL-2024-1.json",
            json.dumps(osv("MAL-2024-1", name="evil", events=[{"introduced": "0"}])),
        )
    info = import_database(archive, tmp_path / "osv.sqlite")
    db = OsvDatabase(tmp_path / "osv.sqlite")
    assert info.advisories == 2
    assert ids(db, "evil", "0.0.1") == ["MAL-2024-1"]
    assert db.info.source == str(archive)


@pytest.fixture
def http_file(tmp_path: Path) -> Iterator[str]:
    """Serve tmp_path over real HTTP on 127.0.0.1."""
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path), **k
    )
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_import_from_a_url(tmp_path: Path, http_file: str) -> None:
    with zipfile.ZipFile(tmp_path / "all.zip", "w") as zf:
        zf.writestr("PYSEC-1.json", json.dumps(osv("PYSEC-1", versions=["1.0"])))
    import_database(f"{http_file}/all.zip", tmp_path / "db" / "osv.sqlite")
    assert ids(OsvDatabase(tmp_path / "db" / "osv.sqlite"), "demo-pkg", "1.0") == ["PYSEC-1"]


def test_failed_import_leaves_the_previous_database_intact(tmp_path: Path) -> None:
    db = build(tmp_path, osv("KEEP-1", versions=["1.0"]))
    db.close()
    target = tmp_path / "osv.sqlite"
    before = target.read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.yaml").write_text("not: [valid")
    with pytest.raises(BadInput, match="no usable OSV advisories"):
        import_database(bad, target)
    with pytest.raises(BadInput, match="not a zip"):
        import_database((bad / "x.yaml"), target)

    class Interrupt(RecordingObserver):
        def progress(self, subject: str, done: int, total: int | None) -> None:
            raise KeyboardInterrupt

    many = tmp_path / "many"
    many.mkdir()
    for i in range(600):
        (many / f"M-{i}.json").write_text(json.dumps(osv(f"M-{i}", versions=["1.0"])))
    with pytest.raises(KeyboardInterrupt):
        import_database(many, target, observer=Interrupt())
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".osv-")] == []
    assert ids(OsvDatabase(target), "demo-pkg", "1.0") == ["KEEP-1"]


def test_corrupt_or_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no advisory database") as missing:
        OsvDatabase(tmp_path / "absent.sqlite")
    assert "forkman db update" in (missing.value.hint or "")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match="unreadable") as corrupt:
        OsvDatabase(garbage)
    assert corrupt.value.exit_code == 2
    assert "re-run `forkman db update`" in (corrupt.value.hint or "")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(DatabaseError, match="unreadable"):
        OsvDatabase(other)


def test_parse_advisory_rejects_non_mappings() -> None:
    from forkman.audit.osvdb import MalformedAdvisory

    with pytest.raises(MalformedAdvisory):
        parse_advisory(["not", "a", "record"])


# -- known answers from the real PyPA advisory database ---------------------------------


@pytest.fixture
def real_db(real_db_path: Path) -> Iterator[OsvDatabase]:
    with OsvDatabase(real_db_path) as db:
        yield db


def test_jinja2_2_10_is_flagged_with_the_right_fixes(real_db: OsvDatabase) -> None:
    found = {a.id: a for a in real_db.affecting("Jinja2", "2.10")}
    assert set(found) == {"PYSEC-2019-217", "PYSEC-2021-66"}
    assert found["PYSEC-2019-217"].fixed == ("2.10.1",)
    assert "CVE-2019-10906" in found["PYSEC-2019-217"].aliases
    assert found["PYSEC-2021-66"].fixed == ("2.11.3",)
    assert [a.id for a in real_db.affecting("jinja2", "2.10.1")] == ["PYSEC-2021-66"]
    assert real_db.affecting("jinja2", "2.11.3") == []


def test_urllib3_unordered_events(real_db: OsvDatabase) -> None:
    def ids_at(v: str) -> set[str]:
        return {a.id for a in real_db.affecting("urllib3", v)}

    assert "PYSEC-2023-192" in ids_at("1.26.16")
    assert "PYSEC-2023-192" not in ids_at("1.26.17")
    assert "PYSEC-2023-192" in ids_at("2.0.5")
    assert "PYSEC-2023-192" not in ids_at("2.0.6")
    (adv,) = [a for a in real_db.affecting("urllib3", "2.0.5") if a.id == "PYSEC-2023-192"]
    assert adv.fixed == ("1.26.17", "2.0.6")


def test_last_affected_in_the_real_database(real_db: OsvDatabase) -> None:
    assert [a.id for a in real_db.affecting("py", "1.11.0")] == ["PYSEC-2022-42969"]
    assert real_db.affecting("py", "1.11.1") == []


def test_withdrawn_advisory_is_not_reported(real_db: OsvDatabase) -> None:
    # PYSEC-2021-13 (flask-caching >= 1.0.0, no fix) was withdrawn.
    assert real_db.affecting("flask-caching", "1.10.1") == []
    assert not real_db.known("flask-caching")


def test_datetime_timestamps_are_handled(real_db: OsvDatabase) -> None:
    (adv,) = real_db.affecting("zstd", "1.3.4")
    assert adv.id == "PYSEC-2023-121"
    assert adv.published == "2023-03-31T20:15:00Z"


def test_hidden_folders_of_a_checkout_are_not_advisories(tmp_path: Path) -> None:
    folder = tmp_path / "checkout"
    (folder / ".github" / "workflows").mkdir(parents=True)
    (folder / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    (folder / "vulns" / "demo").mkdir(parents=True)
    (folder / "vulns" / "demo" / "X-1.json").write_text(json.dumps(osv("X-1", versions=["1"])))
    obs = RecordingObserver()
    info = import_database(folder, tmp_path / "osv.sqlite", observer=obs)
    assert (info.advisories, info.skipped, obs.warnings) == (1, 0, [])
