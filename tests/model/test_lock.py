from __future__ import annotations

from pathlib import Path

import pytest

from forkman.core.errors import LockError
from forkman.model.lock import (
    GitSource,
    IndexSource,
    Lock,
    LockEntry,
    PatchRecord,
    dump_lock,
    load_lock,
    parse_lock,
    write_lock,
)


def entry(name: str, **kw: object) -> LockEntry:
    base: dict[str, object] = dict(
        name=name,
        version="1.0",
        path=f"vendor/{name}",
        source=IndexSource(
            "https://pypi.org/simple/",
            f"https://files.example/{name}-1.0.tar.gz",
            f"{name}-1.0.tar.gz",
            "a" * 64,
            f"{name}==1.0",
        ),
        upstream_tree="sha256:" + "1" * 64,
        vendored_tree="sha256:" + "2" * 64,
        fetched="2026-11-26T12:00:00Z",
    )
    base.update(kw)
    return LockEntry(**base)  # type: ignore[arg-type]


def test_roundtrip_with_everything() -> None:
    lock = (
        Lock()
        .with_entry(
            entry(
                "attrs",
                patches=(PatchRecord("patches/attrs/0001-a.patch", "b" * 64, ("PYSEC-2024-1",)),),
                sections={
                    "test": {"passed": 3, "failed": 0, "tier": "namespaces"},
                    "provenance": {"publisher": {"kind": "github", "repository": "o/r"}},
                    "audit": {"vulnerabilities": [{"id": "X", "fixed": ["1.1"]}]},
                },
            )
        )
        .with_entry(entry("from-git", source=GitSource("https://h/o/r.git", "v1", "c" * 40, "sub")))
    )
    text = dump_lock(lock)
    assert parse_lock(text) == lock
    assert dump_lock(parse_lock(text)) == text


def test_stable_order_regardless_of_insertion() -> None:
    a = Lock().with_entry(entry("b")).with_entry(entry("a"))
    b = Lock().with_entry(entry("a")).with_entry(entry("b"))
    assert dump_lock(a) == dump_lock(b)
    assert dump_lock(a).index("[forks.a]") < dump_lock(a).index("[forks.b]")


def test_adding_a_fork_is_a_local_diff() -> None:
    one = dump_lock(Lock().with_entry(entry("a")).with_entry(entry("c")))
    two = dump_lock(Lock().with_entry(entry("a")).with_entry(entry("b")).with_entry(entry("c")))
    assert one.splitlines()[:12] == two.splitlines()[:12]
    assert two.endswith(one.split("[forks.c]")[1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = [", "not valid TOML"),
        ("[forks]\n", "missing lock format version"),
        ("version = 99\n", "lock format 99"),
        ('version = 1\n[forks.a]\nversion = "1"\n', "missing or invalid 'path'"),
        (
            'version = 1\n[forks.a]\nversion="1"\npath="../x"\nfetched="t"\n'
            'upstream-tree="x"\nvendored-tree="y"\n[forks.a.source]\ntype="index"\n',
            "path must stay inside",
        ),
        (
            'version = 1\n[forks.a]\nversion="1"\npath="v/a"\nfetched="t"\n'
            'upstream-tree="x"\nvendored-tree="y"\n[forks.a.source]\ntype="svn"\n',
            "unknown source type",
        ),
        (
            'version = 1\n[forks.a]\nversion="1"\npath="v/a"\nfetched="t"\n'
            'upstream-tree="x"\nvendored-tree="y"\n[forks.a.source]\ntype="git"\n'
            'url="u"\nref="r"\ncommit="abc"\n',
            "full hex commit",
        ),
    ],
)
def test_invalid_locks(text: str, message: str) -> None:
    with pytest.raises(LockError, match=message):
        parse_lock(text)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "forkman.lock"
    write_lock(path, Lock().with_entry(entry("a")))
    write_lock(path, Lock().with_entry(entry("b")))
    assert [p.name for p in tmp_path.iterdir()] == ["forkman.lock"]
    assert set(load_lock(path).forks) == {"b"}
    assert load_lock(tmp_path / "absent.lock") == Lock()
