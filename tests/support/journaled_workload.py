"""A multi-fork workload of journaled file changes, run through the fork actors.

Each fork `name` has a vendored tree ``vendor/<name>/`` (three files that all
carry the fork's version) and an entry in the shared ``work.lock`` (TOML:
version and tree hash). ``bump`` moves one fork to a version: it journals
its intent, stages the new tree, swaps it in with ``replace_dir`` and then
rewrites the lock atomically (under :func:`shared_file_guard`). It is
idempotent, and a rerun finishes an interrupted bump (the default recovery).

Run as a program (``python -m tests.support.journaled_workload ROOT FORKS
ROUNDS``) it raises every fork ROUNDS versions through the actors; the crash
test SIGKILLs it at random moments and checks with :func:`check_consistency`.
"""

from __future__ import annotations

import sys
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from forkman.actors import (
    ActorContext,
    ActorState,
    Message,
    OperationArgs,
    OperationResult,
    fork_key,
    open_engine,
    register_operation,
)
from forkman.actors._store import StateStore
from forkman.actors.embedded import DB_NAME
from forkman.core.fs import atomic_write_text, remove_tree, replace_dir, staging_dir
from forkman.model.project import Project
from forkman.store.treehash import tree_hash

FILES = ("a.py", "b.py", "data.txt")
LOCK = "work.lock"


def read_lock(root: Path) -> dict[str, dict[str, Any]]:
    path = root / LOCK
    if not path.exists():
        return {}
    return {k: dict(v) for k, v in tomllib.loads(path.read_text()).items()}


def write_lock(root: Path, lock: Mapping[str, Mapping[str, Any]]) -> None:
    lines = []
    for name in sorted(lock):
        entry = lock[name]
        lines += [f"[{name}]", f"version = {entry['version']}", f'tree = "{entry["tree"]}"', ""]
    atomic_write_text(root / LOCK, "\n".join(lines))


def tree_version(tree: Path) -> int | None:
    """The one version all files of `tree` carry; None if absent; error if mixed."""
    if not tree.exists():
        return None
    versions = set()
    for name in FILES:
        path = tree / name
        if not path.exists():
            raise AssertionError(f"{tree} is missing {name}: a partial tree")
        versions.add(path.read_text().splitlines()[0])
    if len(versions) != 1:
        raise AssertionError(f"{tree} mixes versions {sorted(versions)}")
    return int(versions.pop().split()[-1])


@dataclass(frozen=True)
class BumpResult(OperationResult):
    version: int


@dataclass(frozen=True)
class BumpArgs(OperationArgs[BumpResult]):
    KIND: ClassVar[str] = "bump"
    version: int


def bump(project: Project, name: str, args: BumpArgs, ctx: ActorContext) -> BumpResult:
    from forkman.actors import shared_file_guard

    root = project.root
    target = args.version
    tree = root / "vendor" / name
    current = read_lock(root).get(name, {}).get("version", 0)
    trash = project.state_dir / "trash" / name
    if current >= target and tree_version(tree) == current:
        remove_tree(trash)
        return BumpResult(current)
    ctx.journal({"from": current, "to": target})
    if tree_version(tree) != target:
        ctx.step(f"staging {target}")
        with staging_dir(project.state_dir / "staging", f"{name}-") as stage:
            for file in FILES:
                atomic_write_text(stage / file, f"{name} {target}\n" + "x" * 20_000 + "\n")
            ctx.step("swapping tree")
            replace_dir(stage, tree, trash)
    ctx.step("writing lock")
    with shared_file_guard(project, LOCK):
        lock = read_lock(root)
        lock[name] = {"version": target, "tree": tree_hash(tree)}
        write_lock(root, lock)
    remove_tree(trash)  # a swap interrupted by a crash left the old tree here
    return BumpResult(target)


BUMP = register_operation(BumpArgs, BumpResult, bump)


