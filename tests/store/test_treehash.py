from __future__ import annotations

import os
import time
from pathlib import Path

from forkman.store.treehash import StatCache, hash_manifest, scan_tree, tree_hash


def make(root: Path) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("x = 1\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "run.sh", 0o755)
    os.symlink("pkg/__init__.py", root / "link")


def test_same_content_same_hash_independent_of_order_and_dirs(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make(a)
    make(b)
    (b / "empty").mkdir()  # empty directories do not count (as in git)
    os.chmod(b / "pkg" / "__init__.py", 0o600)  # only the exec bit counts
    assert tree_hash(a) == tree_hash(b)


def test_every_kind_of_change_changes_the_hash(tmp_path: Path) -> None:
    root = tmp_path / "t"
    make(root)
    seen = {tree_hash(root)}
    (root / "pkg" / "__init__.py").write_text("x = 2\n")
    seen.add(tree_hash(root))
    os.chmod(root / "pkg" / "__init__.py", 0o755)
    seen.add(tree_hash(root))
    os.unlink(root / "link")
    os.symlink("run.sh", root / "link")
    seen.add(tree_hash(root))
    os.rename(root / "run.sh", root / "run2.sh")
    seen.add(tree_hash(root))
    assert len(seen) == 5


def test_stat_cache_detects_same_size_edit(tmp_path: Path) -> None:
    root = tmp_path / "t"
    make(root)
    old = time.time() - 100
    for p in root.rglob("*"):
        if not p.is_symlink():
            os.utime(p, (old, old))
    cache_path = tmp_path / "cache"
    cache = StatCache(cache_path)
    first = hash_manifest(scan_tree(root, cache)[0].values())
    cache.save()
    cache2 = StatCache(cache_path)
    assert hash_manifest(scan_tree(root, cache2)[0].values()) == first
    # same size, same mtime forced back: inode ctime still changes
    target = root / "pkg" / "__init__.py"
    target.write_text("x = 9\n")
    os.utime(target, (old, old))
    assert hash_manifest(scan_tree(root, StatCache(cache_path))[0].values()) != first


def test_special_files_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "t"
    make(root)
    os.mkfifo(root / "pipe")
    _manifest, special = scan_tree(root)
    assert [(s.path, s.what) for s in special] == [("pipe", "fifo")]
