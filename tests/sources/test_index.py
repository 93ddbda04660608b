"""The index client against a real PEP 503/691 index on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from forkman.core.errors import BadInput, IntegrityError, NetworkError, NotFound
from forkman.core.observer import RecordingObserver
from forkman.model.config import NetworkLimits
from forkman.model.lock import IndexSource
from forkman.model.project import cache_root
from forkman.sources.index import (
    ACCEPT,
    IndexClient,
    configured_index,
    download,
    fetch_exact,
    fetch_release,
    find_release,
    parse_requirement,
    release_file_from_name,
    select_release,
)
from forkman.sources.interface import DistKind, ReleaseFile, UpstreamRelease
from forkman.sources.unpack import unpack_archive
from tests.support.index import LocalIndex


def _cache_files() -> list[Path]:
    root = cache_root()
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _fetch(index: LocalIndex | list[str], spec: str) -> UpstreamRelease:
    urls = index if isinstance(index, list) else [index.url]
    return fetch_release(spec, index_urls=urls, prefer=DistKind.SDIST, prereleases=False)


@pytest.fixture
def demo_index(local_index: LocalIndex) -> LocalIndex:
    """demo: 1.0 (sdist+wheel), 1.1 (sdist, yanked), 2.0rc1 (sdist), 0.9 (wheel only)."""
    local_index.add_sdist("demo", "1.0")
    local_index.add_wheel("demo", "1.0")
    local_index.add_sdist("demo", "1.1", yanked="broken metadata")
    local_index.add_sdist("demo", "2.0rc1", requires_python=">=3.9")
    local_index.add_wheel("demo", "0.9")
    return local_index


# -- the simple API -------------------------------------------------------------------


def _key(files: list[ReleaseFile]) -> list[tuple[object, ...]]:
    return sorted(
        (f.filename, f.url, f.sha256, f.version, f.kind, f.yanked, f.requires_python) for f in files
    )


def test_json_and_html_give_the_same_files(demo_index: LocalIndex) -> None:
    client = IndexClient([demo_index.url])
    found_json, json_files = client.project_files("demo")
    demo_index.serve_json = False
    found_html, html_files = IndexClient([demo_index.url]).project_files("demo")
    assert found_json == found_html == demo_index.url
    assert _key(json_files) == _key(html_files)
    assert len(json_files) == 5
    by_name = {f.filename: f for f in json_files}
    yanked = by_name["demo-1.1.tar.gz"]
    assert yanked.yanked and yanked.yanked_reason == "broken metadata"
    assert by_name["demo-2.0rc1.tar.gz"].requires_python == ">=3.9"
    wheel = by_name["demo-1.0-py3-none-any.whl"]
    assert wheel.kind is DistKind.WHEEL and wheel.version == Version("1.0")
    assert wheel.url == f"{demo_index.base}/files/demo-1.0-py3-none-any.whl"
    expected_sha = hashlib.sha256((demo_index.root / "files" / wheel.filename).read_bytes())
    assert wheel.sha256 == expected_sha.hexdigest()


def test_accept_header_asks_for_json_first() -> None:
    assert ACCEPT.startswith("application/vnd.pypi.simple.v1+json")
    assert "text/html;q=0.01" in ACCEPT


def test_provenance_url_is_read_from_both_forms(local_index: LocalIndex) -> None:
    local_index.add_sdist("signed", "1.0", provenance=b"{}")
    _, files = IndexClient([local_index.url]).project_files("signed")
    local_index.serve_json = False
    _, html_files = IndexClient([local_index.url]).project_files("signed")
    expected = f"{local_index.base}/provenance/signed-1.0.tar.gz"
    assert files[0].provenance_url == html_files[0].provenance_url == expected


def test_non_normalized_name_follows_the_redirect(demo_index: LocalIndex) -> None:
    demo_index.add_sdist("My_Project", "3.0")
    _, files = IndexClient([demo_index.url]).project_files("My_Project")
    assert [f.filename for f in files] == ["my_project-3.0.tar.gz"]


def test_unparseable_files_are_skipped() -> None:
    assert release_file_from_name("demo-1.0.win32.exe", "u", None) is None
    assert release_file_from_name("demo-1.0-py2.7.egg", "u", None) is None
    assert release_file_from_name("notaversion.tar.gz", "u", None) is None
    legacy = release_file_from_name("demo-1.0.zip", "u", "AB" * 32)
    assert legacy is not None and legacy.kind is DistKind.SDIST and legacy.sha256 == "ab" * 32


def test_unknown_package_is_not_found(demo_index: LocalIndex) -> None:
    with pytest.raises(NotFound) as info:
        IndexClient([demo_index.url]).project_files("no-such-thing")
    assert "no-such-thing" in info.value.message
    assert demo_index.url in info.value.message


def test_extra_index_fallback(tmp_path: Path, local_index: LocalIndex) -> None:
    second = LocalIndex(tmp_path / "second").start()
    try:
        local_index.add_sdist("first-only", "1.0")
        second.add_sdist("second-only", "2.0")
        second.add_sdist("first-only", "9.0")  # the first index wins for names it has
        client = IndexClient([local_index.url, second.url])
        url, files = client.project_files("second-only")
        assert url == second.url and [f.filename for f in files] == ["second_only-2.0.tar.gz"]
        url, files = client.project_files("first-only")
        assert url == local_index.url and [str(f.version) for f in files] == ["1.0"]
        release = _fetch([local_index.url, second.url], "second-only")
        assert release.index_url == second.url
    finally:
        second.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_index_is_a_network_error() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/simple/"
    with pytest.raises(NetworkError) as info:
        IndexClient([url], limits=NetworkLimits(timeout=5)).project_files("demo")
    assert url in info.value.message
    assert info.value.hint is not None and "--index-url" in info.value.hint
    assert "offline" in info.value.hint


@pytest.fixture
def failing_server() -> Iterator[str]:
    """A real HTTP server that answers every request with 503."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_error(503, "maintenance")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def future_api_server() -> Iterator[str]:
    """A real HTTP server speaking a simple API major version this client does not know."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps({"meta": {"api-version": "2.0"}, "files": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()


def test_unknown_api_major_version_is_refused(future_api_server: str) -> None:
    with pytest.raises(NetworkError, match=r"API version 2\.0"):
        IndexClient([future_api_server]).project_files("demo")


def test_find_release_does_not_download(demo_index: LocalIndex) -> None:
    index_url, file = find_release("demo>=0.9", index_urls=[demo_index.url])
    assert index_url == demo_index.url and file.filename == "demo-1.0.tar.gz"
    assert not any(r.startswith("/files/") for r in demo_index.requests)
    assert _cache_files() == []


def test_server_error_is_a_network_error(failing_server: str) -> None:
    with pytest.raises(NetworkError, match="HTTP 503") as info:
        IndexClient([failing_server]).project_files("demo")
    assert failing_server in info.value.message


# -- selection -----------------------------------------------------------------------


def _files(index: LocalIndex, name: str = "demo") -> list[ReleaseFile]:
    return IndexClient([index.url]).project_files(name)[1]


def _select(files: list[ReleaseFile], spec: str, **kw: object) -> ReleaseFile:
    return select_release(
        files,
        SpecifierSet(spec),
        prereleases=kw.pop("prereleases", False),  # type: ignore[arg-type]
        prefer=kw.pop("prefer", DistKind.SDIST),  # type: ignore[arg-type]
        name="demo",
    )


def test_newest_final_sdist_by_default(demo_index: LocalIndex) -> None:
    chosen = _select(_files(demo_index), "")
    assert chosen.filename == "demo-1.0.tar.gz"  # 1.1 yanked, 2.0rc1 a pre-release


def test_yanked_taken_only_by_exact_pin(demo_index: LocalIndex) -> None:
    files = _files(demo_index)
    assert _select(files, ">=1.0").filename == "demo-1.0.tar.gz"
    assert _select(files, "==1.1").filename == "demo-1.1.tar.gz"
    assert _select(files, "===1.1").filename == "demo-1.1.tar.gz"
    with pytest.raises(NotFound) as info:
        _select(files, "==1.1.*")
    assert "yanked" in info.value.message


def test_prereleases_excluded_unless_asked(demo_index: LocalIndex) -> None:
    files = _files(demo_index)
    with pytest.raises(NotFound) as info:
        _select(files, ">=1.5")
    assert "2.0rc1" in info.value.message and "pre-release" in info.value.message
    assert info.value.hint is not None and "--pre" in info.value.hint
    assert _select(files, ">=1.5", prereleases=True).filename == "demo-2.0rc1.tar.gz"
    assert _select(files, "", prereleases=True).filename == "demo-2.0rc1.tar.gz"
    # a specifier that names a pre-release allows it, as packaging does
    assert _select(files, ">=2.0rc1").filename == "demo-2.0rc1.tar.gz"


def test_wheel_when_preferred_and_fallbacks(demo_index: LocalIndex) -> None:
    files = _files(demo_index)
    assert _select(files, "==1.0", prefer=DistKind.WHEEL).filename == "demo-1.0-py3-none-any.whl"
    # 0.9 exists only as a wheel: taken even though sdists are preferred
    assert _select(files, "==0.9").filename == "demo-0.9-py3-none-any.whl"
    # 1.1 exists only as an sdist: taken even though wheels are preferred
    assert _select(files, "==1.1", prefer=DistKind.WHEEL).filename == "demo-1.1.tar.gz"


def _rf(filename: str) -> ReleaseFile:
    f = release_file_from_name(filename, f"https://files.invalid/{filename}", "0" * 64)
    assert f is not None
    return f


def test_pure_wheel_preferred_among_wheels() -> None:
    files = [
        _rf("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        _rf("demo-1.0-py2.py3-none-any.whl"),
        _rf("demo-1.0-cp311-cp311-win_amd64.whl"),
    ]
    chosen = select_release(files, SpecifierSet(), prereleases=False, prefer=DistKind.WHEEL)
    assert chosen.filename == "demo-1.0-py2.py3-none-any.whl"
    tar_and_zip = [_rf("demo-1.0.zip"), _rf("demo-1.0.tar.gz")]
    chosen = select_release(tar_and_zip, SpecifierSet(), prereleases=False, prefer=DistKind.SDIST)
    assert chosen.filename == "demo-1.0.tar.gz"


def test_without_a_pure_wheel_the_one_this_interpreter_installs() -> None:
    """msgpack and friends publish only platform wheels: take the one for this host."""
    from packaging.tags import sys_tags

    host = next(iter(sys_tags()))
    ours = f"demo-1.0-{host.interpreter}-{host.abi}-{host.platform}.whl"
    files = [
        _rf("demo-1.0-cp27-cp27m-win32.whl"),
        _rf("demo-1.0-cp39-cp39-macosx_10_9_x86_64.whl"),
        _rf(ours),
        _rf("demo-1.0-pp310-pypy310_pp73-win_amd64.whl"),
    ]
    chosen = select_release(files, SpecifierSet(), prereleases=False, prefer=DistKind.WHEEL)
    assert chosen.filename == ours


def test_no_matching_version_lists_versions(demo_index: LocalIndex) -> None:
    with pytest.raises(NotFound) as info:
        _fetch(demo_index, "demo>=5")
    message = info.value.message
    assert "demo" in message and ">=5" in message
    assert "2.0rc1, 1.1, 1.0, 0.9" in message
    assert _cache_files() == []


def test_empty_file_list_is_not_found() -> None:
    with pytest.raises(NotFound):
        select_release([], SpecifierSet(), prereleases=False, prefer=DistKind.SDIST)


# -- requirements --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "name", "specifier"),
    [
        ("attrs==23.1.0", "attrs", "==23.1.0"),
        ("packaging>=24,<25", "packaging", "<25,>=24"),
        ("attrs", "attrs", ""),
        ("Zope.Interface[docs] ~= 5.0", "zope-interface", "~=5.0"),
    ],
)
def test_parse_requirement(spec: str, name: str, specifier: str) -> None:
    assert parse_requirement(spec) == (name, SpecifierSet(specifier))


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "   ",
        "attrs==",
        "attrs=>1",
        "==1.0",
        "attrs @ https://example.invalid/attrs-1.0.tar.gz",
        "attrs==1.0; python_version < '3'",
        "git+https://example.invalid/repo",
        "not a requirement at all!",
    ],
)
def test_malformed_requirements_are_bad_input(spec: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_requirement(spec)
    assert info.value.hint is not None and "attrs==23.1.0" in info.value.hint


# -- downloading ---------------------------------------------------------------------


def test_fetch_release_downloads_and_verifies(demo_index: LocalIndex) -> None:
    observer = RecordingObserver()
    release = fetch_release(
        "demo==1.0",
        index_urls=[demo_index.url],
        prefer=DistKind.SDIST,
        prereleases=False,
        observer=observer,
    )
    data = release.path.read_bytes()
    assert release.sha256 == hashlib.sha256(data).hexdigest()
    assert release.path == cache_root() / "downloads" / release.sha256 / "demo-1.0.tar.gz"
    assert release.version == Version("1.0") and release.name == "demo"
    assert release.index_url == demo_index.url
    assert ("demo-1.0.tar.gz", "downloaded and verified") in observer.steps
    unpack_archive(release.path, Path(str(release.path) + ".tree"))


def test_fetch_yanked_pin_warns(demo_index: LocalIndex) -> None:
    observer = RecordingObserver()
    fetch_release(
        "demo==1.1",
        index_urls=[demo_index.url],
        prefer=DistKind.SDIST,
        prereleases=False,
        observer=observer,
    )
    assert any("yanked" in w and "broken metadata" in w for w in observer.warnings)


@pytest.mark.parametrize("serve_json", [True, False])
def test_hash_mismatch_keeps_nothing(local_index: LocalIndex, serve_json: bool) -> None:
    local_index.serve_json = serve_json
    local_index.add_sdist("demo", "1.0", announced_sha256="ab" * 32)
    with pytest.raises(IntegrityError) as info:
        _fetch(local_index, "demo==1.0")
    assert "ab" * 32 in info.value.message  # expected
    actual = hashlib.sha256((local_index.root / "files" / "demo-1.0.tar.gz").read_bytes())
    assert actual.hexdigest() in info.value.message  # got
    assert _cache_files() == []
    assert not (cache_root() / "downloads" / ("ab" * 32)).exists()


@pytest.mark.parametrize("serve_json", [True, False])
def test_index_without_hashes_is_refused(local_index: LocalIndex, serve_json: bool) -> None:
    local_index.serve_json = serve_json
    local_index.serve_hashes = False
    local_index.add_sdist("demo", "1.0")
    with pytest.raises(IntegrityError) as info:
        _fetch(local_index, "demo==1.0")
    assert info.value.hint is not None and "publishes sha256" in info.value.hint
    assert not any(r.startswith("/files/") for r in local_index.requests)
    assert _cache_files() == []


def test_cache_hit_needs_no_network_and_corruption_is_replaced(demo_index: LocalIndex) -> None:
    first = _fetch(demo_index, "demo==1.0")
    path = first.path
    downloads = [r for r in demo_index.requests if r.startswith("/files/")]
    assert downloads == ["/files/demo-1.0.tar.gz"]

    observer = RecordingObserver()
    again = download(first.file, observer=observer)
    assert again == path
    assert ("demo-1.0.tar.gz", "verified cache") in observer.steps
    assert [r for r in demo_index.requests if r.startswith("/files/")] == downloads

    good = path.read_bytes()
    path.write_bytes(good[:-10] + b"corrupted!")
    observer = RecordingObserver()
    replaced = download(first.file, observer=observer)
    assert replaced == path and path.read_bytes() == good
    assert any("does not match" in w for w in observer.warnings)
    assert len([r for r in demo_index.requests if r.startswith("/files/")]) == 2


def test_download_size_limit(demo_index: LocalIndex) -> None:
    file = _select(_files(demo_index), "==1.0")
    with pytest.raises(NetworkError, match="max-download-size"):
        download(file, limits=NetworkLimits(max_download_size=100))
    assert _cache_files() == []


def test_download_of_a_vanished_file(demo_index: LocalIndex) -> None:
    file = _select(_files(demo_index), "==1.0")
    file = dataclasses.replace(file, url=file.url.replace("demo-1.0", "gone-1.0"))
    with pytest.raises(NetworkError, match="HTTP 404"):
        download(file)
    assert _cache_files() == []


def test_fetch_exact_uses_cache_then_the_configured_index(demo_index: LocalIndex) -> None:
    release = _fetch(demo_index, "demo==1.0")
    source = IndexSource(
        index_url=demo_index.url,
        url=release.file.url,
        filename=release.file.filename,
        sha256=release.sha256,
        requirement="demo==1.0",
    )
    urls = [demo_index.url]
    assert fetch_exact(source, index_urls=urls) == release.path
    release.path.unlink()
    assert fetch_exact(source, index_urls=urls).read_bytes()
    assert len([r for r in demo_index.requests if r.startswith("/files/")]) == 2
    wrong = dataclasses.replace(source, sha256="cd" * 32)
    with pytest.raises(IntegrityError, match="no longer announces sha256"):
        fetch_exact(wrong, index_urls=urls)
    # the lock's url is never fetched: the index says where the file is
    moved = dataclasses.replace(source, url="http://127.0.0.1:9/files/demo-1.0.tar.gz")
    with pytest.raises(IntegrityError, match="but the index"):
        fetch_exact(moved, index_urls=urls, recheck=True)
    with pytest.raises(IntegrityError, match="not a configured index"):
        fetch_exact(source, index_urls=["https://pypi.org/simple/"])


def test_configured_index_ignores_credentials_case_and_slash() -> None:
    urls = ["https://user:secret@Mirror.example/simple", "https://pypi.org/simple/"]
    assert configured_index("https://mirror.example/simple/", urls) == urls[0] + "/"
    assert configured_index("https://pypi.org:443/simple", urls) == urls[1]
    assert configured_index("https://evil.example/simple/", urls) is None
    assert configured_index("http://pypi.org/simple/", urls) is None


@pytest.mark.network
def test_real_pypi_attrs_sdist(tmp_path: Path) -> None:
    release = fetch_release(
        "attrs==23.1.0",
        index_urls=["https://pypi.org/simple/"],
        prefer=DistKind.SDIST,
        prereleases=False,
    )
    assert release.file.filename == "attrs-23.1.0.tar.gz"
    assert release.sha256 == hashlib.sha256(release.path.read_bytes()).hexdigest()
    dest = tmp_path / "attrs"
    unpack_archive(release.path, dest)
    assert (dest / "pyproject.toml").is_file()
    assert (dest / "src" / "attr" / "__init__.py").is_file()


def test_html_details_from_other_indexes() -> None:
    from forkman.sources.simpleapi import _parse_html

    digest = "ABCDEF0123456789abcdef0123456789" * 2
    page = f"""<!DOCTYPE html><html><head><base href="https://cdn.invalid/pkgs/"></head><body>
    <a href="demo-1.0.tar.gz?download=1#sha256={digest}"
       data-requires-python="&gt;=3.8">demo-1.0.tar.gz</a>
    <a href="sub/demo-1.1.tar.gz#md5=0123" data-yanked>demo-1.1.tar.gz</a>
    <a href="/abs/demo-1.0.win32.exe#sha256=00">demo-1.0.win32.exe</a>
    </body></html>"""
    files = _parse_html(page, "https://index.invalid/simple/demo/")
    assert [f.filename for f in files] == ["demo-1.0.tar.gz", "demo-1.1.tar.gz"]
    first, second = files
    assert first.url == "https://cdn.invalid/pkgs/demo-1.0.tar.gz?download=1"
    assert first.sha256 == digest.lower()
    assert first.requires_python == ">=3.8" and not first.yanked
    assert second.url == "https://cdn.invalid/pkgs/sub/demo-1.1.tar.gz"
    assert second.sha256 is None and second.yanked and second.yanked_reason is None
