"""Every network read forkman makes: one shared session, a total deadline, a size cap.

An index, a mirror or a provenance host can be hostile or just broken. A read
timeout alone is not a bound (a server that sends one byte every few seconds
never trips it), and a page read into memory at once is not either. Here each
request gets:

* a **total deadline** (``network-timeout``): a watchdog shuts the request's
  socket down when it passes, whichever phase the request is in (connecting,
  the TLS handshake, headers, body); redirects share the deadline;
* a **size cap** (``max-page-size`` for pages, metadata and provenance,
  ``max-download-size`` for release files and exports): ``Content-Length``
  is checked first, and the body is streamed and stops at the cap, so a lying
  or absent length changes nothing;
* **redirects** followed by hand: a page (whose content forkman believes) is
  followed only to the same host and never from https to http; a download
  (whose sha256 the index announced and forkman checks) may move to another
  host but never to another scheme than http(s) or from https to http.
  Credentials in a URL's userinfo travel only to the host they were given for.

A failure is a :class:`NetworkError` (exit 2) naming the URL (credentials
removed), the limit and the ``[tool.forkman]`` setting that raises it. The
deadline's watchdog is :mod:`.watchdog`.
"""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import urllib3

from ..core.errors import NetworkError
from ..core.version import __version__
from ..model.config import NetworkLimits
from .watchdog import Watch, WatchedAdapter, deadline

__all__ = [
    "Response",
    "download",
    "get",
    "redact",
    "same_origin",
    "session",
    "without_credentials",
]

UNREACHABLE_HINT = (
    "check the index URL (--index-url or [tool.forkman] index-url) and your network; "
    "commands that need no download (forkman check, status) work offline"
)
_CHUNK = 1 << 16
_MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)
_SCHEMES = ("http", "https")

# -- the session ------------------------------------------------------------------------


class _SharedSession(requests.Session):
    """The process's one HTTP session: every client shares its connection pools
    (and the TLS set-up, which costs ~20 ms per pool with a custom CA bundle)."""

    def close(self) -> None:
        """Kept open for the next client; the interpreter closes it at exit."""


_shared: _SharedSession | None = None
_shared_pid = 0
_shared_guard = threading.Lock()


def session() -> requests.Session:
    """The shared session (a fresh one in a forked child process)."""
    global _shared, _shared_pid
    with _shared_guard:
        if _shared is None or _shared_pid != os.getpid():
            _shared = _SharedSession()
            _shared.headers["User-Agent"] = f"forkman/{__version__}"
            _shared.mount("http://", WatchedAdapter())
            _shared.mount("https://", WatchedAdapter())
            _shared_pid = os.getpid()
        return _shared


# -- URLs -------------------------------------------------------------------------------


def redact(url: str) -> str:
    """`url` without the credentials of its userinfo (for messages and logs)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def without_credentials(url: str) -> str:
    """`url` without its userinfo: what forkman writes into the lock."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


def same_origin(a: str, b: str) -> bool:
    """Whether `a` and `b` are on the same scheme, host and port."""
    return _origin(a) == _origin(b)


