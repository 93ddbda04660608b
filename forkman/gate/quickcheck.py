"""The quick path of `forkman check`: prove a clean project with almost no work.

`forkman check` runs on every commit, so its common answer ("everything
matches") must cost about what `git status` costs. This module proves that
answer from three facts, or gives up:

1. the lock's parsed data is cached under ``.forkman/lock.cache`` by the
   sha256 of its text (so a hand edit or a merge is always re-parsed), and
   that text was canonical when it was cached;
2. git reports nothing under the vendor directory (no change in the work tree
   or the index, no untracked file), and ``git ls-tree HEAD`` gives each fork
   directory's committed tree id, all asked in parallel while this process
   reads the lock; the same two git commands also show that git tracks
   nothing under ``.forkman/`` (HEAD has no ``.forkman`` and the index does not
   differ from HEAD there);
3. ``.forkman/gittrees`` maps each fork's lock tree hash (sha256) to the git
   tree id that a full check proved it to be.

Every cache read here is sealed (:mod:`forkman.model.statetrust`): JSON with a MAC
under this user's secret key, bound to the file's path. A cache that does not
verify (written elsewhere, committed by a pull request, copied from another
project) is ignored, and the full check runs.

Patch files are still hashed (they are few and small). When any fact is
missing or disagrees, :func:`quick_clean` returns None and the full check in
:mod:`forkman.gate.check` runs, explains every difference and learns the tree ids
for next time. It imports nothing but :mod:`os`, :mod:`json` and the
builtin sha256 (no :mod:`pathlib`, no :mod:`typing`, none of forkman's
dataclasses): on a warm project those imports would cost more than the whole
check.
"""

from __future__ import annotations

import os

from ..core.git import finish, spawn
from ..model.statetrust import STATE_DIR, read_cache, write_cache

try:  # the builtin module imports in a fraction of hashlib's time
    from _sha256 import sha256 as _sha256  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Python 3.12+ names it _sha2
    from hashlib import sha256 as _sha256


def sha256_hex(data: bytes) -> str:
    """The sha256 hex digest of `data`."""
    return str(_sha256(data).hexdigest())


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _digest(path: str) -> str | None:
    data = _read(path)
    return None if data is None else sha256_hex(data)


def repo_top(start: str | os.PathLike[str]) -> str | None:
    """The top of the git work tree holding `start` (None outside one)."""
    here = os.path.abspath(os.fspath(start))
    while True:
        if os.path.exists(os.path.join(here, ".git")):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def quick_clean(
    root: str | os.PathLike[str],
    vendor_dir: str,
    patches_dir: str,
    names: list[str],
) -> int | None:
    """The number of forks checked when the project is provably clean, else None.

    What ``git status`` would say about the vendor folder is asked in parts,
    limited to that folder and run in parallel while this process reads the
    lock: ``diff-files`` (work tree vs index) and ``diff-index --cached`` (index
    vs HEAD). Files added or removed since the last full check show in the
    modification time of their directory (:func:`dirs_unchanged`), which is
    what git's own untracked cache relies on.
    """
    root = os.path.abspath(os.fspath(root))
    state = os.path.join(root, STATE_DIR)
    vendor = vendor_dir.strip("/") + "/"
    if (
        repo_top(root) is None
        or os.path.islink(state)
        or not os.path.isfile(os.path.join(state, "gittrees"))
    ):
        return None
    # `.forkman` rides along: any tracked state shows in HEAD or as an index change
    commands = [
        ["git", "diff-files", "--quiet", "--", vendor],
        ["git", "diff-index", "--cached", "--quiet", "HEAD", "--", vendor, STATE_DIR],
        ["git", "ls-tree", "-z", "HEAD", "--", vendor, STATE_DIR],
    ]
    procs = []
    wanted = None
    try:
        for command in commands:
            procs.append(spawn(command, root))
        wanted = _expected_trees(root, state, vendor.rstrip("/"), patches_dir, names)
        if wanted is not None and not dirs_unchanged(root, vendor_dir):
            wanted = None
    except OSError:
        wanted = None
    finally:
        results = [finish(*proc) for proc in procs]
    if wanted is None or len(results) != len(commands):
        return None
    (unstaged, _), (staged, _), (trees_code, trees_out) = results
    if unstaged != 0 or staged != 0 or trees_code != 0:
        return None
    committed = {}
    for record in trees_out.split(b"\0"):
        meta, _, path = record.partition(b"\t")
        parts = meta.split()
        if len(parts) == 3:
            committed[os.fsdecode(path)] = parts[2].decode()
    if any(path == STATE_DIR or path.startswith(STATE_DIR + "/") for path in committed):
        return None  # git tracks state: the full check refuses it
    if any(committed.get(path) != tree for path, tree in wanted.items()):
        return None
    return len(wanted)


