"""`forkman audit`: real advisories for real pins, never a false clean, patches and ignores."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from forkman.audit._pipaudit import LocalOsvService
from forkman.audit.osvdb import OsvDatabase
from forkman.audit.vulnerabilities import (
    AuditFormat,
    ForkStatus,
    VulnState,
    audit_project,
    render,
)
from forkman.cli import cli
from forkman.model.lock import load_lock
from forkman.model.project import Project
from tests.audit.helpers import entry, write_forks


def configure(project: Path, db: Path, extra: str = "") -> None:
    text = (project / "pyproject.toml").read_text()
    text += f'\n[tool.forkman.audit]\ndatabase = "{db}"\n{extra}'
    (project / "pyproject.toml").write_text(text)


def run(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--project", str(project), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_vulnerable_fork_fails_with_the_right_advisories(project: Path, real_db_path: Path) -> None:
    configure(project, real_db_path)
    write_forks(project, entry("jinja2", "2.10"), entry("jinja2-time", "0.2.0"))
    code, out, _ = run(project, "audit", "--format", "json")
    assert code == 1
    data = json.loads(out)
    deps = {d["name"]: d for d in data["dependencies"]}
    vulns = {v["id"]: v for v in deps["jinja2"]["vulns"]}
    assert set(vulns) == {"PYSEC-2019-217", "PYSEC-2021-66"}
    assert vulns["PYSEC-2019-217"]["fix_versions"] == ["2.10.1"]
    assert deps["jinja2-time"]["vulns"] == []
    forks = {f["name"]: f for f in data["forkman"]["forks"]}
    assert forks["jinja2"]["status"] == "vulnerable"
    # pip-audit's fix resolution: 2.11.3 clears both advisories.
    assert forks["jinja2"]["fix_version"] == "2.11.3"
    assert forks["jinja2-time"]["status"] == "clean"
    # The summary lands in the lock.
    lock = load_lock(project / "forkman.lock")
    section = lock.forks["jinja2"].sections["audit"]
    assert section["status"] == "vulnerable"
    assert section["vulnerabilities"] == ["PYSEC-2019-217", "PYSEC-2021-66"]
    assert (
        str(real_db_path.parent.name) in section["database"]
        or "advisory-database" in section["database"]
    )


def test_neighbouring_safe_version_passes(project: Path, real_db_path: Path) -> None:
    configure(project, real_db_path)
    write_forks(project, entry("jinja2", "2.11.3"), entry("urllib3", "2.0.7"))
    code, out, _ = run(project, "audit")
    assert code == 0, out
    assert "jinja2 2.11.3: clean" in out
    assert "urllib3 2.0.7: clean" in out


def test_patch_declaring_a_fix_by_alias_marks_it_patched_locally(
    project: Path, real_db_path: Path
) -> None:
    configure(project, real_db_path)
    # CVE-2023-43804 is an alias of PYSEC-2023-192 and CVE-2023-45803 of PYSEC-2023-212.
    write_forks(project, entry("urllib3", "2.0.5", fixes=("CVE-2023-43804", "cve-2023-45803")))
    code, out, _ = run(project, "audit")
    assert code == 0, out
    assert "urllib3 2.0.5: patched" in out
    assert (
        "PYSEC-2023-192 patched-locally: patched locally by patches/urllib3/0001-fix.patch" in out
    )
    section = load_lock(project / "forkman.lock").forks["urllib3"].sections["audit"]
    assert section["patched"] == ["PYSEC-2023-192", "PYSEC-2023-212"]
    assert section["vulnerabilities"] == []


def test_ignores_need_reason_and_expiry_and_expired_ones_fail_again(
    project: Path, real_db_path: Path
) -> None:
    configure(
        project,
        real_db_path,
        '[[tool.forkman.audit.ignore]]\nid = "PYSEC-2022-42969"\n'
        'reason = "we never use py.path.svnwc"\nexpires = 2030-01-01\n',
    )
    write_forks(project, entry("py", "1.11.0"))
    p = Project(project)
    report = audit_project(p, today=dt.date(2029, 12, 31))
    (vuln,) = report.forks[0].vulnerabilities
    assert vuln.state is VulnState.IGNORED
    assert report.exit_code(allow_unaudited=False) == 0
    expired = audit_project(Project(project), today=dt.date(2030, 1, 1))
    (vuln,) = expired.forks[0].vulnerabilities
    assert vuln.state is VulnState.IGNORE_EXPIRED
    assert "expired on 2030-01-01" in vuln.note
    assert expired.exit_code(allow_unaudited=False) == 1


def test_ignore_without_reason_is_a_config_error(project: Path, real_db_path: Path) -> None:
    configure(
        project,
        real_db_path,
        '[[tool.forkman.audit.ignore]]\nid = "PYSEC-2022-42969"\nexpires = 2030-01-01\n',
    )
    write_forks(project, entry("py", "1.11.0"))
    before = (project / "forkman.lock").read_bytes()
    code, _, err = run(project, "audit")
    assert code == 2
    assert "missing reason" in err
    assert (project / "forkman.lock").read_bytes() == before


def test_no_database_is_never_a_clean_result(project: Path, tmp_path: Path) -> None:
    configure(project, tmp_path / "nothing-here.sqlite")
    write_forks(project, entry("attrs", "23.1.0"))
    code, out, err = run(project, "audit")
    assert code == 1
    assert "attrs 23.1.0: unaudited" in out
    assert "no advisory database" in out
    assert "NOT audited" in err
    code, _, err = run(project, "audit", "--allow-unaudited")
    assert code == 0
    assert "NOT audited (allowed)" in err
    section = load_lock(project / "forkman.lock").forks["attrs"].sections["audit"]
    assert section["status"] == "unaudited"


def test_non_pep440_version_is_unaudited(project: Path, real_db_path: Path) -> None:
    configure(project, real_db_path)
    write_forks(project, entry("somegit", "main-branch"))
    code, out, _ = run(project, "audit")
    assert code == 1
    assert "not a PEP 440 version" in out


def test_corrupt_database_exits_2_with_a_hint(project: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"\0garbage" * 512)
    configure(project, bad)
    write_forks(project, entry("attrs", "23.1.0"))
    code, _, err = run(project, "audit")
    assert code == 2
    assert "unreadable" in err and "forkman db update" in err


def test_unknown_fork_name_is_bad_input(project: Path, real_db_path: Path) -> None:
    configure(project, real_db_path)
    write_forks(project, entry("attrs", "23.1.0"))
    code, _, err = run(project, "audit", "nope")
    assert code == 2
    assert "no fork named 'nope'" in err


@pytest.mark.parametrize("fmt", [f for f in AuditFormat])
def test_every_format_renders(project: Path, real_db_path: Path, fmt: AuditFormat) -> None:
    configure(project, real_db_path)
    write_forks(
        project, entry("jinja2", "2.10"), entry("urllib3", "2.0.5", fixes=("CVE-2023-43804",))
    )
    report = audit_project(Project(project), record=False)
    text = render(report, fmt)
    assert "Successfully upgraded" not in text
    match fmt:
        case AuditFormat.COLUMNS | AuditFormat.MARKDOWN:
            assert "PYSEC-2019-217" in text and "patched-locally" in text
        case AuditFormat.JSON:
            assert json.loads(text)["forkman"]["forks"][0]["name"] == "jinja2"
        case AuditFormat.CYCLONEDX:
            ids = {v["id"] for v in json.loads(text)["vulnerabilities"]}
            assert ids == {"PYSEC-2019-217", "PYSEC-2021-66", "PYSEC-2023-212"}
        case AuditFormat.SARIF:
            sarif = json.loads(text)
            assert sarif["version"] == "2.1.0"
            results = sarif["runs"][0]["results"]
            by_rule = {r["ruleId"]: r for r in results}
            assert by_rule["PYSEC-2019-217"]["level"] == "error"
            assert by_rule["PYSEC-2023-192"]["level"] == "note"
            assert by_rule["PYSEC-2023-192"]["suppressions"][0]["kind"] == "inSource"
        case _:
            raise AssertionError(fmt)


def test_local_service_speaks_pip_audits_interface(real_db_path: Path) -> None:
    from packaging.version import Version
    from pip_audit._fix import ResolvedFixVersion, resolve_fix_versions
    from pip_audit._service.interface import ResolvedDependency

    with OsvDatabase(real_db_path) as db:
        service = LocalOsvService(db)
        dep = ResolvedDependency(name="Jinja2", version=Version("2.10"))
        spec, results = service.query(dep)
        assert spec is dep
        assert {r.id for r in results} == {"PYSEC-2019-217", "PYSEC-2021-66"}
        (fix,) = list(resolve_fix_versions(service, {dep: results}))
        assert isinstance(fix, ResolvedFixVersion) and fix.version == Version("2.11.3")


# -- online services (real pip-audit services against local servers) --------------------


@pytest.fixture
def fake_osv() -> Iterator[str]:
    """An OSV-API-compatible server on 127.0.0.1 that knows one jinja2 advisory."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body: dict[str, object] = {}
            if query["package"]["name"] == "jinja2":
                body = {
                    "vulns": [
                        {
                            "id": "GHSA-462w-v97r-4m45",
                            "aliases": ["CVE-2019-10906", "PYSEC-2019-217"],
                            "summary": "sandbox escape",
                            "affected": [
                                {
                                    "package": {"name": "jinja2", "ecosystem": "PyPI"},
                                    "ranges": [
                                        {
                                            "type": "ECOSYSTEM",
                                            "events": [{"introduced": "0"}, {"fixed": "2.10.1"}],
                                        }
                                    ],
                                }
                            ],
                        }
                    ]
                }
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_online_answers_merge_by_alias(
    project: Path, real_db_path: Path, fake_osv: str, tmp_path: Path
) -> None:
    from pip_audit._service import OsvService

    configure(project, real_db_path)
    write_forks(project, entry("jinja2", "2.10"))
    service = OsvService(cache_dir=tmp_path / "c", timeout=5, osv_url=fake_osv)
    report = audit_project(Project(project), online_services=[("OSV", service)], record=False)
    (fork,) = report.forks
    assert fork.status is ForkStatus.VULNERABLE
    assert report.sources == ("local OSV database", "OSV")
    merged = {v.id: v for v in fork.vulnerabilities}
    assert set(merged) == {"PYSEC-2019-217", "PYSEC-2021-66"}  # the GHSA merged into its PYSEC
    assert "GHSA-462w-v97r-4m45" in merged["PYSEC-2019-217"].aliases


