"""`forkman ci`: real stages on real forks from the local index, and every output format."""

from __future__ import annotations

import json
import os
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from forkman.ci.formats import CiFormat, render, to_markdown
from forkman.ci.pipeline import (
    AuditStage,
    CheckStage,
    CiOptions,
    ForkTestStage,
    StageStatus,
    VerifyStage,
    changed_forks,
    run_ci,
)
from forkman.model.project import Project
from tests.conftest import git
from tests.support.cli import run
from tests.support.index import LocalIndex
from tests.support.wheels import serve_test_runner


@pytest.fixture
def forked(cwd: Path, local_index: LocalIndex) -> Path:
    """A project with fork demo 1.0, committed; pytest and setuptools wheels on the index."""
    serve_test_runner(local_index)
    local_index.add_sdist("demo", "1.0")
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", "fork demo")
    return cwd


def _stages(report_stages: object) -> dict[str, str]:
    return {s["name"]: s["status"] for s in report_stages}  # type: ignore[attr-defined]


def test_ci_runs_every_stage_and_fails_closed_without_audit_and_test(forked: Path) -> None:
    res = run("ci", "--format", "json", "--output", "ci.json")
    # audit and test are separate commands; where they are absent the stage errors
    doc = json.loads((forked / "ci.json").read_text())
    status = _stages(doc["stages"])
    assert status["check"] == "ok" and status["verify"] == "ok"
    # no advisory database here: the audit stage must fail closed, never pass
    assert status["audit"] in ("failed", "error")
    audit = next(s for s in doc["stages"] if s["name"] == "audit")
    assert {f["rule"] for f in audit["findings"]} == {"unaudited"}
    if status["test"] == "error":
        finding = next(s for s in doc["stages"] if s["name"] == "test")["findings"][0]
        assert finding["rule"] in ("command-unavailable", "sandbox-unavailable")
    expected = 2 if "error" in status.values() else (1 if "failed" in status.values() else 0)
    assert res.exit_code == expected == doc["exit_code"]
    # the summary table comes last on stdout; progress went to stderr
    tail = res.stdout.strip().splitlines()
    assert tail[-1].startswith("forkman ci: ")
    assert any(line.split()[:2] == ["check", "ok"] for line in tail)
    assert "ci: check: running" in res.stderr
    assert "wrote ci.json" in res.stderr


def test_ci_green_with_check_and_verify(forked: Path) -> None:
    project = Project(forked)
    report = run_ci(project, stages=[CheckStage(), VerifyStage()])
    assert report.ok and report.exit_code == 0
    assert [s.status for s in report.stages] == [StageStatus.OK] * 3
    assert [s.name for s in report.stages] == ["policy", "check", "verify"]
    assert report.stages[0].summary.startswith("security settings from the working tree")
    assert report.policy == "working tree"
    assert report.stages[2].summary == "1/1 fork(s) rebuild bit for bit"