def _check_scheme(url: str, what: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise NetworkError(
            f"refusing to fetch {what} {redact(url)!r}: forkman reads only http(s) URLs, "
            f"not {scheme or 'a relative'!r} ones",
            hint="an index must give http:// or https:// URLs; check the configured index",
        )


def _follow(current: str, location: str, *, cross_host: bool) -> str:
    """The URL a redirect from `current` to `location` leads to, if forkman follows it."""
    target = urljoin(current, location)
    _check_scheme(target, "a redirect to")
    cur, new = urlsplit(current), urlsplit(target)
    if cur.scheme == "https" and new.scheme != "https":
        raise NetworkError(
            f"{redact(current)} redirected to {redact(target)}, from https to http",
            hint="forkman never follows a redirect that drops TLS; fix the URL or the server",
        )
    same_host = _origin(current)[1:] == _origin(target)[1:] or (
        cur.hostname == new.hostname and cur.scheme == "http" and new.scheme == "https"
    )
    if not same_host:
        if not cross_host:
            raise NetworkError(
                f"{redact(current)} redirected to another host, {redact(target)}",
                hint="forkman follows an index page's redirects only on the index's own host; "
                "configure the index URL the redirect points at if you trust it",
            )
        return urlunsplit(new._replace(netloc=new.netloc.rsplit("@", 1)[-1]))
    if "@" in cur.netloc and "@" not in new.netloc:  # keep the index's credentials
        userinfo = cur.netloc.rsplit("@", 1)[0]
        target = urlunsplit(new._replace(netloc=f"{userinfo}@{new.netloc}"))
    return target


# -- requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """A complete, bounded answer."""

    url: str
    """The URL that answered (after redirects)."""
    status: int
    """Its HTTP status."""
    content_type: str
    """The media type, lower case, without parameters."""
    charset: str | None
    """The declared charset, if any."""
    body: bytes
    """The body (empty unless the status is 200)."""

    @property
    def text(self) -> str:
        """The body as text (the declared charset, else UTF-8; bad bytes replaced)."""
        try:
            return self.body.decode(self.charset or "utf-8", "replace")
        except LookupError:
            return self.body.decode("utf-8", "replace")


_Sink = Callable[[bytes], object]
_Progress = Callable[[int, int | None], None]


def _too_slow(url: str, limits: NetworkLimits) -> NetworkError:
    return NetworkError(
        f"{redact(url)} did not answer completely within {limits.timeout:g} s "
        "(the total deadline of one request)",
        hint="raise network-timeout in [tool.forkman] if the index is just slow, "
        "or check the index URL and your network",
    )


def _too_big(url: str, cap: int, setting: str) -> NetworkError:
    return NetworkError(
        f"{redact(url)} is larger than {cap} bytes, the {setting} limit",
        hint=f"raise {setting} in [tool.forkman] if you expect a file this large",
    )


def _content_type(header: str) -> tuple[str, str | None]:
    """The media type (lower case) and the charset of a ``Content-Type`` header."""
    ctype, _, params = header.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip('"')
    return ctype.strip().lower(), charset


def _read_body(
    resp: requests.Response,
    url: str,
    cap: int,
    setting: str,
    limits: NetworkLimits,
    watch: Watch,
    sink: _Sink,
    progress: _Progress | None,
) -> None:
    """Feed the body of 200 answer `resp` to `sink`: at most `cap` bytes, before the deadline."""
    length = resp.headers.get("Content-Length", "")
    total = int(length) if length.isdigit() else None
    if total is not None and total > cap:
        raise _too_big(url, cap, setting)
    done = 0
    for chunk in resp.iter_content(_CHUNK):
        done += len(chunk)
        if done > cap:
            raise _too_big(url, cap, setting)
        if watch.expired or watch.remaining() <= 0:
            raise _too_slow(url, limits)
        sink(chunk)
        if progress is not None:
            progress(done, total)
    if watch.expired:
        raise _too_slow(url, limits)


def _request(
    url: str,
    *,
    limits: NetworkLimits,
    cap: int,
    setting: str,
    cross_host: bool,
    accept: str | None,
    sink: _Sink,
    progress: _Progress | None,
    client: requests.Session | None,
    what: str,
    hint: str | None,
) -> tuple[str, int, str, str | None]:
    """GET `url` within the limits, feeding a 200 body to `sink`; (url, status, type, charset)."""
    _check_scheme(url, what)
    sess = client if client is not None else session()
    headers = {"Accept": accept} if accept else {}
    current = url
    with deadline(limits.timeout) as watch:
        try:
            for _hop in range(_MAX_REDIRECTS + 1):
                left = watch.remaining()
                if left <= 0:
                    raise _too_slow(current, limits)
                resp = sess.get(
                    current,
                    headers=headers,
                    stream=True,
                    allow_redirects=False,
                    timeout=(left, left),
                )
                with resp:
                    location = resp.headers.get("Location")
                    if resp.status_code in _REDIRECTS and location:
                        current = _follow(current, location, cross_host=cross_host)
                        continue
                    ctype, charset = _content_type(resp.headers.get("Content-Type", ""))
                    if resp.status_code != 200:
                        return current, resp.status_code, ctype, charset
                    _read_body(resp, current, cap, setting, limits, watch, sink, progress)
                    return current, 200, ctype, charset
            raise NetworkError(
                f"{redact(url)} redirected more than {_MAX_REDIRECTS} times",
                hint="check the URL; the server is redirecting in a loop",
            )
        except NetworkError:
            raise
        except (
            requests.RequestException,
            urllib3.exceptions.HTTPError,
            http.client.HTTPException,
            OSError,
        ) as exc:
            if watch.expired or watch.remaining() <= 0:
                raise _too_slow(current, limits) from None
            text = str(exc).replace(url, redact(url)).replace(current, redact(current))
            text = text if len(text) < 300 else text[:300] + "..."
            raise NetworkError(
                f"cannot fetch {redact(current)}: {text}", hint=hint or UNREACHABLE_HINT
            ) from None


def get(
    url: str,
    *,
    limits: NetworkLimits,
    accept: str | None = None,
    client: requests.Session | None = None,
    what: str = "page",
    hint: str | None = None,
) -> Response:
    """A page, metadata or provenance document: at most ``max-page-size`` bytes.

    Redirects are followed on the same host only. Any final status is
    returned (the body only for 200); the caller decides what a 404 means.
    """
    parts: list[bytes] = []
    final, status, ctype, charset = _request(
        url,
        limits=limits,
        cap=limits.max_page_size,
        setting="max-page-size",
        cross_host=False,
        accept=accept,
        sink=parts.append,
        progress=None,
        client=client,
        what=what,
        hint=hint,
    )
    return Response(final, status, ctype, charset, b"".join(parts))


def download(
    url: str,
    sink: _Sink,
    *,
    limits: NetworkLimits,
    progress: _Progress | None = None,
    client: requests.Session | None = None,
    what: str = "file",
    hint: str | None = None,
) -> None:
    """Stream a file of at most ``max-download-size`` bytes into `sink`.

    Redirects may lead to another host (the caller checks the bytes against a
    hash it trusts); anything but HTTP 200 at the end is a NetworkError.
    """
    final, status, _ctype, _charset = _request(
        url,
        limits=limits,
        cap=limits.max_download_size,
        setting="max-download-size",
        cross_host=True,
        accept=None,
        sink=sink,
        progress=progress,
        client=client,
        what=what,
        hint=hint,
    )
    if status != 200:
        raise NetworkError(
            f"downloading {redact(final)} failed with HTTP {status}",
            hint=hint or UNREACHABLE_HINT,
        )
