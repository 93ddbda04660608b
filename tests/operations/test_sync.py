"""`forkman sync`: carrying a patch series onto a new release, conflicts, review, faults."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forkman.model.lock import load_lock, write_lock
from forkman.model.project import Project
from forkman.operations.sync import SyncOutcome, sync_fork, sync_state
from forkman.series.patchfile import parse_patch
from forkman.sources.delta import summarize_delta
from forkman.store.txn import InjectedFault
from tests.conftest import git
from tests.support.cli import run, snapshot
from tests.support.index import LocalIndex
from tests.support.series import add_releases, edit, lines, make_series

REPO = Path(__file__).resolve().parent.parent
SKIP = (".git", ".forkman")


@pytest.fixture
def series(cwd: Path, local_index: LocalIndex) -> Path:
    make_series(cwd, local_index)
    return cwd


@pytest.fixture
def clean_series(series: Path) -> Path:
    """The series without the conflicting patch: a sync merges and absorbs only."""
    assert run("patch", "demo", "--drop", "2").exit_code == 0
    return series


def refs(root: Path) -> str:
    return git(root, "--git-dir", ".forkman/forks/demo.git", "show-ref")


def resolve_b(root: Path) -> None:
    edit(root, "b.py", lines(10, l1="line1 = 'upstream and mine'"))


def test_sync_merges_conflicts_continues_and_drops_absorbed(series: Path) -> None:
    res = run("sync", "demo", "--yes")
    assert res.exit_code == 1, res
    assert "patch 2 (patches/demo/0002-patch-b.patch) does not merge into 1.1" in res.stdout
    assert "    vendor/demo/b.py" in res.stdout
    assert "forkman sync demo --continue" in res.stdout
    assert "forkman sync demo --abort" in res.stdout
    assert "patch 1 (Patch a) carried" in res.stderr
    text = (series / "vendor/demo/b.py").read_text()
    assert text.startswith(
        "<<<<<<< upstream 1.1 + earlier patches\nline1 = 'upstream'\n=======\n"
        "line1 = 'mine'\n>>>>>>> patch 2: Patch b\nline2 = 2\n"
    )
    assert load_lock(series / "forkman.lock").forks["demo"].version == "1.0"
    assert sync_state(Project(series), "demo") == "conflict"
    status = run("status")
    assert "conflict" in status.stdout.splitlines()[2]
    check = run("check")
    assert check.exit_code == 1
    assert "sync paused at a conflict: vendor/demo" in check.stdout + check.stderr
    assert "forkman sync demo --continue" in check.stdout + check.stderr
    # other write commands wait for the conflict
    res = run("patch", "demo", "-m", "x")
    assert res.exit_code == 2 and "waiting at a conflict" in res.stderr
    # --continue refuses while markers remain, and changes nothing
    before = snapshot(series)
    res = run("sync", "demo", "--continue")
    assert res.exit_code == 2
    assert "conflict markers remain in vendor/demo/b.py" in res.stderr
    assert snapshot(series) == before
    resolve_b(series)
    res = run("sync", "demo", "--continue")
    assert res.exit_code == 0, res
    assert "demo: 1.0 -> 1.1, 2 patch(es) carried, 1 dropped (already upstream)" in res.stdout
    assert "dropped (already upstream): Patch c" in res.stdout
    assert "patch 3 (Patch c) is already upstream: dropped" in res.stderr
    entry = load_lock(series / "forkman.lock").forks["demo"]
    assert entry.version == "1.1"
    assert entry.source.filename == "demo-1.1.tar.gz"  # type: ignore[union-attr]
    assert [p.file for p in entry.patches] == [
        "patches/demo/0001-patch-a.patch",
        "patches/demo/0002-patch-b.patch",
    ]
    assert entry.patches[0].fixes == ("PYSEC-0000-1",)
    assert entry.sections["sync"]["dropped-patches"] == ["Patch c"]
    assert entry.sections["sync"]["new-dependencies"] == ["requests>=2"]
    assert sorted(p.name for p in (series / "patches/demo").iterdir()) == [
        "0001-patch-a.patch",
        "0002-patch-b.patch",
    ]
    header, body = parse_patch((series / "patches/demo/0002-patch-b.patch").read_text())
    assert header.subject == "Patch b"
    assert "-line1 = 'upstream'\n+line1 = 'upstream and mine'" in body  # refreshed context
    vendored = series / "vendor/demo"
    assert (vendored / "a.py").read_text() == lines(
        20, l3="line3 = 'mine'", l15="line15 = 'upstream'"
    )
    assert (vendored / "new.py").exists()
    assert run("check").exit_code == 0
    res = run("verify")
    assert res.exit_code == 0, res
    assert git(series, "--git-dir", ".forkman/forks/demo.git", "tag").split() == [
        "upstream/1.0",
        "upstream/1.1",
    ]
    diff = run("diff", "demo", "--upstream", "1.0..1.1")
    assert "+NEW = True" in diff.stdout
    assert sync_state(Project(series), "demo") is None


def test_abort_restores_everything_byte_for_byte(series: Path) -> None:
    before = snapshot(series, skip=SKIP)
    lock_before = (series / "forkman.lock").read_bytes()
    refs_before = refs(series)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "forkman", "sync", "demo", "--yes"],
        cwd=series,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert snapshot(series, skip=SKIP) != before
    resolve_b(series)  # a half-done resolution is discarded too
    proc = subprocess.run(
        [sys.executable, "-m", "forkman", "sync", "demo", "--abort"],
        cwd=series,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sync to 1.1 aborted; back at 1.0" in proc.stdout
    assert snapshot(series, skip=SKIP) == before
    assert (series / "forkman.lock").read_bytes() == lock_before
    assert refs(series) == refs_before
    assert run("check").exit_code == 0
    res = run("sync", "demo", "--abort")
    assert res.exit_code == 2 and "no sync of demo is waiting" in res.stderr


def test_clean_sync_and_then_nothing_newer(clean_series: Path) -> None:
    lock = load_lock(clean_series / "forkman.lock")
    audited = lock.forks["demo"].with_section("audit", {"status": "clean", "vulnerabilities": []})
    write_lock(clean_series / "forkman.lock", lock.with_entry(audited))
    res = run("sync", "demo", "--yes")
    assert res.exit_code == 0, res
    assert "demo: 1.0 -> 1.1, 1 patch(es) carried, 1 dropped (already upstream)" in res.stdout
    assert "new dependency: requests>=2" in res.stdout
    assert "demo_hook.pth added (.pth files run at interpreter start-up)" in res.stdout
    sections = load_lock(clean_series / "forkman.lock").forks["demo"].sections
    assert sections["audit"] == {"status": "clean", "vulnerabilities": []}  # carried over
    assert sections["sync"]["from"] == "1.0" and sections["sync"]["to"] == "1.1"
    assert sections["sync"]["build-changes"] == [
        "demo_hook.pth added (.pth files run at interpreter start-up)"
    ]
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0
    before = snapshot(clean_series)
    res = run("sync", "demo", "--yes")
    assert res.exit_code == 0
    assert "demo 1.1: no newer release allowed by its constraint" in res.stdout
    res = run("sync", "--all")
    assert res.exit_code == 0
    assert "no newer releases: every fork is up to date" in res.stdout
    assert snapshot(clean_series) == before


def test_constraint_limits_the_target(clean_series: Path, local_index: LocalIndex) -> None:
    add_releases(local_index, "2.0")
    res = run("sync", "demo", "--dry-run")
    assert "would move 1.0 -> 1.1" in res.stdout
    res = run("sync", "demo", "--to", "2.0", "--yes")
    assert res.exit_code == 2
    assert "outside demo's constraint" in res.stderr
    res = run("sync", "demo", "--to", "1.1", "--yes")
    assert res.exit_code == 0, res


def test_pinned_fork_is_skipped(clean_series: Path) -> None:
    pyproject = clean_series / "pyproject.toml"
    text = pyproject.read_text()
    assert "[tool.forkman.forks.demo]\n" in text
    pyproject.write_text(
        text.replace("[tool.forkman.forks.demo]\n", "[tool.forkman.forks.demo]\npinned = true\n")
    )
    before = snapshot(clean_series)
    res = run("sync", "--all", "--yes")
    assert res.exit_code == 0
    assert "demo is pinned; skipped" in res.stdout
    assert snapshot(clean_series) == before


def test_dry_run_reports_and_changes_nothing(series: Path) -> None:
    before = snapshot(series, skip=SKIP)
    refs_before = refs(series)
    res = run("sync", "demo", "--dry-run")
    assert res.exit_code == 0, res
    assert "demo: would move 1.0 -> 1.1" in res.stdout
    assert "5 changed, 2 added, 0 removed" in res.stdout
    assert "patch 2 (patches/demo/0002-patch-b.patch) would conflict in:" in res.stdout
    assert snapshot(series, skip=SKIP) == before
    assert refs(series) == refs_before


def test_refusals_change_nothing(series: Path) -> None:
    before = snapshot(series)
    # non-interactive without --yes: CI never silently takes a release
    res = run("sync", "demo")
    assert res.exit_code == 2
    assert "needs confirmation" in res.stderr and "--yes" in res.stderr
    res = run("sync", "demo", "--continue")
    assert res.exit_code == 2 and "no sync of demo is waiting" in res.stderr
    res = run("sync")
    assert res.exit_code == 2 and "name one fork or pass --all" in res.stderr
    assert snapshot(series) == before
    # a dirty tree is refused, with the way out
    edit(series, "c.py", "dirty\n")
    before = snapshot(series)
    res = run("sync", "demo", "--yes")
    assert res.exit_code == 2
    assert "vendor/demo has edits that are not recorded" in res.stderr
    assert "forkman patch demo -m MESSAGE" in res.stderr and "forkman restore demo" in res.stderr
    assert snapshot(series) == before


def test_interactive_confirmation(series: Path) -> None:
    project = Project(series)
    seen = []

    def no(target: object, delta: object) -> bool:
        seen.append((target, delta))
        return False

    before = snapshot(series, skip=SKIP)
    result = sync_fork(project, "demo", confirm=no)
    assert result.outcome is SyncOutcome.DECLINED
    assert len(seen) == 1
    assert snapshot(series, skip=SKIP) == before


def test_summarize_delta_finds_dependencies_and_hooks(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for d in (old, new):
        (d / "pkg").mkdir(parents=True)
    (old / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "x"\ndependencies = ["a>=1"]\n'
    )
    (new / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "x"\ndependencies = ["a>=1", "b"]\n'
        '[project.scripts]\nx = "pkg:main"\n'
    )
    (old / "setup.py").write_text("from setuptools import setup\nsetup(install_requires=['c'])\n")
    (new / "setup.py").write_text("import os\nfrom setuptools import setup\nsetup()\n")
    (new / "setup.cfg").write_text("[options]\ninstall_requires =\n    d>2\n")
    (old / "pkg" / "gone.py").write_text("x\n")
    (new / "pkg" / "x.pth").write_text("import evil\n")
    delta = summarize_delta(old, new)
    assert delta.added == ("pkg/x.pth", "setup.cfg")
    assert delta.removed == ("pkg/gone.py",)
    assert delta.changed == ("pyproject.toml", "setup.py")
    assert delta.new_dependencies == ("b", "d>2", "hatchling [build]")
    assert delta.removed_dependencies == ("c", "setuptools [build]")
    assert delta.build_changes == (
        "pkg/x.pth added (.pth files run at interpreter start-up)",
        "setup.py changed (setup.py runs at build and install time)",
        "build backend: setuptools.build_meta -> hatchling.build",
        "entry points or console scripts changed",
    )
    assert summarize_delta(old, old).empty


# -- faults ---------------------------------------------------------------------------

CLEAN_STEPS = [
    "sync-start",
    "sync-resolved",
    "sync-fetched",
    "sync-imported",
    "sync-reviewed",
    "sync-confirmed",
    "sync-rebased",
    "sync-staged",
    "series-tree",
    "series-patches",
    "series-ref",
    "sync-refs",
    "before-lock-write",
]


@pytest.mark.parametrize("step", CLEAN_STEPS)
def test_fault_at_each_sync_step_leaves_the_old_fork(
    clean_series: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(clean_series, skip=SKIP)
    refs_before = refs(clean_series)
    monkeypatch.setenv("FORKMAN_FAULT", step)
    with pytest.raises(InjectedFault):
        sync_fork(Project(clean_series), "demo", yes=True)
    monkeypatch.delenv("FORKMAN_FAULT")
    assert run("check").exit_code == 0
    assert snapshot(clean_series, skip=SKIP) == before
    assert refs(clean_series) == refs_before


def test_fault_after_commit_leaves_the_new_fork(
    clean_series: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORKMAN_FAULT", "after-lock-write")
    with pytest.raises(InjectedFault):
        sync_fork(Project(clean_series), "demo", yes=True)
    monkeypatch.delenv("FORKMAN_FAULT")
    assert run("check").exit_code == 0
    assert load_lock(clean_series / "forkman.lock").forks["demo"].version == "1.1"
    assert run("verify").exit_code == 0


@pytest.mark.parametrize("step", ["sync-pause-tree", "sync-rebased"])
def test_sigkill_before_pausing_rolls_back(series: Path, step: str) -> None:
    before = snapshot(series, skip=SKIP)
    env = {**os.environ, "PYTHONPATH": str(REPO), "FORKMAN_FAULT": f"{step}:kill"}
    proc = subprocess.run(
        [sys.executable, "-m", "forkman", "sync", "demo", "--yes"],
        cwd=series,
        env=env,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL
    assert run("check").exit_code == 0
    assert snapshot(series, skip=SKIP) == before


@pytest.mark.parametrize(
    "step",
    [
        "continue-recorded",
        "continue-resumed",
        "series-tree",
        "series-patches",
        "sync-refs",
        "before-lock-write",
    ],
)
def test_fault_during_continue_returns_to_the_pause(
    series: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(series, skip=SKIP)
    assert run("sync", "demo", "--yes").exit_code == 1
    resolve_b(series)
    paused = snapshot(series, skip=SKIP)
    monkeypatch.setenv("FORKMAN_FAULT", f"{step}:kill")
    proc = subprocess.run(
        [sys.executable, "-m", "forkman", "sync", "demo", "--continue"],
        cwd=series,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        check=False,
    )
    monkeypatch.delenv("FORKMAN_FAULT")
    assert proc.returncode == -signal.SIGKILL
    check = run("check")  # recovers: back to the paused conflict, the resolution kept
    assert check.exit_code == 1 and "sync paused" in check.stdout
    assert snapshot(series, skip=SKIP) == paused
    assert sync_state(Project(series), "demo") == "conflict"
    res = run("sync", "demo", "--abort")
    assert res.exit_code == 0, res
    assert snapshot(series, skip=SKIP) == before


def test_fault_during_abort_can_be_retried(series: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(series, skip=SKIP)
    assert run("sync", "demo", "--yes").exit_code == 1
    monkeypatch.setenv("FORKMAN_FAULT", "abort-rollback")
    res = run("sync", "demo", "--abort")  # the fault stops the actor's operation: exit 2
    assert res.exit_code == 2 and "injected fault at abort-rollback" in res.stderr
    monkeypatch.delenv("FORKMAN_FAULT")
    assert sync_state(Project(series), "demo") == "conflict"
    assert run("sync", "demo", "--abort").exit_code == 0
    assert snapshot(series, skip=SKIP) == before


def test_sigkill_at_random_moments(series: Path, tmp_path: Path) -> None:
    """Kill sync, --continue and --abort at random moments: old, new, or resumable."""
    rng = random.Random(20261126)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    project = Project(series)
    pristine = tmp_path / "pristine"
    shutil.copytree(series, pristine, symlinks=True)
    old = snapshot(series, skip=SKIP)
    seen = {"old": 0, "new": 0, "paused": 0}
    while sum(seen.values()) < 14:
        entry = load_lock(project.lock_path).forks["demo"]
        paused = sync_state(project, "demo") is not None
        if entry.version == "1.1":
            os.chdir(tmp_path)
            shutil.rmtree(series)
            shutil.copytree(pristine, series, symlinks=True)
            os.chdir(series)
            continue
        if paused:
            if rng.random() < 0.5:
                resolve_b(series)
                args = ["sync", "demo", "--continue"]
            else:
                args = ["sync", "demo", "--abort"]
        else:
            args = ["sync", "demo", "--yes"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "forkman", *args],
            cwd=series,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.05, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check = run("check")
        version = load_lock(project.lock_path).forks["demo"].version
        if sync_state(project, "demo") is not None:
            assert check.exit_code == 1 and "sync paused" in check.stdout, check
            assert version == "1.0"
            seen["paused"] += 1
        elif version == "1.0":
            assert check.exit_code == 0, check
            assert snapshot(series, skip=SKIP) == old
            seen["old"] += 1
        else:
            assert check.exit_code == 0, check
            assert run("verify").exit_code == 0
            seen["new"] += 1
    # whatever state the last kill left, abort (or nothing) brings back the old fork
    if sync_state(project, "demo") is not None:
        assert run("sync", "demo", "--abort").exit_code == 0
        assert snapshot(series, skip=SKIP) == old
    assert sum(seen.values()) == 14


def test_sync_all_goes_on_past_a_failing_fork(clean_series: Path, local_index: LocalIndex) -> None:
    local_index.add_sdist("other", "1.0")
    local_index.add_sdist("other", "1.1")
    assert run("fork", "other>=1,<1.1").exit_code == 0
    edit(clean_series, "a.py", "dirty\n")  # demo is dirty, other is clean
    pyproject = clean_series / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"<1.1,>=1"', '">=1"'))
    res = run("sync", "--all", "--yes")
    assert res.exit_code == 2, res
    assert "error: demo: vendor/demo has edits that are not recorded" in res.stderr
    assert "other: 1.0 -> 1.1, 0 patch(es) carried" in res.stdout
    lock = load_lock(clean_series / "forkman.lock")
    assert lock.forks["demo"].version == "1.0" and lock.forks["other"].version == "1.1"


def test_git_fork_syncs_to_a_ref(cwd: Path, tmp_path: Path) -> None:
    upstream = tmp_path / "upstream-repo"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    (upstream / "pyproject.toml").write_text('[project]\nname = "foo"\nversion = "1.0"\n')
    (upstream / "foo.py").write_text(lines(10))
    git(upstream, "add", ".")
    git(upstream, "commit", "-qm", "one")
    git(upstream, "tag", "v1.0")
    assert run("init").exit_code == 0
    assert run("fork", f"git+file://{upstream}@v1.0", "--name", "foo").exit_code == 0
    (cwd / "vendor/foo/foo.py").write_text(lines(10, l2="line2 = 'mine'"))
    assert run("patch", "foo", "-m", "Mine").exit_code == 0
    (upstream / "pyproject.toml").write_text('[project]\nname = "foo"\nversion = "1.1"\n')
    (upstream / "foo.py").write_text(lines(10, l9="line9 = 'theirs'"))
    git(upstream, "commit", "-qam", "two")
    git(upstream, "tag", "v1.1")
    res = run("sync", "foo", "--yes")
    assert res.exit_code == 2 and "--to" in res.stderr
    res = run("sync", "foo", "--to", "v1.1", "--yes")
    assert res.exit_code == 0, res
    assert "foo: 1.0 -> 1.1, 1 patch(es) carried" in res.stdout
    assert (cwd / "vendor/foo/foo.py").read_text() == lines(
        10, l2="line2 = 'mine'", l9="line9 = 'theirs'"
    )
    entry = load_lock(cwd / "forkman.lock").forks["foo"]
    assert entry.source.commit == git(upstream, "rev-parse", "HEAD").strip()  # type: ignore[union-attr]
    assert run("verify", "foo").exit_code == 0


def test_terminal_asks_before_taking_a_release(clean_series: Path) -> None:
    """On a real terminal sync shows the review and asks; 'n' changes nothing, 'y' syncs."""
    import pty

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    before = snapshot(clean_series, skip=SKIP)
    for answer, code in (("n", 1), ("y", 0)):
        leader, follower = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "forkman", "sync", "demo"],
            cwd=clean_series,
            env=env,
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(follower)
        os.write(leader, f"{answer}\n".encode())
        out, err = proc.communicate(timeout=60)
        os.close(leader)
        assert proc.returncode == code, err
        assert b"demo: 1.0 -> 1.1" in err and b"new dependency: requests>=2" in err
        assert b"take demo 1.1? [y/N]" in err
        if answer == "n":
            assert b"demo: 1.1 not taken" in out
            assert snapshot(clean_series, skip=SKIP) == before
    assert load_lock(clean_series / "forkman.lock").forks["demo"].version == "1.1"


def test_continue_can_stop_again_and_abort_undoes_both_steps(series: Path) -> None:
    edit(series, "a.py", lines(20, l3="line3 = 'mine'", l15="line15 = 'mine too'"))
    assert run("patch", "demo", "-m", "Patch d").exit_code == 0
    (series / "patches/demo/NOTES.md").write_text("why these patches exist\n")
    before = snapshot(series, skip=SKIP)
    assert run("sync", "demo", "--yes").exit_code == 1
    resolve_b(series)
    res = run("sync", "demo", "--continue")
    assert res.exit_code == 1, res
    assert "patch 4 (patches/demo/0004-patch-d.patch) does not merge into 1.1" in res.stdout
    assert "    vendor/demo/a.py" in res.stdout
    assert "<<<<<<< " in (series / "vendor/demo/a.py").read_text()
    res = run("sync", "demo", "--abort")
    assert res.exit_code == 0, res
    assert snapshot(series, skip=SKIP) == before
    # and the whole way through
    assert run("sync", "demo", "--yes").exit_code == 1
    resolve_b(series)
    assert run("sync", "demo", "--continue").exit_code == 1
    edit(series, "a.py", lines(20, l3="line3 = 'mine'", l15="line15 = 'both'"))
    res = run("sync", "demo", "--continue")
    assert res.exit_code == 0, res
    assert "3 patch(es) carried, 1 dropped" in res.stdout
    assert sorted(p.name for p in (series / "patches/demo").iterdir()) == [
        "0001-patch-a.patch",
        "0002-patch-b.patch",
        "0003-patch-d.patch",
        "NOTES.md",
    ]
    assert run("check").exit_code == 0
    assert run("verify").exit_code == 0


def test_modify_delete_conflict_is_named(cwd: Path, local_index: LocalIndex) -> None:
    local_index.add_sdist("gone", "1.0", {"keep.py": "x = 1\n", "old.py": lines(5)})
    local_index.add_sdist("gone", "1.1", {"keep.py": "x = 2\n"})
    assert run("init").exit_code == 0
    assert run("fork", "gone==1.0").exit_code == 0
    (cwd / "vendor/gone/old.py").write_text(lines(5, l2="line2 = 'mine'"))
    assert run("patch", "gone", "-m", "Edit old").exit_code == 0
    res = run("sync", "gone", "--to", "1.1", "--yes")
    assert res.exit_code == 1, res
    assert "vendor/gone/old.py  (no conflict markers" in res.stdout
    # deciding by hand: upstream removed it, so do we
    (cwd / "vendor/gone/old.py").unlink()
    res = run("sync", "gone", "--continue")
    assert res.exit_code == 0, res
    assert "0 patch(es) carried, 1 dropped" in res.stdout
    assert load_lock(cwd / "forkman.lock").forks["gone"].patches == ()
    assert not (cwd / "patches/gone").exists()
    assert run("check").exit_code == 0


def test_prereleases_only_when_the_policy_allows(
    clean_series: Path, local_index: LocalIndex
) -> None:
    local_index.add_sdist("demo", "1.2rc1", {"a.py": "rc\n"})
    res = run("sync", "demo", "--dry-run")
    assert "would move 1.0 -> 1.1" in res.stdout
    pyproject = clean_series / "pyproject.toml"
    text = pyproject.read_text()
    assert "[tool.forkman.forks.demo]\n" in text
    pyproject.write_text(
        text.replace(
            "[tool.forkman.forks.demo]\n", "[tool.forkman.forks.demo]\nprereleases = true\n"
        )
    )
    res = run("sync", "demo", "--dry-run")
    assert "would move 1.0 -> 1.2rc1" in res.stdout
