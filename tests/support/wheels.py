"""Real wheels of installed distributions, for the local test index (no network).

`forkman test` installs pytest and a fork's build requirements (setuptools)
from the configured index as wheels. Tests serve them from the local index:
each wheel is repacked, file by file, from the distribution installed in the
environment running the tests (the same bytes pip unpacked from the real
wheel), with a fresh RECORD.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import importlib.metadata as md
import shutil
import tempfile
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.index import LocalIndex

_SKIP_META = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def wheel_of_installed(name: str, dest: Path) -> Path:
    """``<name>-<version>-py3-none-any.whl`` rebuilt from the installed distribution."""
    dist = md.distribution(name)
    meta_name = dist.metadata["Name"]
    version = dist.version
    stem = f"{canonicalize_name(meta_name).replace('-', '_')}-{version}"
    path = dest / f"{stem}-py3-none-any.whl"
    if path.is_file():
        return path
    files: dict[str, bytes] = {}
    distinfo = ""
    for f in dist.files or ():
        rel = f.as_posix()
        if "__pycache__" in rel or rel.startswith("..") or rel.endswith(".pyc"):
            continue
        top = rel.split("/", 1)[0]
        if top.endswith(".dist-info"):
            distinfo = top
            if rel.split("/")[-1] in _SKIP_META:
                continue
        located = Path(str(f.locate()))
        if located.is_file():
            files[rel] = located.read_bytes()
    assert distinfo, f"{name} has no dist-info"
    files[f"{distinfo}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: forkman-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for rel, raw in sorted(files.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).rstrip(b"=").decode()
        record.append(f"{rel},sha256={digest},{len(raw)}")
    record.append(f"{distinfo}/RECORD,,")
    files[f"{distinfo}/RECORD"] = ("\n".join(record) + "\n").encode()
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in sorted(files):
            zi = zipfile.ZipInfo(rel, date_time=(2023, 11, 14, 22, 13, 20))
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, files[rel])
    return path


_built: list[Path] = []


def _wheel_dir() -> Path:
    """One folder of repacked wheels per test process (they never change within it)."""
    if not _built:
        _built.append(Path(tempfile.mkdtemp(prefix="forkman-test-wheels-")))
        atexit.register(shutil.rmtree, _built[0], True)
    return _built[0]


def serve_installed(index: LocalIndex, *names: str) -> None:
    """Put the wheels of `names` and of everything they require (here) on `index`."""
    todo = list(names)
    done: set[str] = set()
    while todo:
        name = canonicalize_name(todo.pop())
        if name in done:
            continue
        done.add(name)
        index.add_file(name, wheel_of_installed(name, _wheel_dir()))
        for raw in md.requires(name) or ():
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)


def serve_test_runner(index: LocalIndex) -> None:
    """pytest (and its dependencies) and setuptools, as a real index would offer them."""
    serve_installed(index, "pytest", "setuptools")
