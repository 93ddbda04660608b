"""The quick path of `forkman check`: prove a clean project with almost no work.

`forkman check` runs on every commit, so its common answer ("everything
matches") must cost about what `git status` costs. This module proves that
answer from three facts, or gives up:

1. the lock's parsed data is cached under ``.forkman/lock.cache`` by the
   sha256 of its text (so a hand edit or a merge is always re-parsed), and
   that text was canonical when it was cached;
2. ``git status`` reports nothing under the vendor directory (no change in the
   work tree or the index, no untracked file), and ``git ls-tree HEAD``
   gives each fork directory's committed tree id, both started first thing
   and run while this process reads the lock;
3. ``.forkman/gittrees`` maps each fork's lock tree hash (sha256) to the git
   tree id that a full check proved it to be.

Patch files are still hashed (they are few and small). When any fact is
missing or disagrees, :func:`quick_clean` returns None and the full check in
:mod:`forkman._check` runs, explains every difference and learns the tree ids
for next time. It imports nothing but :mod:`os`, :mod:`marshal` and the
builtin sha256 (no :mod:`pathlib`, no :mod:`typing`, none of forkman's
dataclasses): on a warm project those imports would cost more than the whole
check.
"""

from __future__ import annotations

import marshal
import os

from ._gitstatus import collect as _collect
from ._gitstatus import spawn, start_status

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
    status: tuple[int, int] | None = None,
) -> int | None:
    """The number of forks checked when the project is provably clean, else None.

    `status` is a ``git status`` started by :func:`forkman._gitstatus.start_status`
    (one is started here when absent); it is always collected.
    """
    root = os.path.abspath(os.fspath(root))
    if status is None:
        status = start_status(root)
    trees = None
    wanted = None
    try:
        state = os.path.join(root, ".forkman")
        vendor = vendor_dir.strip("/")
        top = repo_top(root)
        if status is None or top is None or not os.path.isfile(os.path.join(state, "gittrees")):
            return None
        try:
            trees = spawn(["git", "ls-tree", "-z", "HEAD", "--", vendor + "/"], root)
        except OSError:
            return None
        wanted = _expected_trees(root, state, vendor, patches_dir, names)
    finally:
        status_out = _collect(*status) if status is not None else None
        trees_out = _collect(*trees) if trees is not None else None
    if wanted is None or status_out is None or trees_out is None or top is None:
        return None
    prefix = os.path.relpath(os.path.join(root, vendor), top).replace(os.sep, "/") + "/"
    if any(record[3:].startswith(os.fsencode(prefix)) for record in _records(status_out)):
        return None
    committed = {}
    for record in trees_out.split(b"\0"):
        meta, _, path = record.partition(b"\t")
        parts = meta.split()
        if len(parts) == 3:
            committed[os.fsdecode(path)] = parts[2].decode()
    if any(committed.get(path) != tree for path, tree in wanted.items()):
        return None
    return len(wanted)


def _records(status_out: bytes) -> list[bytes]:
    """The entries of ``git status --porcelain=v1 -z`` (both names of a rename)."""
    fields = status_out.split(b"\0")
    out: list[bytes] = []
    i = 0
    while i < len(fields):
        field = fields[i]
        i += 1
        if len(field) < 4:
            continue
        out.append(field)
        if field[:1] in (b"R", b"C") and i < len(fields):
            out.append(b"   " + fields[i])  # the original name, in the same shape
            i += 1
    return out


def _expected_trees(
    root: str, state: str, vendor: str, patches_dir: str, names: list[str]
) -> dict[str, str] | None:
    """Fork path -> proven git tree id, if the lock and patches allow the quick path."""
    text = _read(os.path.join(root, "forkman.lock"))
    raw_cache = _read(os.path.join(state, "lock.cache"))
    raw_known = _read(os.path.join(state, "gittrees"))
    if text is None or raw_cache is None or raw_known is None:
        return None
    try:
        cached: object = marshal.loads(raw_cache)
        known: object = marshal.loads(raw_known)
    except (EOFError, ValueError, TypeError):
        return None
    if not (isinstance(cached, tuple) and len(cached) == 3 and cached[2] is True):
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
