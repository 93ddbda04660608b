"""Red team: a pull request that tells `check` and `verify` to look away.

Every attack is a commit made in a clone of a real consumer project (forked
with the real CLI from the local test index), pushed as a pull request would
be, then judged in a fresh clone of that commit (what CI sees) by the real
`forkman check`, `forkman verify` and the check and verify stages of
`forkman ci`. Each must fail (exit 1 or 2) and name what is wrong.
"""

from __future__ import annotations

import importlib.util
import json
import os
import py_compile
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from forkman.ci.pipeline import CheckStage, StageStatus, VerifyStage, run_ci
from forkman.core.errors import ForkmanError
from forkman.model.lock import LockEntry, PatchRecord, load_lock, write_lock
from forkman.model.project import Project
from forkman.store.treehash import file_digest, hash_manifest, scan_tree
from tests.conftest import git
from tests.support.cli import Result, run
from tests.support.index import LocalIndex

EVIL = "def greet(who):\n    return 'owned ' + who\n"


@pytest.fixture
def upstream(tmp_path: Path, cwd: Path, local_index: LocalIndex) -> Path:
    """The consumer's main branch: demo 1.0 forked (project layout) and committed."""
    local_index.add_sdist("demo", "1.0")
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "fork demo")
    assert run("check").exit_code == 0
    return cwd


def pull_request(
    upstream: Path, tmp_path: Path, change: Callable[[Path], object], *, name: str = "pr"
) -> Path:
    """Make `change` as a commit in a clone of `upstream`; a fresh clone of it, as CI has."""
    pr = tmp_path / name
    git(tmp_path, "clone", "-q", str(upstream), str(pr))
    change(pr)
    git(pr, "add", "-A", "-f")
    git(pr, "commit", "-qm", "an innocent change")
    ci = tmp_path / f"{name}-ci"
    git(tmp_path, "clone", "-q", str(pr), str(ci))
    return ci


def judged(ci: Path) -> tuple[Result, Result, str]:
    """What `check`, `verify` and the check and verify stages of `ci` say about `ci`."""
    check = run("check", cwd=ci)
    verify = run("verify", cwd=ci)
    try:
        report = run_ci(Project(ci), stages=[CheckStage(), VerifyStage()])
    except ForkmanError as exc:  # `forkman ci` exits 2 with this message
        return check, verify, f"error: {exc.message}"
    # the policy stage (where the security settings came from) runs first and passes here
    judging = [s for s in report.stages if s.name in ("check", "verify")]
    assert [s.name for s in judging] == ["check", "verify"], report.stages
    assert all(s.status is not StageStatus.OK for s in judging), report.stages
    return check, verify, " ".join(f.message for s in judging for f in s.findings)


def assert_refused(ci: Path, needle: str) -> None:
    check, verify, ci_says = judged(ci)
    assert check.exit_code in (1, 2), check
    assert needle in check.stdout + check.stderr, check
    assert verify.exit_code in (1, 2), verify
    assert needle in verify.stdout + verify.stderr, verify
    assert needle in ci_says, ci_says


def forge_lock(root: Path, change: Callable[[LockEntry], LockEntry]) -> None:
    """Rewrite one entry of the lock the way forkman writes it (canonical form)."""
    lock = load_lock(root / "forkman.lock")
    entry = lock.forks["demo"]
    write_lock(root / "forkman.lock", lock.with_entry(change(entry)))


# -- 1. bytecode that git tracks ------------------------------------------------------