@dataclass(frozen=True)
class ScriptedSyncResult(OperationResult):
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"version", "files"})
    version: str | None = None
    files: tuple[str, ...] | None = None

    def actor_state(self) -> ActorState | None:
        return ActorState.CONFLICT if self.files is not None else None


@dataclass(frozen=True)
class ScriptedSyncArgs(OperationArgs[ScriptedSyncResult]):
    KIND: ClassVar[str] = "sync"
    to: str
    sleep: float = 0.0


def scripted_sync(
    project: Project, name: str, args: ScriptedSyncArgs, ctx: ActorContext
) -> ScriptedSyncResult:
    """A stand-in "sync" whose outcome depends on the fork's name (conflicted, broken)."""
    from forkman.core.errors import NotFound

    ctx.step(f"merging {args.to}")
    time.sleep(args.sleep)
    if name == "conflicted":
        return ScriptedSyncResult(files=("a.py",))
    if name == "broken":
        raise NotFound(f"{name} {args.to} is not on the index")
    return ScriptedSyncResult(version=args.to)


def fork_names(count: int) -> list[str]:
    return [f"pkg{i}" for i in range(count)]


def run(root: Path, forks: int, rounds: int, jobs: int = 2) -> None:
    project = Project(root)
    names = fork_names(forks)
    start = min((read_lock(root).get(n, {}).get("version", 0) for n in names), default=0)
    with open_engine(project, jobs=jobs, wait=30.0) as engine:
        for version in range(start + 1, start + rounds + 1):
            replies = engine.ask_many(
                {fork_key(n): Message("bump", {"version": version}) for n in names}
            )
            for name, reply in replies.items():
                if not reply.ok:
                    raise SystemExit(f"{name}: {reply.error}")


def check_consistency(root: Path, forks: int, *, strict: bool) -> int:
    """Check vendored trees, the lock and the actors' state agree; return how many forks
    had an interrupted intent. `strict`: after recovery, no intent may remain."""
    names = fork_names(forks)
    lock = read_lock(root)
    db = root / ".forkman" / DB_NAME
    statuses = {}
    if db.exists():
        store = StateStore(db)
        try:
            statuses = store.statuses("fork:")
        finally:
            store.close()
    interrupted = 0
    for name in names:
        status = statuses.get(fork_key(name))
        intent = status.intent if status else None
        entry = lock.get(name)
        tree = root / "vendor" / name
        version = tree_version(tree)
        trash = root / ".forkman" / "trash" / name
        if intent is None:
            if entry is None:
                assert version is None, f"{name}: tree without lock entry"
                continue
            assert version == entry["version"], f"{name}: tree {version} vs lock {entry}"
            assert tree_hash(tree) == entry["tree"], f"{name}: tree hash disagrees with the lock"
            assert status is not None and status.last_result is not None
            assert status.last_result["result"]["version"] == entry["version"], (
                f"{name}: state {status.last_result} vs lock {entry}"
            )
            continue
        assert not strict, f"{name}: intent {intent} left after recovery"
        interrupted += 1
        old = (entry or {}).get("version", 0)
        new = int(intent.message.args["version"])
        if version is None and old:
            # killed between the two renames of the swap: the old tree is in the trash
            olds = list(trash.glob("*/tree"))
            assert olds and tree_version(olds[0]) == old, f"{name}: tree lost mid-swap"
        else:
            assert version in (old, new, None), f"{name}: tree {version} is neither {old} nor {new}"
        if entry is not None and version == entry["version"]:
            assert tree_hash(tree) == entry["tree"], f"{name}: tree hash disagrees with the lock"
    return interrupted


def recover(root: Path) -> None:
    """The next command: activate every interrupted fork actor so it recovers."""
    from forkman.actors.embedded import EmbeddedEngine
    from forkman.actors.fork_actor import ForkActorFactory

    project = Project(root)
    engine = EmbeddedEngine(project.state_dir, ForkActorFactory(project, {"bump": BUMP}), wait=30.0)
    try:
        engine.recover_all("fork:")
    finally:
        engine.shutdown()


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
