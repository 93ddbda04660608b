"""A real PEP 503 / PEP 691 package index on 127.0.0.1, serving archives built in the test.

``LocalIndex`` builds real sdists (``.tar.gz``) and wheels (``.whl``) from a
dict of files, and serves them over HTTP with the simple API in both forms:
HTML (PEP 503) and JSON (PEP 691, chosen by the ``Accept`` header). Tests can
mark files yanked, serve PEP 740 provenance, corrupt a file after its hash was
announced, or turn JSON off to exercise the HTML path.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import tarfile
import threading
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name

# Fixed timestamp so archives built twice are byte-identical.
EPOCH = 1_700_000_000


def _norm_filename_part(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def default_project_files(name: str, version: str) -> dict[str, str]:
    """A minimal, installable setuptools project with a test suite."""
    mod = _norm_filename_part(name)
    return {
        "pyproject.toml": (
            '[build-system]\nrequires = ["setuptools>=61"]\n'
            'build-backend = "setuptools.build_meta"\n\n'
            f'[project]\nname = "{name}"\nversion = "{version}"\n'
            'requires-python = ">=3.8"\n\n'
            '[tool.setuptools.packages.find]\nwhere = ["src"]\n'
        ),
        f"src/{mod}/__init__.py": (
            f'"""The {name} package."""\n\n__version__ = "{version}"\n\n\n'
            "def greet(who):\n    return 'hello ' + who\n"
        ),
        "tests/test_basic.py": (
            f"from {mod} import greet\n\n\ndef test_greet():\n    assert greet('x') == 'hello x'\n"
        ),
        "README.md": f"# {name}\n\nVersion {version}.\n",
        "LICENSE": "MIT License\n\nPermission is hereby granted, free of charge...\n",
    }


def build_sdist(
    dest: Path, name: str, version: str, files: Mapping[str, str | bytes] | None = None
) -> Path:
    """Write ``<name>-<version>.tar.gz`` with a single top-level directory."""
    files = dict(files if files is not None else default_project_files(name, version))
    stem = f"{_norm_filename_part(name)}-{version}"
    files.setdefault("PKG-INFO", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    path = dest / f"{stem}.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(files):
            data = files[rel]
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(f"{stem}/{rel}")
            info.size = len(raw)
            info.mtime = EPOCH
            info.mode = 0o755 if rel.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(raw))
    path.write_bytes(buf.getvalue())
    return path


def build_wheel(
    dest: Path, name: str, version: str, files: Mapping[str, str | bytes] | None = None
) -> Path:
    """Write a pure-Python wheel with a dist-info and RECORD."""
    mod = _norm_filename_part(name)
    if files is None:
        files = {f"{mod}/__init__.py": f'__version__ = "{version}"\n'}
    distinfo = f"{mod}-{version}.dist-info"
    all_files: dict[str, bytes] = {
        k: (v.encode() if isinstance(v, str) else v) for k, v in files.items()
    }
    all_files[f"{distinfo}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    ).encode()
    all_files[f"{distinfo}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: forkman-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record_lines = []
    for rel, raw in sorted(all_files.items()):
        digest = hashlib.sha256(raw).digest()
        import base64

        b64 = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record_lines.append(f"{rel},sha256={b64},{len(raw)}")
    record_lines.append(f"{distinfo}/RECORD,,")
    all_files[f"{distinfo}/RECORD"] = ("\n".join(record_lines) + "\n").encode()
    path = dest / f"{mod}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in sorted(all_files):
            zi = zipfile.ZipInfo(rel, date_time=(2023, 11, 14, 22, 13, 20))
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, all_files[rel])
    return path


@dataclass
class IndexedFile:
    """A file the index serves."""

    path: Path
    yanked: bool | str = False
    requires_python: str | None = None
    provenance: bytes | None = None
    announced_sha256: str | None = None  # override what the index claims

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass
class LocalIndex:
    """A package index served from memory; ``url`` is its simple-API root."""

    root: Path
    projects: dict[str, list[IndexedFile]] = field(default_factory=dict)
    serve_json: bool = True
    serve_hashes: bool = True
    requests: list[str] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    # -- building -----------------------------------------------------------------
    def add_file(self, name: str, path: Path, **kw: object) -> IndexedFile:
        entry = IndexedFile(path, **kw)  # type: ignore[arg-type]
        self.projects.setdefault(canonicalize_name(name), []).append(entry)
        return entry

    def add_sdist(
        self,
        name: str,
        version: str,
        files: Mapping[str, str | bytes] | None = None,
        **kw: object,
    ) -> IndexedFile:
        folder = self.root / "files"
        folder.mkdir(parents=True, exist_ok=True)
        return self.add_file(name, build_sdist(folder, name, version, files), **kw)

    def add_wheel(
        self,
        name: str,
        version: str,
        files: Mapping[str, str | bytes] | None = None,
        **kw: object,
    ) -> IndexedFile:
        folder = self.root / "files"
        folder.mkdir(parents=True, exist_ok=True)
        return self.add_file(name, build_wheel(folder, name, version, files), **kw)

    def file_url(self, entry: IndexedFile) -> str:
        return f"{self.base}/files/{entry.path.name}"

    @property
    def base(self) -> str:
        return self.url.rsplit("/simple/", 1)[0]

    # -- serving ------------------------------------------------------------------
    def start(self) -> LocalIndex:
        self._server = _IndexServer(self)
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/simple/"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


JSON_TYPE = "application/vnd.pypi.simple.v1+json"


def _project_list_json(names: list[str]) -> bytes:
    projects = [{"name": n} for n in names]
    return json.dumps({"meta": {"api-version": "1.1"}, "projects": projects}).encode()


def _project_list_html(names: list[str]) -> bytes:
    links = "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
    return f"<html><body>{links}</body></html>".encode()


def _file_json(index: LocalIndex, f: IndexedFile) -> dict[str, object]:
    d: dict[str, object] = {
        "filename": f.path.name,
        "url": f"../../files/{f.path.name}",
        "hashes": {"sha256": f.announced_sha256 or f.sha256} if index.serve_hashes else {},
    }
    if f.yanked:
        d["yanked"] = f.yanked
    if f.requires_python:
        d["requires-python"] = f.requires_python
    if f.provenance is not None:
        d["provenance"] = f"{index.base}/provenance/{f.path.name}"
    return d


def _project_json(index: LocalIndex, name: str, files: list[IndexedFile]) -> bytes:
    out = [_file_json(index, f) for f in files]
    return json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": out}).encode()


def _file_link(index: LocalIndex, f: IndexedFile) -> str:
    frag = f"#sha256={f.announced_sha256 or f.sha256}" if index.serve_hashes else ""
    attrs = f' href="../../files/{f.path.name}{frag}"'
    if f.yanked:
        reason = f.yanked if isinstance(f.yanked, str) else ""
        attrs += f' data-yanked="{html.escape(reason)}"'
    if f.requires_python:
        attrs += f' data-requires-python="{html.escape(f.requires_python)}"'
    if f.provenance is not None:
        attrs += f' data-provenance="{index.base}/provenance/{f.path.name}"'
    return f"<a{attrs}>{f.path.name}</a><br/>"


def _project_html(index: LocalIndex, name: str, files: list[IndexedFile]) -> bytes:
    links = [_file_link(index, f) for f in files]
    return (
        "<!DOCTYPE html><html><body><h1>Links for "
        + name
        + "</h1>\n"
        + "\n".join(links)
        + "\n</body></html>"
    ).encode()


class _IndexServer(ThreadingHTTPServer):
    """The HTTP server of one `LocalIndex`, on a free port of 127.0.0.1."""

    daemon_threads = True

    def __init__(self, index: LocalIndex) -> None:
        super().__init__(("127.0.0.1", 0), _IndexHandler)
        self.index = index


class _IndexHandler(BaseHTTPRequestHandler):
    server: _IndexServer

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:  # uv probes for range requests; a GET follows
        self.server.index.requests.append(f"HEAD {self.path}")
        self.send_error(405)

    def do_GET(self) -> None:
        index = self.server.index
        index.requests.append(self.path)
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if parts[:1] == ["simple"]:
            want_json = index.serve_json and JSON_TYPE in self.headers.get("Accept", "")
            if len(parts) == 1:
                return self._project_list(want_json)
            return self._project(parts[1], want_json)
        if parts[:1] == ["files"] and len(parts) == 2:
            return self._file(parts[1])
        if parts[:1] == ["provenance"] and len(parts) == 2:
            return self._provenance(parts[1])
        self.send_error(404)

    def _send(self, body: bytes, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _project_list(self, want_json: bool) -> None:
        names = sorted(self.server.index.projects)
        if want_json:
            return self._send(_project_list_json(names), JSON_TYPE)
        self._send(_project_list_html(names), "text/html")

    def _project(self, raw_name: str, want_json: bool) -> None:
        index = self.server.index
        name = canonicalize_name(raw_name)
        if name != raw_name:
            self.send_response(301)
            self.send_header("Location", f"/simple/{name}/")
            self.end_headers()
            return
        files = index.projects.get(name)
        if files is None:
            return self.send_error(404)
        if want_json:
            return self._send(_project_json(index, name, files), JSON_TYPE)
        self._send(_project_html(index, name, files), "text/html")

    def _find(self, filename: str) -> IndexedFile | None:
        for files in self.server.index.projects.values():
            for f in files:
                if f.path.name == filename:
                    return f
        return None

    def _file(self, filename: str) -> None:
        f = self._find(filename)
        if f is None:
            return self.send_error(404)
        self._send(f.path.read_bytes(), "application/octet-stream")

    def _provenance(self, filename: str) -> None:
        f = self._find(filename)
        if f is None or f.provenance is None:
            return self.send_error(404)
        self._send(f.provenance, "application/json")


def wait_for(predicate: object, timeout: float = 5.0) -> None:
    """Poll `predicate` until true (for background processes in tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")