def test_unreachable_online_service_makes_the_fork_unaudited(
    project: Path, real_db_path: Path, tmp_path: Path
) -> None:
    from pip_audit._service import OsvService

    configure(project, real_db_path)
    write_forks(project, entry("attrs", "23.1.0"))
    dead = OsvService(
        cache_dir=tmp_path / "c", timeout=2, osv_url=f"http://127.0.0.1:{_closed_port()}/q"
    )
    report = audit_project(Project(project), online_services=[("OSV", dead)], record=False)
    (fork,) = report.forks
    assert fork.status is ForkStatus.UNAUDITED
    assert fork.unaudited and fork.unaudited[0].startswith("OSV could not be queried")
    assert report.exit_code(allow_unaudited=False) == 1
    assert report.exit_code(allow_unaudited=True) == 0


def test_db_update_cli_imports_and_reports(project: Path, tmp_path: Path) -> None:
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "A-1.json").write_text(
        json.dumps(
            {
                "id": "A-1",
                "affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "versions": ["1"]}],
            }
        )
    )
    (folder / "bad.json").write_text("{")
    db = tmp_path / "out" / "osv.sqlite"
    code, out, err = run(project, "db", "update", "--from", str(folder), "--db", str(db))
    assert code == 0
    assert "1 advisories for 1 packages" in out
    assert "bad.json" in err
    code, out, _ = run(project, "db", "info", "--db", str(db))
    assert code == 0 and str(folder) in out


def test_found_vulnerabilities_and_an_unreachable_source_are_both_reported(
    project: Path, real_db_path: Path, tmp_path: Path
) -> None:
    from pip_audit._service import OsvService

    configure(project, real_db_path)
    write_forks(project, entry("jinja2", "2.10"))
    dead = OsvService(
        cache_dir=tmp_path / "c", timeout=2, osv_url=f"http://127.0.0.1:{_closed_port()}/q"
    )
    report = audit_project(Project(project), online_services=[("OSV", dead)], record=False)
    (fork,) = report.forks
    assert fork.status is ForkStatus.VULNERABLE
    assert fork.unaudited
    text = render(report, AuditFormat.COLUMNS)
    assert "PYSEC-2019-217" in text
    assert "Skip Reason" in text and "OSV could not be queried" in text


def test_no_forks_is_said_and_passes(project: Path, real_db_path: Path) -> None:
    configure(project, real_db_path)
    code, _, err = run(project, "audit")
    assert code == 0
    assert "no forks to audit" in err
