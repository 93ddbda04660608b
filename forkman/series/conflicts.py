"""Git's conflict markers in a tree a sync paused at: name their sides, find what is left."""

from __future__ import annotations

from pathlib import Path

_MARKERS = (b"<<<<<<< ", b">>>>>>> ")


def label_markers(path: Path, ours: str, theirs: str) -> None:
    """Name the two sides of git's conflict markers for the reader."""
    if not path.is_file() or path.is_symlink():
        return
    data = path.read_bytes()
    out = []
    changed = False
    for line in data.splitlines(keepends=True):
        body = line.rstrip(b"\r\n")
        end = line[len(body) :]
        if body == b"<<<<<<< HEAD":
            line, changed = b"<<<<<<< " + ours.encode() + end, True
        elif body.startswith(b">>>>>>> ") and body != b">>>>>>> ":
            line, changed = b">>>>>>> " + theirs.encode() + end, True
        out.append(line)
    if changed:
        path.write_bytes(b"".join(out))


def has_markers(path: Path) -> bool:
    """Whether `path` still holds conflict markers."""
    if not path.is_file() or path.is_symlink():
        return False
    return any(
        line.startswith(_MARKERS) or line == b"=======" for line in path.read_bytes().splitlines()
    )