def test_hand_edit_fails_check_and_verify_with_the_file_and_the_command(forked: Path) -> None:
    (forked / "vendor/demo/README.md").write_text("edited by hand\n")
    res = run("ci", "--format", "sarif", "--output", "out.sarif")
    assert res.exit_code in (1, 2)
    assert "check: demo: modified: vendor/demo/README.md" in res.stdout
    assert "forkman patch demo -m MESSAGE" in res.stdout
    assert "verify: demo: worktree:" in res.stdout
    sarif = json.loads((forked / "out.sarif").read_text())
    _validate_sarif(sarif)
    results = sarif["runs"][0]["results"]
    modified = next(r for r in results if r["ruleId"] == "forkman/check/modified")
    uri = modified["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "vendor/demo/README.md"
    assert "forkman patch demo" in modified["message"]["text"]
    assert any(r["ruleId"] == "forkman/verify/worktree" for r in results)


def _validate_sarif(log: dict) -> None:  # type: ignore[type-arg]
    """The parts of SARIF 2.1.0 that code-scanning consumers require."""
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    assert isinstance(log["runs"], list) and len(log["runs"]) == 1
    run_ = log["runs"][0]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "forkman" and driver["version"]
    rule_ids = [r["id"] for r in driver["rules"]]
    assert len(rule_ids) == len(set(rule_ids))
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
    for result in run_["results"]:
        assert result["level"] in ("error", "warning", "note", "none")
        assert result["message"]["text"]
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        for loc in result["locations"]:
            uri = loc["physicalLocation"]["artifactLocation"]["uri"]
            assert not uri.startswith("/")
    assert isinstance(run_["invocations"][0]["executionSuccessful"], bool)


def test_junit_and_step_summary(forked: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = forked / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (forked / "vendor/demo/NEW.txt").write_text("new\n")
    res = run("ci", "--format", "junit", "--output", "reports/ci.xml")
    assert res.exit_code in (1, 2)
    root = ET.parse(forked / "reports/ci.xml").getroot()
    assert root.tag == "testsuites"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"policy", "check", "verify", "audit", "test"}
    failure = cases["check"].find("failure")
    assert failure is not None and "added: vendor/demo/NEW.txt" in (failure.text or "")
    assert int(root.get("failures", "0")) >= 1
    assert int(root.get("tests", "0")) == 5
    text = summary.read_text()
    assert text.startswith("# earlier step\n## forkman ci: failed")  # appended, not replaced
    assert "| check | ❌ failed |" in text
    assert "added: vendor/demo/NEW.txt" in text


def test_machine_output_to_stdout_moves_the_table_to_stderr(forked: Path) -> None:
    res = run("ci", "--format", "json", "--output", "-")
    doc = json.loads(res.stdout)
    assert doc["tool"] == "forkman"
    assert "forkman ci:" in res.stderr


def test_formats_are_exhaustive(forked: Path) -> None:
    report = run_ci(Project(forked), stages=[CheckStage()])
    for fmt in CiFormat:
        assert render(report, fmt).strip()


# -- verify without network: say so, offer the offline cache, fail closed -------------------


def test_offline_uses_only_the_cache(forked: Path, local_index: LocalIndex) -> None:
    cache = Path(os.environ["FORKMAN_CACHE_DIR"])
    shutil.rmtree(cache / "downloads")
    before = len(local_index.requests)
    res = run("ci", "--offline", "--format", "json", "--output", "ci.json")
    assert res.exit_code == 2
    assert len(local_index.requests) == before  # offline means offline
    verify = next(
        s for s in json.loads((forked / "ci.json").read_text())["stages"] if s["name"] == "verify"
    )
    assert verify["status"] == "error"
    assert "1 could not be verified (no offline cache)" in verify["summary"]
    finding = verify["findings"][0]
    assert finding["fork"] == "demo" and finding["rule"] == "not-in-offline-cache"
    assert "demo-1.0.tar.gz is not in the offline cache" in finding["message"]
    assert "forkman ci --offline" in finding["hint"]
    # warm the cache once with network, then verify offline with the index gone
    assert run("verify").exit_code == 0
    local_index.stop()
    report = run_ci(Project(forked), CiOptions(offline=True), stages=[VerifyStage(offline=True)])
    assert report.stages[-1].status is StageStatus.OK, report.stages[-1]


def test_verify_without_network_says_so_and_offers_the_cache(
    forked: Path, local_index: LocalIndex
) -> None:
    shutil.rmtree(Path(os.environ["FORKMAN_CACHE_DIR"]) / "downloads")
    local_index.stop()
    res = run("ci")
    assert res.exit_code == 2
    assert "verify needs demo-1.0.tar.gz from" in res.stdout
    assert "cannot be reached" in res.stdout
    assert "forkman ci --offline" in res.stdout
    assert any(line.split()[:2] == ["verify", "error"] for line in res.stdout.splitlines())


# -- which forks changed --------------------------------------------------------------


def test_changed_forks_against_the_merge_base(forked: Path, local_index: LocalIndex) -> None:
    local_index.add_sdist("other", "2.0")
    local_index.add_sdist("third", "1.0")
    assert run("fork", "third==1.0").exit_code == 0
    git(forked, "add", "-A")
    git(forked, "commit", "-q", "-m", "third")
    git(forked, "checkout", "-q", "-b", "feature")
    assert run("fork", "other==2.0").exit_code == 0  # a new lock entry
    git(forked, "add", "-A")
    git(forked, "commit", "-q", "-m", "other")
    project = Project(forked)
    base = git(forked, "merge-base", "main", "HEAD").strip()
    assert changed_forks(project, base, project.load_lock()) == ["other"]
    # a vendored file changed (even uncommitted) marks its fork as changed
    (forked / "vendor/third/README.md").write_text("x\n")
    assert changed_forks(project, base, project.load_lock()) == ["other", "third"]
    (forked / "vendor/third/README.md").write_text("# third\n\nVersion 1.0.\n")
    report = run_ci(project, CiOptions(base="main"), stages=[CheckStage()])
    assert report.changed == ("other",)
    assert report.base == base


def test_base_from_the_environment_and_unknown_base(
    forked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_BASE_REF", "main")
    report = run_ci(Project(forked), stages=[CheckStage()])
    assert report.changed == ()
    res = run("ci", "--base", "no-such-branch")
    assert res.exit_code == 2
    assert "--base 'no-such-branch' is not a revision" in res.stderr


# -- the audit and test stages run the forkman commands and map their exit codes -------------


def _stand_in(tmp_path: Path, name: str, exit_code: int, stdout: str) -> list[str]:
    """A command with the audit/test command line contract: prints a report, exits."""
    script = tmp_path / f"{name}.py"
    script.write_text(
        "import sys\n"
        "open(sys.argv[0] + '.args', 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"sys.stdout.write({stdout!r})\n"
        f"sys.exit({exit_code})\n"
    )
    return [sys.executable, str(script)]


def _audit_json(*forks: dict) -> str:  # type: ignore[type-arg]
    """What `forkman audit --format json` prints: pip-audit's document plus forkman's part."""
    return json.dumps({"dependencies": [], "fixes": [], "forkman": {"forks": list(forks)}})


def test_audit_stage_reads_the_audit_report(forked: Path, tmp_path: Path) -> None:
    project = Project(forked)
    vulnerable = _audit_json(
        {
            "name": "demo",
            "version": "1.0",
            "status": "vulnerable",
            "unaudited": [],
            "vulnerabilities": [
                {
                    "id": "PYSEC-2024-1",
                    "state": "open",
                    "summary": "remote code execution\nmore text",
                    "fix_versions": ["1.1"],
                },
                {"id": "PYSEC-2024-2", "state": "patched-locally", "summary": "x"},
            ],
        }
    )
    failed = AuditStage(argv=_stand_in(tmp_path, "a1", 1, vulnerable)).run(project)
    assert failed.status is StageStatus.FAILED
    assert failed.summary == "1 open vulnerability"
    (finding,) = failed.findings
    assert finding.rule == "PYSEC-2024-1" and finding.fork == "demo"
    assert finding.path == "vendor/demo"
    assert finding.message == "demo 1.0: PYSEC-2024-1: remote code execution (fixed in: 1.1)"
    clean = _audit_json({"name": "demo", "version": "1.0", "status": "clean"})
    ok = AuditStage(argv=_stand_in(tmp_path, "a0", 0, clean)).run(project)
    assert ok.status is StageStatus.OK, ok
    # a fork that could not be audited is not a pass
    unaudited = _audit_json(
        {"name": "demo", "version": "1.0", "status": "unaudited", "unaudited": ["no database"]}
    )
    res = AuditStage(argv=_stand_in(tmp_path, "a3", 1, unaudited)).run(project)
    assert res.status is StageStatus.ERROR
    assert res.findings[0].message == "demo 1.0 could not be audited: no database"
    # a report that covers no fork, a crash, garbage: errors
    empty = AuditStage(argv=_stand_in(tmp_path, "a4", 0, _audit_json())).run(project)
    assert empty.status is StageStatus.ERROR
    crashed = AuditStage(argv=_stand_in(tmp_path, "a2", 2, "")).run(project)
    assert crashed.status is StageStatus.ERROR
    garbage = AuditStage(argv=_stand_in(tmp_path, "a5", 0, "not json")).run(project)
    assert garbage.status is StageStatus.ERROR


def test_test_stage_runs_changed_forks_only(forked: Path, tmp_path: Path) -> None:
    project = Project(forked)
    passed = "demo: passed: 3 passed [sandbox: namespaces]\n"
    argv = _stand_in(tmp_path, "t", 0, passed)
    assert ForkTestStage(forks=[], argv=argv).run(project).status is StageStatus.SKIPPED
    result = ForkTestStage(forks=["demo"], argv=argv).run(project)
    assert result.status is StageStatus.OK and result.summary == "1/1 pass (1 changed fork(s))"
    assert ForkTestStage(forks=None, argv=argv).run(project).status is StageStatus.OK
    assert (tmp_path / "t.py.args").read_text().splitlines() == ["demo", "--all"]
    out = "demo: failed: 1 failed, 2 passed [sandbox: namespaces]\n"
    result = ForkTestStage(forks=["demo"], argv=_stand_in(tmp_path, "t1", 1, out)).run(project)
    assert result.status is StageStatus.FAILED
    assert result.findings[0].message == "demo: failed: 1 failed, 2 passed [sandbox: namespaces]"
    out = "demo: no-tests: no tests found [sandbox: -]\n"
    result = ForkTestStage(forks=["demo"], argv=_stand_in(tmp_path, "t2", 1, out)).run(project)
    assert result.status is StageStatus.OK and "1 without tests" in result.summary
    crashed = ForkTestStage(forks=["demo"], argv=_stand_in(tmp_path, "t3", 2, "")).run(project)
    assert crashed.status is StageStatus.ERROR


def test_markdown_escapes_and_limits(forked: Path) -> None:
    for i in range(60):
        (forked / f"vendor/demo/f{i}|x.txt").write_text("x")
    report = run_ci(Project(forked), stages=[CheckStage()])
    md = to_markdown(report)
    assert "… and 10 more" in md
    assert "f0\\|x.txt" in md


# -- errors a user meets ------------------------------------------------------------------


def test_ci_outside_git_and_without_pyproject(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "pyproject.toml").write_text("[tool.forkman]\n")
    res = run("ci", cwd=plain)
    assert res.exit_code == 2 and "not inside a git repository" in res.stderr
    assert "hint: run `git init` first" in res.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run("ci", cwd=empty)
    assert res.exit_code == 2 and "no pyproject.toml" in res.stderr


# -- the effective settings of a run against a base ---------------------------------------


def test_effective_settings_take_every_security_key_from_the_base() -> None:
    from forkman.ci.policy import effective_table, policy_changes

    base = {
        "index-url": "https://base.example/simple/",
        "sandbox": {"timeout": 60},
        "forks": {"demo": {"test": {"command": "pytest -q"}, "pinned": False}},
    }
    head = {
        "index-url": "https://pr.example/simple/",
        "prefer": "wheel",
        "sandbox": {"timeout": 6000, "env-allow": ["CI_SECRET"]},
        "future-table": {"x": 1},
        "forks": {
            "demo": {"test": {"command": "sh -c 'env'"}, "pinned": True},
            "newcomer": {"test": {"requirements": ["x"]}, "constraint": "<2"},
        },
    }
    assert effective_table(base, head) == {
        "index-url": "https://base.example/simple/",
        "prefer": "wheel",
        "sandbox": {"timeout": 60},
        "forks": {
            "demo": {"test": {"command": "pytest -q"}, "pinned": True},
            "newcomer": {"constraint": "<2"},
        },
    }
    described = [c.describe() for c in policy_changes(base, head)]
    assert described == [
        'forks.demo.test.command: "pytest -q" -> "sh -c \'env\'"',
        'forks.newcomer.test.requirements: (unset) -> ["x"]',
        "future-table.x: (unset) -> 1",
        'index-url: "https://base.example/simple/" -> "https://pr.example/simple/"',
        'sandbox.env-allow: (unset) -> ["CI_SECRET"]',
        "sandbox.timeout: 60 -> 6000",
    ]
    # a pull request that removes a setting the base has gets it back
    assert effective_table(base, {})["sandbox"] == {"timeout": 60}
    assert effective_table(base, {})["forks"] == {"demo": {"test": {"command": "pytest -q"}}}
