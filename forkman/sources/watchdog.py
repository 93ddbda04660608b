"""The watchdog of forkman's HTTP requests: a total deadline, whatever the phase.

A read timeout alone is not a bound (a server that sends one byte every few
seconds never trips it). :func:`deadline` starts a timer for one request;
when it fires, every socket the request opened (reported by the connections
of :class:`WatchedAdapter`) is shut down, so the request fails at once,
whether it is connecting, in the TLS handshake, or reading headers or body.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["Watch", "WatchedAdapter", "deadline"]


class Watch:
    """The sockets of one request, shut down when its deadline passes."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self._done = False
        self._guard = threading.Lock()
        self._sockets: list[tuple[int, Any, Any]] = []

    def add(self, sock: socket.socket) -> None:
        """Watch `sock` (shut down at once if the deadline has passed)."""
        try:
            entry = (sock.fileno(), sock.getsockname(), sock.getpeername())
        except OSError:
            return
        with self._guard:
            if self._done:
                return
            self._sockets.append(entry)
            if self.expired:
                _shutdown(*entry)

    def expire(self) -> None:
        """The deadline passed: shut every watched socket down."""
        with self._guard:
            if self._done:
                return
            self.expired = True
            for entry in self._sockets:
                _shutdown(*entry)

    def finish(self) -> None:
        """The request is over: forget its sockets (nothing is shut down any more)."""
        with self._guard:
            self._done = True
            self._sockets.clear()

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once passed)."""
        return self.deadline - time.monotonic()


def _shutdown(fd: int, local: Any, peer: Any) -> None:
    """Shut down the connection on `fd`, if `fd` is still that connection.

    Works on a duplicate of the descriptor, so the owner's socket object (plain
    or TLS, even mid-handshake) sees end-of-stream and fails at once; the
    address check keeps a descriptor number reused meanwhile untouched.
    """
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        if dup.getsockname() == local and dup.getpeername() == peer:
            dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()


_current = threading.local()


def _watch_socket(sock: socket.socket | None) -> None:
    watch: Watch | None = getattr(_current, "watch", None)
    if watch is not None and sock is not None:
        watch.add(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch_socket(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch_socket(self.sock)  # a kept-alive connection serving another request
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch_socket(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch_socket(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class WatchedAdapter(HTTPAdapter):
    """An adapter whose connections report their sockets to the request's watchdog."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Watch]:
    """The watchdog of one request on this thread: its sockets are shut down after `seconds`."""
    watch = Watch(time.monotonic() + seconds)
    previous = getattr(_current, "watch", None)
    _current.watch = watch
    timer = threading.Timer(seconds, watch.expire)
    timer.daemon = True
    timer.start()
    try:
        yield watch
    finally:
        timer.cancel()
        watch.finish()
        _current.watch = previous