_DIRS = "vendordirs"
# Directory timestamps come from the kernel's coarse clock (a few milliseconds a
# tick): a change within the same tick as the recording could keep the stamp.
_RACY_NS = 200_000_000


def _dir_stamps(vendor_path: str) -> dict[str, tuple[int, int]] | None:
    stamps: dict[str, tuple[int, int]] = {}
    stack = [vendor_path]
    while stack:
        path = stack.pop()
        try:
            st = os.stat(path)
            entries = os.scandir(path)
        except OSError:
            return None
        stamps[path] = (st.st_mtime_ns, st.st_ctime_ns)
        with entries:
            stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
    return stamps


def record_dirs(root: str | os.PathLike[str], vendor_dir: str) -> None:
    """Remember every directory under the vendor folder after a clean full check.

    Directories changed in the last fraction of a second are not trusted (their
    next change could carry the same timestamp): nothing is recorded then.
    """
    import time

    root = os.path.abspath(os.fspath(root))
    stamps = _dir_stamps(os.path.join(root, vendor_dir.strip("/")))
    if not stamps:
        return
    now = time.time_ns()
    if any(now - max(m, c) < _RACY_NS for m, c in stamps.values()):
        return
    write_cache(os.path.join(root, STATE_DIR, _DIRS), _DIRS, stamps)


def forget_dirs(root: str | os.PathLike[str]) -> None:
    """Drop the recorded directories (the next check is a full one)."""
    path = os.path.join(os.fspath(root), STATE_DIR, _DIRS)
    if os.path.lexists(path):
        os.unlink(path)


def dirs_unchanged(root: str, vendor_dir: str) -> bool:
    """Whether no entry was added to or removed from any vendored directory."""
    recorded = read_cache(os.path.join(root, STATE_DIR, _DIRS), _DIRS)
    if not isinstance(recorded, dict) or os.path.join(root, vendor_dir.strip("/")) not in recorded:
        return False
    for path, stamp in recorded.items():
        try:
            st = os.stat(path)
        except OSError:
            return False
        if [st.st_mtime_ns, st.st_ctime_ns] != stamp:
            return False
    return True


def _expected_trees(
    root: str, state: str, vendor: str, patches_dir: str, names: list[str]
) -> dict[str, str] | None:
    """Fork path -> proven git tree id, if the lock and patches allow the quick path."""
    text = _read(os.path.join(root, "forkman.lock"))
    if text is None:
        return None
    cached = read_cache(os.path.join(state, "lock.cache"), "lock.cache")
    known = read_cache(os.path.join(state, "gittrees"), "gittrees")
    if not (isinstance(cached, list) and len(cached) == 3 and cached[2] is True):
        return None
    if cached[0] != sha256_hex(text) or not isinstance(known, dict):
        return None
    forks = cached[1].get("forks", {})
    if names and not set(names) <= set(forks):
        return None
    wanted: dict[str, str] = {}
    for name, table in forks.items():
        path = table.get("path", "")
        rest = path[len(vendor) + 1 :]
        if "namespace" in table or not path.startswith(vendor + "/") or "/" in rest:
            return None
        if names and name not in names:
            continue
        tree = known.get(table.get("vendored-tree"))
        if tree is None:
            return None
        wanted[path] = tree
        recorded = set()
        for patch in table.get("patches", []):
            if not str(patch.get("file", "")).startswith(f"{patches_dir}/{name}/"):
                return None  # the full check refuses a patch outside its series folder
            recorded.add(patch.get("file"))
            if _digest(os.path.join(root, patch.get("file", ""))) != patch.get("sha256"):
                return None
        series = os.path.join(root, patches_dir, name)
        if os.path.isdir(series) and any(
            f"{patches_dir}/{name}/{entry}" not in recorded
            for entry in os.listdir(series)
            if entry.endswith(".patch")
        ):
            return None
    if not names and not _all_claimed(os.path.join(root, vendor), vendor, forks):
        return None
    return wanted


def _all_claimed(vendor_path: str, vendor: str, forks: dict[str, dict[str, str]]) -> bool:
    """Whether every directory in the vendor folder belongs to a fork."""
    claimed = {table.get("path") for table in forks.values()}
    try:
        children = os.scandir(vendor_path)
    except OSError:
        return True
    with children:
        return all(
            f"{vendor}/{child.name}" in claimed
            for child in children
            if child.is_dir() and not child.name.startswith(".")
        )