def _unchecked_pyc(source: Path, code: str) -> Path:
    """An unchecked-hash pyc of `code` where the interpreter looks for `source`'s cache."""
    target = Path(importlib.util.cache_from_source(str(source)))
    fake = source.with_name("_evil_source.py")
    fake.write_text(code)
    target.parent.mkdir(exist_ok=True)
    py_compile.compile(
        str(fake),
        cfile=str(target),
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    fake.unlink()
    return target


def _greet(src: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import demo; print(demo.greet('x'))"],
        env={**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_committed_unchecked_pyc_is_judged(upstream: Path, tmp_path: Path) -> None:
    init = "vendor/demo/src/demo/__init__.py"
    pyc = Path(importlib.util.cache_from_source(init)).as_posix()
    ci = pull_request(upstream, tmp_path, lambda pr: _unchecked_pyc(pr / init, EVIL))
    # the attack is real: the .py beside it is pristine, importing runs the bytecode
    assert (ci / init).read_text() == (upstream / init).read_text()
    assert _greet(ci / "vendor/demo/src") == "owned x"
    assert_refused(ci, pyc)


def test_untracked_bytecode_that_git_does_not_ignore_is_judged(
    upstream: Path, tmp_path: Path
) -> None:
    # a project whose .gitignore does not ignore bytecode (`forkman init` adds the lines)
    ignore = upstream / ".gitignore"
    if ignore.exists():
        kept = [ln for ln in ignore.read_text().splitlines() if "pyc" not in ln]
        ignore.write_text("".join(f"{ln}\n" for ln in kept))
        git(upstream, "add", ".gitignore")
        git(upstream, "commit", "-qm", "bytecode is not ignored")
    init = upstream / "vendor/demo/src/demo/__init__.py"
    pyc = _unchecked_pyc(init, EVIL)
    res = run("check", "--format", "json")
    assert res.exit_code == 1
    paths = {f["path"] for f in json.loads(res.stdout)["findings"]}
    assert paths == {pyc.relative_to(upstream).as_posix()}
    # bytecode git ignores is this interpreter's cache: not part of the verdict
    (upstream / ".gitignore").write_text("__pycache__/\n")
    git(upstream, "add", ".gitignore")
    git(upstream, "commit", "-qm", "ignore bytecode")
    assert run("check").exit_code == 0


def test_bytecode_in_a_namespace_folder_is_judged(
    cwd: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    _namespace_project(cwd, local_index)
    assert run("fork", "six==1.16.0").exit_code == 0, run("check")
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "fork six")
    six = "src/consumer/_vendor/six.py"
    pyc = Path(importlib.util.cache_from_source(six)).as_posix()
    ci = pull_request(cwd, tmp_path, lambda pr: _unchecked_pyc(pr / six, "X = 'owned'\n"))
    check = run("check", cwd=ci)
    assert check.exit_code == 1 and pyc in check.stdout, check
    verify = run("verify", cwd=ci)
    assert verify.exit_code == 1 and pyc in verify.stdout + verify.stderr, verify


def test_a_fork_path_behind_a_symlink_is_refused(upstream: Path, tmp_path: Path) -> None:
    """The tree hash follows the symlink; git does not: bytecode behind it went unseen."""
    init = "vendor/demo/src/demo/__init__.py"

    def attack(pr: Path) -> None:
        (pr / "shadow").mkdir()
        (pr / "vendor/demo").rename(pr / "shadow/demo")
        (pr / "vendor/demo").symlink_to("../shadow/demo")
        _unchecked_pyc(pr / "shadow/demo/src/demo/__init__.py", EVIL)

    ci = pull_request(upstream, tmp_path, attack)
    assert _greet(ci / "vendor/demo/src") == "owned x"
    assert (ci / init).read_text() == (upstream / init).read_text()
    assert_refused(ci, "symlink")


# -- 2. lock sections that do not fit the layout --------------------------------------


def test_namespace_members_on_a_project_fork_are_refused(upstream: Path, tmp_path: Path) -> None:
    def attack(pr: Path) -> None:
        readme = pr / "vendor/demo/README.md"
        only_readme = {readme.name: None}
        manifest, _ = scan_tree(
            readme.parent,
            exclude={p.name: None for p in readme.parent.iterdir() if p.name not in only_readme},
        )
        forge_lock(
            pr,
            lambda e: replace(
                e.with_section("namespace", {"members": ["README.md"]}),
                vendored_tree=hash_manifest(manifest.values()),
            ),
        )
        (pr / "vendor/demo/src/demo/__init__.py").write_text(EVIL)

    ci = pull_request(upstream, tmp_path, attack)
    assert_refused(ci, "namespace")


def test_an_unknown_lock_section_is_refused(upstream: Path, tmp_path: Path) -> None:
    ci = pull_request(
        upstream,
        tmp_path,
        lambda pr: forge_lock(pr, lambda e: e.with_section("skip-check", {"all": True})),
    )
    assert_refused(ci, "skip-check")


# -- 3. protected files that cover a fork ---------------------------------------------


def _namespace_project(root: Path, local_index: LocalIndex, protected: str = "") -> None:
    (root / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\n\n'
        f'[tool.forkman]\nindex-url = "{local_index.url}"\n\n'
        '[tool.forkman.vendoring]\nnamespace = "consumer._vendor"\n'
        f'destination = "src/consumer/_vendor"\n{protected}'
    )
    (root / "src/consumer/_vendor").mkdir(parents=True)
    (root / "src/consumer/__init__.py").write_text("")
    (root / "src/consumer/_vendor/__init__.py").write_text("")
    assert run("init").exit_code == 0
    local_index.add_wheel("six", "1.16.0", {"six.py": "X = 1\n"})
    local_index.add_wheel(
        "alpha",
        "1.0",
        {"alpha/__init__.py": "VALUE = 1\n", "alpha_extra.py": "SAFE = True\n"},
    )


def test_protected_files_cannot_cover_a_fork_member(
    cwd: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    _namespace_project(cwd, local_index)
    assert run("fork", "alpha==1.0").exit_code == 0
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "fork alpha")
    assert run("check").exit_code == 0

    def attack(pr: Path) -> None:
        text = (pr / "pyproject.toml").read_text()
        (pr / "pyproject.toml").write_text(text + 'protected-files = ["alpha_extra.py"]\n')
        (pr / "src/consumer/_vendor/alpha_extra.py").write_text("SAFE = False\n")

    ci = pull_request(cwd, tmp_path, attack)
    check = run("check", cwd=ci)
    assert check.exit_code in (1, 2) and "alpha_extra.py" in check.stdout + check.stderr, check


def test_protected_files_cannot_hide_a_fork_member_dropped_from_the_lock(
    cwd: Path, local_index: LocalIndex, tmp_path: Path
) -> None:
    _namespace_project(cwd, local_index)
    assert run("fork", "alpha==1.0").exit_code == 0
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "fork alpha")

    def attack(pr: Path) -> None:
        text = (pr / "pyproject.toml").read_text()
        (pr / "pyproject.toml").write_text(text + 'protected-files = ["alpha_extra.py"]\n')
        (pr / "src/consumer/_vendor/alpha_extra.py").write_text("SAFE = False\n")
        lock = load_lock(pr / "forkman.lock")
        entry = lock.forks["alpha"]
        ns = dict(entry.sections["namespace"])
        members = [m for m in ns["members"] if m not in ("alpha_extra.py", "alpha_extra.pyi")]
        ns["members"] = members
        folder = pr / entry.path
        manifest, _ = scan_tree(
            folder, exclude={p.name: None for p in folder.iterdir() if p.name not in members}
        )
        entry = replace(
            entry.with_section("namespace", ns), vendored_tree=hash_manifest(manifest.values())
        )
        write_lock(pr / "forkman.lock", lock.with_entry(entry))

    ci = pull_request(cwd, tmp_path, attack)
    verify = run("verify", cwd=ci)
    assert verify.exit_code in (1, 2) and "alpha_extra.py" in verify.stdout + verify.stderr
    report = run_ci(Project(ci), stages=[VerifyStage()])
    stage = next(s for s in report.stages if s.name == "verify")
    assert stage.status is not StageStatus.OK, report.stages


# -- 4. names and paths in the lock ---------------------------------------------------


def test_a_second_spelling_of_a_fork_name_is_refused(upstream: Path, tmp_path: Path) -> None:
    def attack(pr: Path) -> None:
        lock = load_lock(pr / "forkman.lock")
        entry = lock.forks["demo"]
        (pr / "vendor/Demo").mkdir()
        for path in (pr / "vendor/demo").rglob("*"):
            dest = pr / "vendor/Demo" / path.relative_to(pr / "vendor/demo")
            if path.is_dir():
                dest.mkdir(exist_ok=True)
            else:
                dest.write_bytes(path.read_bytes())
        (pr / "vendor/Demo/src/demo/__init__.py").write_text(EVIL)
        write_lock(
            pr / "forkman.lock", lock.with_entry(replace(entry, name="Demo", path="vendor/Demo"))
        )

    ci = pull_request(upstream, tmp_path, attack)
    assert_refused(ci, "Demo")


@pytest.mark.parametrize(
    "path", ["vendor/demo", "vendor/demo/src", "vendor", "src/demo", "vendor/./demo"]
)
def test_a_lock_path_that_overlaps_or_leaves_the_vendor_dir_is_refused(
    upstream: Path, tmp_path: Path, path: str
) -> None:
    def attack(pr: Path) -> None:
        lock = load_lock(pr / "forkman.lock")
        entry = lock.forks["demo"]
        write_lock(pr / "forkman.lock", lock.with_entry(replace(entry, name="twin", path=path)))

    ci = pull_request(upstream, tmp_path, attack)
    assert_refused(ci, path)


# -- 5. paths from the configuration --------------------------------------------------


def _set_config(pr: Path, line: str) -> None:
    text = (pr / "pyproject.toml").read_text()
    (pr / "pyproject.toml").write_text(
        text.replace("[tool.forkman]\n", f"[tool.forkman]\n{line}\n")
    )


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('vendor-dir = "../../x"', "vendor-dir"),
        ('vendor-dir = "/etc"', "vendor-dir"),
        ('patches-dir = "../patches"', "patches-dir"),
        ('vendor-dir = "."', "vendor-dir"),
    ],
)
def test_config_paths_stay_inside_the_project(
    upstream: Path, tmp_path: Path, line: str, key: str
) -> None:
    outside = tmp_path / "x"
    (outside / "secret-folder").mkdir(parents=True)
    ci = pull_request(upstream, tmp_path, lambda pr: _set_config(pr, line))
    check = run("check", cwd=ci)
    assert check.exit_code == 2 and key in check.stderr, check
    assert "secret-folder" not in check.stdout + check.stderr
    assert run("verify", cwd=ci).exit_code == 2


