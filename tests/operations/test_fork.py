"""End to end through the CLI: init, fork (index and git), status, check, verify, unfork."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from forkman.model.lock import GitSource, IndexSource, load_lock
from tests.conftest import git
from tests.support.cli import run, snapshot
from tests.support.index import LocalIndex


@pytest.fixture
def initialized(cwd: Path) -> Path:
    res = run("init")
    assert res.exit_code == 0, res
    return cwd


def add_releases(
    index: LocalIndex, name: str = "demo", versions: tuple[str, ...] = ("1.0", "1.1", "2.0")
) -> None:
    for v in versions:
        index.add_sdist(name, v)


def test_init_creates_config_and_lock(cwd: Path) -> None:
    res = run("init")
    assert res.exit_code == 0, res
    assert (cwd / "forkman.lock").read_text().startswith("# This file is written by forkman")
    assert "[tool.forkman]" in (cwd / "pyproject.toml").read_text()
    assert (cwd / ".forkman" / ".gitignore").exists()
    assert "already present" in run("init").stdout


def test_fork_from_index_pins_everything(initialized: Path, local_index: LocalIndex) -> None:
    add_releases(local_index)
    res = run("fork", "demo==1.1")
    assert res.exit_code == 0, res
    assert "forked demo 1.1 into vendor/demo" in res.stdout
    entry = load_lock(initialized / "forkman.lock").forks["demo"]
    assert entry.version == "1.1"
    assert isinstance(entry.source, IndexSource)
    assert entry.source.filename == "demo-1.1.tar.gz"
    sdist = next(f for f in local_index.projects["demo"] if f.path.name == "demo-1.1.tar.gz")
    assert entry.source.sha256 == sdist.sha256
    assert entry.source.index_url == local_index.url
    assert entry.upstream_tree == entry.vendored_tree
    assert (initialized / "vendor/demo/src/demo/__init__.py").read_text().count('"1.1"') == 1
    assert (initialized / "vendor/demo/PKG-INFO").exists()  # the sdist's top directory is stripped
    # history: pristine upstream import, tagged
    out = git(initialized, "--git-dir", ".forkman/forks/demo.git", "tag", "--list")
    assert out.split() == ["upstream/1.1"]
    # progress went to stderr, results to stdout
    assert "demo: fetching (unpacking demo-1.1.tar.gz)" in res.stderr
    assert "unpacking" not in res.stdout
    assert run("check").exit_code == 0


def test_fork_with_specifier_takes_newest_match_and_records_constraint(
    initialized: Path, local_index: LocalIndex
) -> None:
    add_releases(local_index)
    local_index.add_sdist("demo", "1.9rc1")
    res = run("fork", "demo>=1,<2")
    assert res.exit_code == 0, res
    entry = load_lock(initialized / "forkman.lock").forks["demo"]
    assert entry.version == "1.1"
    assert 'constraint = "<2,>=1"' in (initialized / "pyproject.toml").read_text()


def test_fork_wheel_when_no_sdist(initialized: Path, local_index: LocalIndex) -> None:
    local_index.add_wheel("onlywheel", "3.0")
    res = run("fork", "onlywheel")
    assert res.exit_code == 0, res
    entry = load_lock(initialized / "forkman.lock").forks["onlywheel"]
    assert isinstance(entry.source, IndexSource)
    assert entry.source.filename.endswith(".whl")
    assert (initialized / "vendor/onlywheel/onlywheel/__init__.py").exists()


def test_fork_from_git_pins_the_commit(initialized: Path, tmp_path: Path) -> None:
    upstream = tmp_path / "upstream-repo"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    (upstream / "pyproject.toml").write_text('[project]\nname = "foo"\nversion = "1.2.0"\n')
    (upstream / "foo.py").write_text("VALUE = 1\n")
    git(upstream, "add", ".")
    git(upstream, "commit", "-qm", "one")
    git(upstream, "tag", "-a", "v1.2.0", "-m", "release")
    commit = git(upstream, "rev-parse", "HEAD").strip()
    (upstream / "foo.py").write_text("VALUE = 2\n")
    git(upstream, "commit", "-qam", "two")
    res = run("fork", f"git+file://{upstream}@v1.2.0", "--name", "foo")
    assert res.exit_code == 0, res
    entry = load_lock(initialized / "forkman.lock").forks["foo"]
    assert isinstance(entry.source, GitSource)
    assert entry.source.commit == commit and entry.source.ref == "v1.2.0"
    assert entry.version == "1.2.0"
    assert (initialized / "vendor/foo/foo.py").read_text() == "VALUE = 1\n"
    assert not (initialized / "vendor/foo/.git").exists()
    assert run("verify", "foo").exit_code == 0


def test_status_table_and_json(initialized: Path, local_index: LocalIndex) -> None:
    add_releases(local_index)
    assert run("fork", "demo==1.0").exit_code == 0
    res = run("status")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["fork", "version", "source", "patches", "state", "tests", "audit"]
    assert lines[2].split()[:5] == ["demo", "1.0", "demo-1.0.tar.gz", "0", "clean"]
    (initialized / "vendor/demo/README.md").write_text("changed\n")
    rows = json.loads(run("status", "--format", "json").stdout)
    assert rows[0]["state"] == "modified"


def test_check_reports_every_kind_of_unrecorded_change(
    initialized: Path, local_index: LocalIndex
) -> None:
    local_index.add_sdist(
        "demo",
        "1.0",
        {
            "a.py": "a = 1\n",
            "b.py": "b = 1\n",
            "c.py": "c = 1\n",
            "d.py": "d = 1\n",
            "run.sh": "#!/bin/sh\n",
        },
    )
    assert run("fork", "demo==1.0").exit_code == 0
    tree = initialized / "vendor/demo"
    (tree / "a.py").write_text("a = 2\n")  # modified
    (tree / "new.py").write_text("new\n")  # added
    (tree / "b.py").unlink()  # deleted
    os.rename(tree / "c.py", tree / "c2.py")  # renamed
    os.chmod(tree / "d.py", 0o755)  # mode
    os.symlink("a.py", tree / "link.py")  # added symlink
    res = run("check", "--format", "json")
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    got = {(f["kind"], f["path"]) for f in report["findings"]}
    assert got == {
        ("modified", "vendor/demo/a.py"),
        ("added", "vendor/demo/new.py"),
        ("added", "vendor/demo/link.py"),
        ("deleted", "vendor/demo/b.py"),
        ("renamed", "vendor/demo/c.py"),
        ("mode changed", "vendor/demo/d.py"),
    }
    assert any("forkman patch demo" in h for h in report["hints"])
    text = run("check")
    assert text.exit_code == 1
    assert "demo: modified: vendor/demo/a.py" in text.stdout
    assert "forkman patch demo -m" in text.stderr


def test_check_without_state_folder_still_detects_change(
    initialized: Path, local_index: LocalIndex
) -> None:
    add_releases(local_index)
    assert run("fork", "demo==1.0").exit_code == 0
    subprocess.run(["rm", "-rf", str(initialized / ".forkman")], check=True)
    assert run("check").exit_code == 0  # a fresh clone: no state, still clean
    (initialized / "vendor/demo/README.md").write_text("x\n")
    res = run("check")
    assert res.exit_code == 1
    assert "tree changed: vendor/demo" in res.stdout


def test_check_lock_hand_edit_missing_fork_and_untracked_dir(
    initialized: Path, local_index: LocalIndex
) -> None:
    add_releases(local_index)
    assert run("fork", "demo==1.0").exit_code == 0
    lock = initialized / "forkman.lock"
    original = lock.read_text()
    lock.write_text(original.replace('version = "1.0"', 'version = "1.0"  # bumped'))
    res = run("check")
    assert res.exit_code == 1 and "lock edited: forkman.lock" in res.stdout
    lock.write_text(original)
    (initialized / "vendor/stray").mkdir()
    subprocess.run(["rm", "-rf", str(initialized / "vendor/demo")], check=True)
    res = run("check", "--format", "json")
    kinds = {(f["kind"], f["path"]) for f in json.loads(res.stdout)["findings"]}
    assert kinds == {("missing fork", "vendor/demo"), ("untracked fork", "vendor/stray")}
    lock.write_text("version = [")
    res = run("check")
    assert res.exit_code == 1 and "lock invalid" in res.stdout


def test_verify_rebuilds_and_detects_tampering(initialized: Path, local_index: LocalIndex) -> None:
    add_releases(local_index)
    assert run("fork", "demo==1.0").exit_code == 0
    res = run("verify")
    assert res.exit_code == 0, res
    assert res.stdout.strip() == "demo: ok"
    (initialized / "vendor/demo/README.md").write_text("tampered\n")
    res = run("verify", "demo", "--format", "json")
    assert res.exit_code == 1
    assert json.loads(res.stdout)[0]["stage"] == "worktree"
    (initialized / "vendor/demo/README.md").write_text("# demo\n\nVersion 1.0.\n")
    # the recorded upstream hash itself is a lie: verify says so at the upstream stage
    lock = initialized / "forkman.lock"
    entry = load_lock(lock).forks["demo"]
    lock.write_text(lock.read_text().replace(entry.upstream_tree, "sha256:" + "0" * 64))
    res = run("verify", "--format", "json")
    assert json.loads(res.stdout)[0]["stage"] == "upstream"
    lock.write_text(lock.read_text().replace("sha256:" + "0" * 64, entry.upstream_tree))
    assert run("verify").exit_code == 0
    lock.write_text(lock.read_text().replace('version = "1.0"', 'version = "1.1"', 1))
    res = run("verify", "--format", "json")
    assert json.loads(res.stdout)[0]["stage"] == "source"
    assert "version 1.1" in json.loads(res.stdout)[0]["message"]


def test_verify_redownloads_when_cache_is_gone_and_fails_closed_on_changed_file(
    initialized: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    add_releases(local_index)
    assert run("fork", "demo==1.0").exit_code == 0
    cache = Path(os.environ["FORKMAN_CACHE_DIR"])
    subprocess.run(["rm", "-rf", str(cache)], check=True)
    before = len(local_index.requests)
    assert run("verify").exit_code == 0
    assert any(r.startswith("/files/demo-1.0") for r in local_index.requests[before:])
    # upstream replaced the file behind the same URL: the recorded sha256 catches it
    subprocess.run(["rm", "-rf", str(cache)], check=True)
    sdist = next(f for f in local_index.projects["demo"] if f.path.name == "demo-1.0.tar.gz")
    from tests.support.index import build_sdist

    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    evil = build_sdist(evil_dir, "demo", "1.0", {"setup.py": "import os; os.system('x')\n"})
    sdist.path.write_bytes(evil.read_bytes())
    res = run("verify", "--format", "json")
    assert res.exit_code == 1
    assert json.loads(res.stdout)[0]["stage"] == "source"


def test_unfork_removes_everything(initialized: Path, local_index: LocalIndex) -> None:
    add_releases(local_index)
    before = (initialized / "pyproject.toml").read_text()
    assert run("fork", "demo>=1,<2").exit_code == 0
    res = run("unfork", "demo")
    assert res.exit_code == 0, res
    assert not (initialized / "vendor/demo").exists()
    assert not (initialized / ".forkman/forks/demo.git").exists()
    assert load_lock(initialized / "forkman.lock").forks == {}
    assert (initialized / "pyproject.toml").read_text() == before
    assert run("check").exit_code == 0


# -- bad input: one clear message, exit 2, nothing changed -----------------------------


def _bad(project: Path, *args: str) -> str:
    before = snapshot(project)
    res = run(*args)
    assert res.exit_code == 2, res
    assert res.stdout == ""
    assert res.stderr.count("error: ") == 1, res.stderr
    after = snapshot(project, skip=(".git", ".forkman"))
    assert after == {k: v for k, v in before.items() if not k.startswith(".forkman/")}
    return res.stderr


def test_bad_inputs(initialized: Path, local_index: LocalIndex) -> None:
    add_releases(local_index)
    assert "no-such-package" in _bad(initialized, "fork", "no-such-package")
    assert "2.0" in _bad(initialized, "fork", "demo>=5")
    _bad(initialized, "fork", "demo>>=1")
    assert run("fork", "demo==1.0").exit_code == 0
    assert "already exists" in _bad(initialized, "fork", "demo==1.1")
    assert "no fork named" in _bad(initialized, "unfork", "nope")
    assert "no fork named" in _bad(initialized, "verify", "nope")


def test_hash_mismatch_is_refused(initialized: Path, local_index: LocalIndex) -> None:
    local_index.add_sdist("demo", "1.0", announced_sha256="0" * 64)
    msg = _bad(initialized, "fork", "demo==1.0")
    assert "sha256" in msg.lower()
    assert not (initialized / "vendor").exists()


def test_unreachable_index(initialized: Path) -> None:
    msg = _bad(initialized, "fork", "demo", "--index-url", "http://127.0.0.1:9/simple/")
    assert "127.0.0.1:9" in msg


def test_corrupt_lock(initialized: Path, local_index: LocalIndex) -> None:
    add_releases(local_index)
    (initialized / "forkman.lock").write_text("version = [\n")
    assert "not valid TOML" in _bad(initialized, "fork", "demo==1.0")
    assert "not valid TOML" in _bad(initialized, "status")


def test_not_a_git_repo_and_no_pyproject(tmp_path: Path, local_index: LocalIndex) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "pyproject.toml").write_text("[tool.forkman]\n")
    res = run("fork", "demo", cwd=plain)
    assert res.exit_code == 2 and "not inside a git repository" in res.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run("status", cwd=empty)
    assert res.exit_code == 2 and "no pyproject.toml" in res.stderr


def test_fork_requires_init(cwd: Path, local_index: LocalIndex) -> None:
    (cwd / "pyproject.toml").write_text('[project]\nname = "x"\n')
    add_releases(local_index)
    res = run("fork", "demo==1.0")
    assert res.exit_code == 2 and "forkman init" in res.stderr


def test_python_dash_m_and_help_examples() -> None:
    out = subprocess.run(
        [os.sys.executable, "-m", "forkman", "--help"],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert "fork" in out.stdout
    for command in ("init", "fork", "unfork", "status", "check", "verify"):
        res = run(command, "--help")
        assert res.exit_code == 0
        assert "Example" in res.stdout, command


@pytest.mark.network
def test_fork_real_package_from_pypi(initialized: Path) -> None:
    res = run("fork", "attrs==23.1.0", "--index-url", "https://pypi.org/simple/")
    assert res.exit_code == 0, res
    entry = load_lock(initialized / "forkman.lock").forks["attrs"]
    assert isinstance(entry.source, IndexSource)
    assert entry.source.filename == "attrs-23.1.0.tar.gz"
    assert len(entry.source.sha256) == 64
    assert (initialized / "vendor/attrs/src/attr/_make.py").exists()
    assert run("check").exit_code == 0
    res = run("verify")  # verify downloads only through a configured index
    assert res.exit_code == 1 and "not a configured index" in res.stdout, res
    pyproject = initialized / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.forkman]\n",
            '[tool.forkman]\nextra-index-urls = ["https://pypi.org/simple/"]\n',
            1,
        )
    )
    assert run("verify").exit_code == 0


def test_fork_warns_about_files_the_consumer_git_ignores(
    initialized: Path, local_index: LocalIndex
) -> None:
    (initialized / ".gitignore").write_text("*.egg-info/\n")
    local_index.add_sdist(
        "demo", "1.0", {"demo.egg-info/PKG-INFO": "Name: demo\n", "demo.py": "x = 1\n"}
    )
    res = run("fork", "demo==1.0")
    assert res.exit_code == 0, res
    assert "are ignored by this repository's git" in res.stderr
    assert "vendor/demo/demo.egg-info/PKG-INFO" in res.stderr
    assert "forkman staged them with `git add -f`" in res.stderr
    assert "vendor/demo/demo.egg-info/PKG-INFO" in git(initialized, "ls-files", "vendor/demo")
