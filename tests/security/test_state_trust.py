"""Red team: state under `.forkman/` that a pull request (or a shared cache) supplies.

Each attack is a real pull request: a consumer project with a fork, a clone
of it, a commit in the clone that force-adds the malicious state (``git add
-f``), merged into the maintainer's repository. The maintainer then runs the
real `forkman check` process (what the pre-commit hook runs), `status` and
`verify`. Afterwards the host is inspected: the file outside the project, the
directory outside it, ``.git/config``, and whether a command planted in it ran.

A second family plays the same state *untracked* (left on disk after
``git rm -r --cached .forkman``, or a cache directory shared between
projects or restored from elsewhere): journals must be validated before
recovery touches anything, and caches must fail verification and be ignored.
"""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, git
from tests.support.cli import Result, run
from tests.support.index import LocalIndex


def forkman(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `python -m forkman` process (the pre-commit hook's path for `check`)."""
    return subprocess.run(
        [sys.executable, "-m", "forkman", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )


@dataclass
class Victim:
    """The maintainer's repository and what an attack must not touch outside it."""

    root: Path
    outside_file: Path
    outside_dir: Path
    marker: Path
    git_config: bytes

    def assert_untouched(self) -> None:
        assert self.outside_file.read_text() == "the host's own file\n"
        assert (self.outside_dir / "keep.txt").read_text() == "keep me\n"
        assert (self.root / ".git" / "config").read_bytes() == self.git_config
        assert not self.marker.exists(), "a command planted in .git/config ran"


@pytest.fixture
def victim(cwd: Path, local_index: LocalIndex, tmp_path: Path) -> Victim:
    local_index.add_sdist("demo", "1.0", {"a.py": "a = 1\n", "b.py": "b = 1\n"})
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    git(cwd, "add", "-A")
    git(cwd, "commit", "-qm", "fork demo")
    time.sleep(0.3)  # past the racy window of directory stamps
    first = forkman(cwd, "check")
    assert first.returncode == 0, first
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the host's own file\n")
    (outside / "keep").mkdir()
    (outside / "keep" / "keep.txt").write_text("keep me\n")
    return Victim(
        root=cwd,
        outside_file=outside / "secret.txt",
        outside_dir=outside / "keep",
        marker=outside / "fsmonitor-ran",
        git_config=(cwd / ".git" / "config").read_bytes(),
    )


def pull_request(
    victim: Victim, tmp_path: Path, change: Callable[[Path], None], *, untrack: bool = False
) -> None:
    """Clone, let `change` write into the clone, commit with `git add -f`, merge it.

    `untrack`: the maintainer then runs `git rm -r --cached .forkman` and commits,
    leaving the files on disk (the state is untracked but still there).
    """
    clone = tmp_path / "attacker"
    git(tmp_path, "clone", "-q", str(victim.root), str(clone))
    change(clone)
    git(clone, "add", "-f", "-A", ".")
    git(clone, "commit", "-qm", "innocent looking change")
    git(victim.root, "pull", "-q", "--ff-only", str(clone), "main")
    if untrack:
        git(victim.root, "rm", "-r", "-q", "--cached", ".forkman")
        git(victim.root, "commit", "-qm", "untrack .forkman")


def journal_attack(victim: Victim) -> Callable[[Path], None]:
    """A journal that overwrites a file outside, removes a directory and replaces .git/config."""

    def change(clone: Path) -> None:
        txn = clone / ".forkman" / "txn"
        payload = txn / "payload"
        payload.mkdir(parents=True)
        (payload / "b0").write_text("overwritten by a pull request\n")
        (payload / "config").write_text(
            "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
            f'\tfsmonitor = "echo ran >{victim.marker}"\n'
        )
        journal = {
            "fork": "demo",
            "operation": "sync",
            "id": "0123456789ab",
            "dir": str(victim.outside_dir),
            "steps": [
                {"target": str(victim.outside_file), "backup": ".forkman/txn/payload/b0"},
                {"target": ".git/config", "backup": ".forkman/txn/payload/config"},
            ],
            "after": None,
        }
        (txn / "demo.json").write_text(json.dumps(journal))

    return change


def _edit_and_poison_caches(clone: Path) -> None:
    """Edit a vendored file and commit caches that say the edited tree was proven clean."""
    (clone / "vendor" / "demo" / "a.py").write_text("import os; os.system('id')\n")
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "tweak")
    tree_id = git(clone, "rev-parse", "HEAD:vendor/demo").strip()
    lock_text = (clone / "forkman.lock").read_text()
    vendored = lock_text.split('vendored-tree = "', 1)[1].split('"', 1)[0]
    state = clone / ".forkman"
    state.mkdir(exist_ok=True)
    (state / "gittrees").write_bytes(marshal.dumps({vendored: tree_id}))


def _refused(res: subprocess.CompletedProcess[str] | Result) -> None:
    code = res.returncode if isinstance(res, subprocess.CompletedProcess) else res.exit_code
    assert code == 2, res
    stderr = res.stderr
    assert "git tracks" in stderr and ".forkman" in stderr, res
    assert "git rm -r --cached .forkman" in stderr, res


# -- state committed to git: every command refuses it -------------------------------


def test_committed_journal_is_refused_by_check_status_verify(
    victim: Victim, tmp_path: Path
) -> None:
    pull_request(victim, tmp_path, journal_attack(victim))
    res = forkman(victim.root, "check")
    _refused(res)
    victim.assert_untouched()
    _refused(run("status", cwd=victim.root))
    _refused(run("verify", cwd=victim.root))
    victim.assert_untouched()
    # a git command in the project after forkman ran: .git/config was not replaced
    git(victim.root, "status", "--porcelain")
    victim.assert_untouched()


def test_committed_tree_cache_cannot_vouch_for_an_edited_fork(
    victim: Victim, tmp_path: Path
) -> None:
    pull_request(victim, tmp_path, _edit_and_poison_caches)
    _refused(forkman(victim.root, "check"))


@pytest.mark.parametrize(
    "what",
    [
        "lock.cache",
        "config.cache",
        "statcache",
        "actors.sqlite",
        "locks/x.lock",
        "forks/x.git/HEAD",
    ],
)
def test_any_committed_state_file_is_refused(victim: Victim, tmp_path: Path, what: str) -> None:
    def change(clone: Path) -> None:
        path = clone / ".forkman" / what
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"supplied by a pull request\n")

    pull_request(victim, tmp_path, change)
    _refused(forkman(victim.root, "check"))
    _refused(run("status", cwd=victim.root))


def test_committed_symlink_as_state_folder_is_refused(victim: Victim, tmp_path: Path) -> None:
    """`.forkman` a tracked symlink to a folder of the pull request's own."""

    def change(clone: Path) -> None:
        import shutil

        shutil.rmtree(clone / ".forkman", ignore_errors=True)
        journal_attack(victim)(clone)
        os.rename(clone / ".forkman", clone / "state")
        os.symlink("state", clone / ".forkman")

    import shutil

    shutil.rmtree(victim.root / ".forkman")  # a fresh clone of the pull request has none
    pull_request(victim, tmp_path, change)
    assert (victim.root / ".forkman").is_symlink()
    _refused(forkman(victim.root, "check"))
    _refused(run("status", cwd=victim.root))
    victim.assert_untouched()


# -- the same state left untracked: validated, or ignored ---------------------------


def test_untracked_hostile_journal_is_refused_and_nothing_touched(
    victim: Victim, tmp_path: Path
) -> None:
    pull_request(victim, tmp_path, journal_attack(victim), untrack=True)
    journal = victim.root / ".forkman" / "txn" / "demo.json"
    before = journal.read_bytes()
    res = forkman(victim.root, "check")
    assert res.returncode == 2, res
    assert "journal" in res.stderr and ".forkman/txn/demo.json" in res.stderr, res
    victim.assert_untouched()
    status = run("status", cwd=victim.root)
    assert status.exit_code == 2 and ".forkman/txn/demo.json" in status.stderr, status
    victim.assert_untouched()
    assert journal.read_bytes() == before, "an invalid journal is refused, never repaired"
    git(victim.root, "status", "--porcelain")
    victim.assert_untouched()


def _valid_looking_journal(root: Path, steps: list[dict[str, object]]) -> Path:
    txn = root / ".forkman" / "txn"
    txn.mkdir(parents=True, exist_ok=True)
    journal = txn / "demo.json"
    journal.write_text(
        json.dumps(
            {
                "fork": "demo",
                "operation": "sync",
                "id": "0123456789ab",
                "dir": ".forkman/txn/demo.0123456789ab",
                "steps": steps,
                "after": None,
            }
        )
    )
    return journal


@pytest.mark.parametrize(
    "target",
    [
        "../outside/secret.txt",
        "vendor/../../outside/secret.txt",
        ".git/config",
        ".git/hooks/pre-commit",
        "src/app.py",
        ".forkman/forks/other.git",
        "patches/other/0001-x.patch",
        "vendor/demo/./a.py",
        "",
    ],
)
def test_journal_naming_what_the_fork_may_not_touch_is_refused(victim: Victim, target: str) -> None:
    own = victim.root / "src" / "app.py"
    own.parent.mkdir()
    own.write_text("the project's own code\n")
    journal = _valid_looking_journal(victim.root, [{"target": target, "backup": None}])
    res = forkman(victim.root, "check")
    assert res.returncode == 2 and ".forkman/txn/demo.json" in res.stderr, res
    assert own.read_text() == "the project's own code\n"
    assert (victim.root / "vendor" / "demo" / "a.py").exists()
    assert journal.exists()
    victim.assert_untouched()


def test_journal_whose_folder_is_a_symlink_elsewhere_is_refused(
    victim: Victim, tmp_path: Path
) -> None:
    """The journal's backup folder leads outside: restoring from it would move what lies
    there into the project (and remove it from where it was)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "b0").write_text("someone else's file\n")
    journal = _valid_looking_journal(
        victim.root, [{"target": "vendor/demo", "backup": ".forkman/txn/demo.0123456789ab/b0"}]
    )
    os.symlink(elsewhere, victim.root / ".forkman" / "txn" / "demo.0123456789ab")
    res = forkman(victim.root, "check")
    assert res.returncode == 2 and "symlink" in res.stderr, res
    assert (elsewhere / "b0").read_text() == "someone else's file\n"
    assert (victim.root / "vendor" / "demo" / "a.py").read_text() == "a = 1\n"
    assert journal.exists()
    victim.assert_untouched()


def test_journal_target_through_a_symlinked_parent_is_refused(victim: Victim) -> None:
    """A file of the fork's own patch series, whose folder is a symlink to elsewhere."""
    (victim.root / "patches").mkdir(exist_ok=True)
    os.symlink(victim.outside_dir, victim.root / "patches" / "demo")
    _valid_looking_journal(victim.root, [{"target": "patches/demo/keep.txt", "backup": None}])
    res = forkman(victim.root, "check")
    assert res.returncode == 2 and "symlink" in res.stderr, res
    victim.assert_untouched()


def test_journal_ref_step_outside_the_forks_history_is_refused(victim: Victim) -> None:
    _valid_looking_journal(
        victim.root, [{"ref": "refs/heads/main", "git_dir": ".git", "old": None}]
    )
    head = git(victim.root, "rev-parse", "HEAD")
    res = forkman(victim.root, "check")
    assert res.returncode == 2 and ".forkman/txn/demo.json" in res.stderr, res
    assert git(victim.root, "rev-parse", "HEAD") == head


def test_untracked_poisoned_tree_cache_is_ignored(victim: Victim, tmp_path: Path) -> None:
    pull_request(victim, tmp_path, _edit_and_poison_caches, untrack=True)
    res = forkman(victim.root, "check")
    assert res.returncode == 1, res
    assert "vendor/demo/a.py" in res.stdout, res


def test_untracked_poisoned_lock_cache_is_ignored(victim: Victim) -> None:
    """A lock cache holding, under the real lock's digest, a lock that vouches for an edit."""
    import hashlib

    from forkman.model.lock import load_lock_data
    from forkman.store.treehash import hash_manifest, scan_tree

    tree = victim.root / "vendor" / "demo"
    (tree / "a.py").write_text("tampered = True\n")
    text = (victim.root / "forkman.lock").read_text()
    recorded = text.split('vendored-tree = "', 1)[1].split('"', 1)[0]
    tampered = hash_manifest(scan_tree(tree)[0].values())
    data = load_lock_data(text.replace(recorded, tampered))
    fake = (hashlib.sha256(text.encode()).hexdigest(), data, True)
    (victim.root / ".forkman" / "lock.cache").write_bytes(marshal.dumps(fake))
    res = forkman(victim.root, "check")
    assert res.returncode == 1 and "vendor/demo" in res.stdout, res


def test_untracked_poisoned_config_cache_is_ignored(victim: Victim) -> None:
    """A config cache that moves the vendor folder away from the forks."""
    import hashlib

    raw = (victim.root / "pyproject.toml").read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    fake = (digest, "nowhere", "patches", ())
    (victim.root / ".forkman" / "config.cache").write_bytes(marshal.dumps(fake))
    (victim.root / "vendor" / "stray").mkdir()
    (victim.root / "vendor" / "stray" / "x.py").write_text("x = 1\n")
    res = forkman(victim.root, "check")
    assert res.returncode == 1 and "vendor/stray" in res.stdout, res


def test_state_folder_as_untracked_symlink_is_refused(victim: Victim, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere-state"
    os.rename(victim.root / ".forkman", elsewhere)
    os.symlink(elsewhere, victim.root / ".forkman")
    res = forkman(victim.root, "check")
    assert res.returncode == 2 and "symlink" in res.stderr, res
    assert run("status", cwd=victim.root).exit_code == 2


def test_lock_file_symlinked_outside_is_not_followed(victim: Victim) -> None:
    """A mutex or owner file that is a symlink: opening it must not create files elsewhere."""
    txn = victim.root / ".forkman" / "txn"
    txn.mkdir(exist_ok=True)
    targets = []
    for n, path in enumerate((txn / "demo.owner", victim.root / ".forkman" / "lock.mutex")):
        path.unlink(missing_ok=True)
        targets.append(victim.outside_dir / f"created-by-forkman-{n}")
        os.symlink(targets[-1], path)
    _valid_looking_journal(victim.root, [])
    res = run("status", cwd=victim.root)
    assert res.exit_code == 2 and "symlink" in res.stderr, res
    assert not any(t.exists() for t in targets), res
    victim.assert_untouched()


def test_history_hooks_left_in_state_do_not_run(victim: Victim) -> None:
    """A hook inside the fork's history repository (state on disk, not the project's code)."""
    hooks = victim.root / ".forkman" / "forks" / "demo.git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for name in ("reference-transaction", "post-index-change"):
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\necho ran >{victim.marker}\n")
        hook.chmod(0o755)
    (victim.root / "vendor" / "demo" / "a.py").write_text("a = 2\n")
    res = run("patch", "demo", "-m", "change a", cwd=victim.root)
    assert res.exit_code == 0, res
    assert not victim.marker.exists(), "a hook in .forkman/forks/demo.git ran"


def test_forged_transform_cache_entry_is_ignored(tmp_path: Path) -> None:
    """The per-user transform cache is shared by projects: an entry nobody sealed is a miss."""
    from forkman.layouts.transform import TransformCache

    cache = TransformCache(tmp_path / "transform")
    key = "ab" * 32
    (tmp_path / "transform" / "ab").mkdir(parents=True)
    (tmp_path / "transform" / "ab" / key).write_bytes(b"1 0 0\nimport evil\n")
    assert cache.get(key) is None
    cache.put(key, b"1 0 0\nfine\n")
    assert cache.get(key) == b"1 0 0\nfine\n"
    # moved to another key (another file's content): no longer valid
    other = "cd" * 32
    (tmp_path / "transform" / "cd").mkdir()
    os.replace(tmp_path / "transform" / "ab" / key, tmp_path / "transform" / "cd" / other)
    assert cache.get(other) is None


def test_crafted_actor_intent_only_recovers_validated_journals(victim: Victim) -> None:
    """An interrupted intent in the actors database (state left on disk) makes the fork's
    next command recover: recovery goes through the same journal validation, and an
    "unfork" intent never re-runs the operation it names."""
    from forkman.actors._store import StateStore
    from forkman.actors.fork_actor import fork_key
    from forkman.actors.interface import ActorState, Message

    store = StateStore(victim.root / ".forkman" / "actors.sqlite")
    store.begin_intent(fork_key("demo"), Message("unfork", {}), ActorState.WORKING)
    store.close()
    res = run("verify", "demo", cwd=victim.root)
    assert (victim.root / "vendor" / "demo" / "a.py").read_text() == "a = 1\n", res
    assert "demo" in run("status", cwd=victim.root).stdout
    store = StateStore(victim.root / ".forkman" / "actors.sqlite")
    store.begin_intent(fork_key("demo"), Message("sync", {"to": "9"}), ActorState.SYNCING)
    store.close()
    _valid_looking_journal(victim.root, [{"target": "src/app.py", "backup": None}])
    own = victim.root / "src" / "app.py"
    own.parent.mkdir()
    own.write_text("the project's own code\n")
    res = run("verify", "demo", cwd=victim.root)
    assert res.exit_code == 2 and ".forkman/txn/demo.json" in res.stderr, res
    assert own.read_text() == "the project's own code\n"
    victim.assert_untouched()
