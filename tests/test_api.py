"""The public API (`forkman.Project`) driving a real consumer project: local index, real git."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import forkman
from forkman import Project, SyncOutcome, SyncReport
from forkman.core.errors import error_from_json
from tests.support.cli import run
from tests.support.index import LocalIndex
from tests.support.series import add_releases, lines, make_series


@pytest.fixture
def fm(cwd: Path, local_index: LocalIndex) -> Project:
    """demo 1.0 forked with three patches (the second conflicts with 1.1); 1.1 on the index."""
    make_series(cwd, local_index)
    return Project.open(cwd)


def test_public_surface_is_all_and_lazy() -> None:
    for name in forkman.__all__:
        assert getattr(forkman, name) is not None
    assert "Project" in forkman.__all__ and "ForkmanError" in forkman.__all__
    assert not [n for n in forkman.__all__ if n.startswith("_") and n != "__version__"]
    for name in dir(forkman.Project):
        member = getattr(forkman.Project, name)
        if name.startswith("_") or not callable(member):
            continue
        doc = member.__doc__ or ""
        assert doc.strip(), f"Project.{name} has no docstring"
        assert "Example::" in doc, f"Project.{name}'s docstring has no example"


def test_init_fork_and_read_only_methods(project: Path, local_index: LocalIndex) -> None:
    add_releases(local_index, "1.0", "1.1")
    fm = Project.open(project / "sub" if (project / "sub").is_dir() else project)
    assert fm.init().lock == "forkman.lock"
    made = fm.fork("demo==1.0")
    assert (made.name, made.version, made.layout) == ("demo", "1.0", "project")
    assert made.exit_code == 0 and made.revendored == ()
    assert [(f.name, f.version, f.patches) for f in fm.forks()] == [("demo", "1.0", ())]
    [row] = fm.status()
    assert (row.name, row.state) == ("demo", "clean")
    assert fm.check().ok
    assert fm.patches("demo") == ()
    assert fm.diff("demo") == ""
    assert "line1 = 1" in fm.read_file("demo", "b.py")
    assert [c["name"] for c in fm.sbom()["components"]] == ["demo"]
    assert [lic.fork for lic in fm.licenses()] == ["demo"]
    [verified] = fm.verify()
    assert verified.ok and verified.name == "demo"
    assert any("demo" in line for line in fm.wire())
    assert isinstance(fm.doctor().ok, bool)
    with pytest.raises(forkman.ForkmanError) as no_tool:
        fm.migrate_vendoring(dry_run=True)  # no [tool.vendoring] to take over
    assert no_tool.value.hint
    # every result is JSON-safe
    json.dumps([forkman.to_json(fm.status()), fm.check().to_json(), made.to_json()])


def test_edit_patch_forms_and_restore(fm: Project) -> None:
    fm.write_file("demo", "a.py", lines(20, l5="line5 = 'api'"))
    check = fm.check()
    assert not check.ok and check.findings[0].path == "vendor/demo/a.py"
    recorded = fm.patch("demo", "Patch via the API", fixes=["PYSEC-0000-2"])
    assert recorded.mode == "record" and recorded.files[0].endswith("-patch-via-the-api.patch")
    assert [p.subject for p in fm.patches("demo")][-1] == "Patch via the API"
    assert "line5 = 'api'" in fm.diff("demo")
    fm.edit_patch("demo", 4, message="Renamed")
    assert fm.patches("demo")[3].subject == "Renamed"
    moved = fm.move_patch("demo", 4, 1)
    assert moved.files[0].endswith("renamed.patch")
    dropped = fm.drop_patch("demo", 1)
    assert len(dropped.files) == 3
    fm.write_file("demo", "a.py", "scratch\n")
    assert fm.restore("demo") == ("a.py",)
    assert fm.check().ok


def test_paths_are_confined_to_the_fork(fm: Project, cwd: Path) -> None:
    (cwd / "secret.txt").write_text("no")
    for bad in ("../../secret.txt", "/etc/passwd", "", "a/../../secret.txt"):
        with pytest.raises(forkman.BadInput):
            fm.read_file("demo", bad)
        with pytest.raises(forkman.BadInput):
            fm.write_file("demo", bad, "x")
    (cwd / "vendor/demo/link.py").symlink_to(cwd / "secret.txt")
    with pytest.raises(forkman.BadInput, match="symbolic link"):
        fm.read_file("demo", "link.py")
    with pytest.raises(forkman.NotFound):
        fm.read_file("demo", "absent.py")
    # the fork's folder itself swapped for a link out of the project
    outside = cwd.parent / "outside"
    outside.mkdir()
    (outside / "a.py").write_text("theirs\n")
    (cwd / "vendor/demo").rename(cwd / "moved")
    (cwd / "vendor/demo").symlink_to(outside)
    with pytest.raises(forkman.SecurityError):
        fm.read_file("demo", "a.py")
    with pytest.raises(forkman.SecurityError):
        fm.write_file("demo", "a.py", "mine\n")
    assert (outside / "a.py").read_text() == "theirs\n"
    assert (cwd / "secret.txt").read_text() == "no"


def test_sync_dry_run_conflict_continue(fm: Project) -> None:
    review = fm.sync("demo", dry_run=True)
    report = review.report("demo")
    assert report.outcome is SyncOutcome.DRY_RUN and report.new_version == "1.1"
    assert report.conflict is not None and report.conflict.number == 2
    assert any("new.py" in line for line in report.delta or ())
    # the two-phase review: the callback sees the dry run, refuses it; nothing changes
    seen: list[SyncReport] = []

    def decline(review: SyncReport) -> bool:
        seen.append(review)
        return False

    declined = fm.sync("demo", confirm=decline)
    assert [r.new_version for r in seen] == ["1.1"]
    assert declined.report("demo").outcome is SyncOutcome.DECLINED and declined.exit_code == 1
    assert fm.forks()[0].version == "1.0"
    # confirmed: the sync stops at the conflicting patch
    stopped = fm.sync("demo", confirm=lambda r: True)
    assert stopped.exit_code == 1
    conflict = stopped.report("demo").conflict
    assert stopped.report("demo").outcome is SyncOutcome.CONFLICT and conflict is not None
    assert conflict.files == ("vendor/demo/b.py",)
    assert "<<<<<<<" in fm.read_file("demo", "b.py")
    with pytest.raises(forkman.BadInput) as markers:
        fm.sync_continue("demo")
    assert "conflict markers remain" in markers.value.message
    fm.write_file("demo", "b.py", lines(10, l1="line1 = 'upstream and mine'"))
    done = fm.sync_continue("demo")
    assert done.report("demo").outcome is SyncOutcome.SYNCED and done.ok
    assert fm.forks()[0].version == "1.1" and fm.check().ok


def test_sync_abort_puts_everything_back(fm: Project, cwd: Path) -> None:
    before = (cwd / "forkman.lock").read_text()
    assert fm.sync(yes=True).report("demo").outcome is SyncOutcome.CONFLICT
    aborted = fm.sync_abort("demo")
    assert aborted.outcome is SyncOutcome.ABORTED
    assert (cwd / "forkman.lock").read_text() == before
    assert fm.check().ok


def test_errors_keep_class_and_hint_through_the_actor_boundary(fm: Project) -> None:
    # raised inside the fork's actor (a paused sync refuses other writes): the class
    # and hint come back as raised, not as a string
    fm.sync("demo", yes=True)
    with pytest.raises(forkman.ForkmanError) as paused:
        fm.patch("demo", "while paused")
    assert type(paused.value) is not forkman.ForkmanError
    assert paused.value.hint
    with pytest.raises(forkman.BadInput) as bad:
        fm.drop_patch("demo", 9)  # refused inside the actor
    assert bad.value.hint is None or isinstance(bad.value.hint, str)
    with pytest.raises(forkman.NotFound) as missing:
        fm.sync("nope")
    assert missing.value.hint == "`forkman status` lists the forks; `forkman fork NAME` makes one"
    # and through JSON (as replies are stored), including subclasses outside _errors
    from forkman.sandbox.interface import SandboxUnavailable

    again = error_from_json(SandboxUnavailable("no userns", hint="enable them").to_json())
    assert type(again) is SandboxUnavailable and again.hint == "enable them"
    assert type(error_from_json({"kind": "Blocked", "message": "m"})).exit_code == 1
    assert type(error_from_json({"kind": "os.system", "type": "os.system"})) is (
        forkman.ForkmanError
    )


def test_cli_shows_the_actor_error_with_its_hint(fm: Project) -> None:
    fm.sync("demo", yes=True)
    res = run("restore", "demo")
    assert res.exit_code == 2
    assert "hint:" in res.stderr


def test_unfork_review_audit_provenance_and_test(fm: Project, cwd: Path) -> None:
    report = fm.review("demo", upstream="1.0..1.1")
    assert report.new == "1.1" and any(f.file == "demo_hook.pth" for f in report.findings)
    run_ = fm.audit()
    assert [f.name for f in run_.report.forks] == ["demo"]
    assert run_.exit_code(allow_unaudited=True) in (0, 1)
    with pytest.raises(forkman.SecurityError) as prov:
        fm.provenance("demo")  # the local index publishes no provenance: fail closed
    assert prov.value.hint
    [tested] = fm.test("demo", no_sandbox=True)
    assert tested.name == "demo" and tested.status in ("no-tests", "error", "passed", "failed")
    json.dumps(tested.to_json())
    removed = fm.unfork("demo")
    assert [r.name for r in removed.results] == ["demo"] and removed.exit_code == 0
    assert fm.forks() == () and not (cwd / "vendor/demo").exists()


def test_observer_gets_progress(cwd: Path, local_index: LocalIndex) -> None:
    add_releases(local_index, "1.0")
    seen = forkman.RecordingObserver()
    fm = Project.open(cwd, observer=seen)
    fm.init()
    fm.fork("demo==1.0")
    assert any(subject == "demo" for subject, _ in seen.steps)