def test_a_vendor_dir_behind_a_symlink_out_of_the_project_is_refused(
    upstream: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    (outside / "secret-folder").mkdir(parents=True)

    def attack(pr: Path) -> None:
        (pr / "outside").symlink_to(outside)
        _set_config(pr, 'vendor-dir = "outside"')

    ci = pull_request(upstream, tmp_path, attack)
    check = run("check", cwd=ci)
    assert check.exit_code == 2 and "vendor-dir" in check.stderr, check
    assert "secret-folder" not in check.stdout


def test_a_patch_file_outside_the_patches_dir_is_no_existence_oracle(
    upstream: Path, tmp_path: Path
) -> None:
    said = []
    probe = tmp_path / "probe.txt"

    def attack(pr: Path) -> None:
        rel = os.path.relpath(probe, pr)
        forge_lock(pr, lambda e: replace(e, patches=(PatchRecord(rel, "0" * 64),)))

    for exists in (True, False):
        if exists:
            probe.write_text("secret\n")
        elif probe.exists():
            probe.unlink()
        ci = pull_request(upstream, tmp_path, attack, name=f"pr-{exists}")
        check = run("check", cwd=ci)
        assert check.exit_code in (1, 2), check
        assert "probe.txt" in check.stdout + check.stderr
        assert "patch missing" not in check.stdout and "patch edited" not in check.stdout
        verify = run("verify", cwd=ci)
        assert verify.exit_code == 2, verify
        said.append((check, verify))
    # the same answer whether the file outside the project exists or not
    assert said[0] == said[1]


def test_a_patch_file_in_the_project_but_outside_its_series_is_refused(
    upstream: Path, tmp_path: Path
) -> None:
    def attack(pr: Path) -> None:
        digest = file_digest(pr / "pyproject.toml")
        forge_lock(pr, lambda e: replace(e, patches=(PatchRecord("pyproject.toml", digest),)))

    ci = pull_request(upstream, tmp_path, attack)
    assert_refused(ci, "patches-dir")


def test_a_patch_file_symlinked_out_of_the_project_is_refused(
    upstream: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.patch"
    secret.write_text("secret\n")

    def attack(pr: Path) -> None:
        link = pr / "patches/demo/0001-x.patch"
        link.parent.mkdir(parents=True)
        link.symlink_to(secret)
        forge_lock(
            pr, lambda e: replace(e, patches=(PatchRecord("patches/demo/0001-x.patch", "0" * 64),))
        )

    ci = pull_request(upstream, tmp_path, attack)
    check = run("check", cwd=ci)
    assert check.exit_code in (1, 2) and "patches/demo/0001-x.patch" in check.stdout + check.stderr
    assert "patch edited" not in check.stdout, check


# -- 6. no false clean after a migration ----------------------------------------------


def test_declared_but_unforked_forks_and_unowned_files_are_findings(
    cwd: Path, local_index: LocalIndex
) -> None:
    (cwd / "pyproject.toml").write_text(
        '[project]\nname = "tool"\nversion = "1.0"\n\n'
        f'[tool.forkman]\nindex-url = "{local_index.url}"\n\n'
        '[tool.vendoring]\ndestination = "src/tool/_vendor/"\n'
        'requirements = "src/tool/_vendor/vendor.txt"\nnamespace = "tool._vendor"\n'
        'protected-files = ["__init__.py", "vendor.txt"]\npatches-dir = "tools/patches"\n'
    )
    vendor = cwd / "src/tool/_vendor"
    vendor.mkdir(parents=True)
    (cwd / "src/tool/__init__.py").write_text("")
    (vendor / "__init__.py").write_text("")
    (vendor / "vendor.txt").write_text("six==1.16.0\nalpha==2.0\n")
    (vendor / "six.py").write_text("X = 'whatever the vendoring tool left'\n")
    (cwd / "tools/patches").mkdir(parents=True)
    local_index.add_wheel("six", "1.16.0", {"six.py": "X = 1\n"})
    local_index.add_wheel("alpha", "2.0", {"alpha/__init__.py": "import six\n"})
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "vendoring project")
    assert run("migrate", "vendoring").exit_code == 0
    res = run("check")
    assert res.exit_code == 1, res
    assert "not forked: alpha" in res.stdout and "not forked: six" in res.stdout
    assert "owned by no fork: src/tool/_vendor/six.py" in res.stdout
    assert "forkman sync --all" in res.stderr
    assert run("sync", "--all", "--yes").exit_code == 0
    assert run("check").exit_code == 0
