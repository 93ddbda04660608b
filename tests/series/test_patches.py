"""Patch series through the CLI: record, list, drop, move, edit, import, restore, diff."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from forkman.model.lock import load_lock
from forkman.series.patchfile import PatchHeader, parse_patch, render_patch, slugify
from tests.support.cli import run, snapshot
from tests.support.index import LocalIndex
from tests.support.series import add_releases, edit, lines, make_series


@pytest.fixture
def forked(cwd: Path, local_index: LocalIndex) -> Path:
    add_releases(local_index, "1.0", "1.1")
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    return cwd


@pytest.fixture
def series(cwd: Path, local_index: LocalIndex) -> Path:
    make_series(cwd, local_index)
    return cwd


def test_record_patch_writes_dep3_file_commits_history_and_lock(forked: Path) -> None:
    edit(forked, "a.py", lines(20, l3="line3 = 'mine'"))
    assert run("check").exit_code == 1
    res = run(
        "patch",
        "demo",
        "-m",
        "Fix slots pickling\n\nLonger text.",
        "--fixes",
        "PYSEC-2024-1",
        "--fixes",
        "GHSA-aaaa-bbbb-cccc",
        "--origin",
        "https://example.org/pr/1",
        "--forwarded",
        "https://example.org/pr/1",
    )
    assert res.exit_code == 0, res
    assert "recorded patches/demo/0001-fix-slots-pickling.patch" in res.stdout
    text = (forked / "patches/demo/0001-fix-slots-pickling.patch").read_text()
    header, body = parse_patch(text)
    assert header.description == "Fix slots pickling\n\nLonger text."
    assert header.author == "Forkman Tests <tests@forkman.invalid>"
    assert header.fixes == ("PYSEC-2024-1", "GHSA-aaaa-bbbb-cccc")
    assert header.origin == header.forwarded == "https://example.org/pr/1"
    assert header.last_update
    assert body.startswith("diff --git a/a.py b/a.py\n")
    assert "+line3 = 'mine'" in body
    entry = load_lock(forked / "forkman.lock").forks["demo"]
    assert [p.file for p in entry.patches] == ["patches/demo/0001-fix-slots-pickling.patch"]
    assert entry.patches[0].fixes == ("PYSEC-2024-1", "GHSA-aaaa-bbbb-cccc")
    assert entry.vendored_tree != entry.upstream_tree
    log = subprocess.run(
        ["git", "--git-dir", ".forkman/forks/demo.git", "log", "--format=%an|%s", "patched"],
        cwd=forked,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert log[0] == "Forkman Tests|Fix slots pickling"
    assert run("check").exit_code == 0
    res = run("verify")
    assert res.exit_code == 0, res


def test_record_without_edits_is_refused(forked: Path) -> None:
    before = snapshot(forked)
    res = run("patch", "demo", "-m", "nothing")
    assert res.exit_code == 2
    assert "no unrecorded edits" in res.stderr
    assert snapshot(forked) == before


def test_unknown_fork_is_refused(forked: Path) -> None:
    for args in (("patch", "nope", "-m", "x"), ("patches", "nope"), ("sync", "nope", "--yes")):
        res = run(*args)
        assert res.exit_code == 2, args
        assert "no fork named 'nope'" in res.stderr


def test_patches_lists_series_with_status(series: Path) -> None:
    res = run("patches", "demo")
    assert res.exit_code == 0, res
    rows = res.stdout.splitlines()[2:]
    assert len(rows) == 3
    assert "0001-patch-a.patch  ok      yes      PYSEC-0000-1  Patch a" in rows[0]
    (series / "patches/demo/0002-patch-b.patch").write_text("tampered\n")
    res = run("patches", "demo")
    assert res.exit_code == 1
    assert "edited" in res.stdout.splitlines()[3]


def test_drop_renumbers_and_reverts_the_change(series: Path) -> None:
    res = run("patch", "demo", "--drop", "2")
    assert res.exit_code == 0, res
    names = sorted(p.name for p in (series / "patches/demo").iterdir())
    assert names == ["0001-patch-a.patch", "0002-patch-c.patch"]
    assert (series / "vendor/demo/b.py").read_text() == lines(10)
    assert (series / "vendor/demo/a.py").read_text() == lines(20, l3="line3 = 'mine'")
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0


def test_move_reorders_and_edit_changes_header(series: Path) -> None:
    assert run("patch", "demo", "--move", "3", "--to", "1").exit_code == 0
    names = sorted(p.name for p in (series / "patches/demo").iterdir())
    assert names == ["0001-patch-c.patch", "0002-patch-a.patch", "0003-patch-b.patch"]
    res = run("patch", "demo", "--edit", "2", "-m", "Patch a, reworded", "--fixes", "CVE-1")
    assert res.exit_code == 0, res
    header, body = parse_patch((series / "patches/demo/0002-patch-a-reworded.patch").read_text())
    assert header.subject == "Patch a, reworded"
    assert header.fixes == ("CVE-1",)
    assert "+line3 = 'mine'" in body
    assert load_lock(series / "forkman.lock").forks["demo"].patches[1].fixes == ("CVE-1",)
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ("--drop", "4"),
        ("--drop", "0"),
        ("--move", "1", "--to", "9"),
        ("--move", "7", "--to", "1"),
        ("--edit", "5", "-m", "x"),
    ],
)
def test_out_of_range_numbers_change_nothing(series: Path, args: tuple[str, ...]) -> None:
    before = snapshot(series)
    res = run("patch", "demo", *args)
    assert res.exit_code == 2, res
    assert "demo has no" in res.stderr and "3 patches" in res.stderr
    assert snapshot(series) == before


def test_import_existing_patch_files(forked: Path, tmp_path: Path) -> None:
    plain = tmp_path / "fix-b.patch"
    plain.write_text(
        "From 1234567890abcdef Mon Sep 17 00:00:00 2001\n"
        "From: Someone Else <else@example.org>\n"
        "Subject: [PATCH] Fix b\n\nBody text.\n---\n"
        "diff --git a/b.py b/b.py\n--- a/b.py\n+++ b/b.py\n"
        "@@ -1,2 +1,2 @@\n-line1 = 1\n+line1 = 'imported'\n line2 = 2\n"
    )
    dep3 = tmp_path / "other.patch"
    dep3.write_text(
        render_patch(
            PatchHeader("Add x", author="A <a@example.org>", fixes=("OSV-1",)),
            "diff --git a/x.txt b/x.txt\nnew file mode 100644\n--- /dev/null\n+++ b/x.txt\n"
            "@@ -0,0 +1 @@\n+x\n",
        )
    )
    res = run("patch", "demo", "--import", str(plain), str(dep3))
    assert res.exit_code == 0, res
    assert res.stdout.splitlines() == [
        "imported patches/demo/0001-fix-b.patch",
        "imported patches/demo/0002-add-x.patch",
    ]
    header, _ = parse_patch((forked / "patches/demo/0001-fix-b.patch").read_text())
    assert header.author == "Someone Else <else@example.org>"
    assert header.description == "Fix b\nBody text."
    assert (forked / "vendor/demo/x.txt").read_text() == "x\n"
    assert load_lock(forked / "forkman.lock").forks["demo"].patches[1].fixes == ("OSV-1",)
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0


def test_import_that_does_not_apply_changes_nothing(forked: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.patch"
    bad.write_text(
        "diff --git a/b.py b/b.py\n--- a/b.py\n+++ b/b.py\n"
        "@@ -1,2 +1,2 @@\n-not there\n+line1 = 'x'\n line2 = 2\n"
    )
    before = snapshot(forked)
    res = run("patch", "demo", "--import", str(bad))
    assert res.exit_code == 2
    assert "does not apply" in res.stderr
    assert snapshot(forked) == before


def test_restore_discards_unrecorded_edits(series: Path) -> None:
    edit(series, "a.py", "garbage\n")
    (series / "vendor/demo/extra.py").write_text("x\n")
    res = run("restore", "demo")
    assert res.exit_code == 0, res
    assert set(res.stdout.split()) >= {"restored", "a.py", "extra.py"}
    assert (series / "vendor/demo/a.py").read_text() == lines(20, l3="line3 = 'mine'")
    assert not (series / "vendor/demo/extra.py").exists()
    assert run("check").exit_code == 0
    assert run("restore", "demo").stdout == "demo: nothing to restore\n"


def test_diff_shows_series_and_upstream_delta(series: Path) -> None:
    res = run("diff", "demo")
    assert res.exit_code == 0
    assert "+line3 = 'mine'" in res.stdout and "+line1 = 'mine'" in res.stdout
    assert res.stdout.count("diff --git") == 3
    res = run("diff", "demo", "--upstream", "1.0..1.7")
    assert res.exit_code == 2
    assert "no upstream release 1.7" in res.stderr and "known releases: 1.0" in res.stderr


def test_slugify_and_header_roundtrip() -> None:
    assert slugify("Fix: slots/pickling (again!)") == "fix-slots-pickling-again"
    assert slugify("!!!") == "patch"
    header = PatchHeader(
        "Subject\n\nPara one.\nPara two.",
        author="A <a@b>",
        origin="upstream",
        forwarded="no",
        last_update="2026-01-02",
        fixes=("X-1", "Y-2"),
        extra=(("Bug", "https://bugs/1"),),
    )
    parsed, body = parse_patch(render_patch(header, "diff --git a/x b/x\n"))
    assert parsed == header
    assert body == "diff --git a/x b/x\n"
