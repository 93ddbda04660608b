"""The sandboxed side of ``execute``: runs an agent's code with ``fm``, a proxy, in scope.

This module runs inside forkman's sandbox (no network, no secrets, the project
read-only), forked from a warm server. It imports nothing of forkman: the only
way to the project is ``fm``, whose every call is one request over standard
input, a unix socket whose other end the host holds. The host validates the
call and performs it through :class:`forkman.Project`; nothing else crosses.

Frames on the channel are a 4-byte big-endian length and a JSON object:

- host -> guest, first: ``{"code": str, "methods": {name: {"signature", "doc"}}}``
- guest -> host: ``{"call": name, "args": [...], "kwargs": {...}}``;
  host -> guest: ``{"value": ...}`` or ``{"error": {"type", "message", "hint"}}``
- guest -> host, last: ``{"result": ...}`` or ``{"error": {...}}``

``print`` output goes to standard output, which the host keeps as the logs.
"""

from __future__ import annotations

import ast
import json
import socket
import struct
import sys
import traceback
from typing import Any

MAX_FRAME = 8 * 1024 * 1024
"""Largest frame either side accepts (bytes)."""


class ChannelClosed(Exception):
    """The host closed the channel."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ChannelClosed("the host closed the channel")
        buf += chunk
    return bytes(buf)


def send_frame(sock: socket.socket, obj: Any) -> None:
    """Send one JSON frame."""
    data = json.dumps(obj, allow_nan=False, separators=(",", ":")).encode()
    sock.sendall(struct.pack(">I", len(data)) + data)


def recv_frame(sock: socket.socket, limit: int = MAX_FRAME) -> Any:
    """Receive one JSON frame (at most `limit` bytes)."""
    (size,) = struct.unpack(">I", _recv_exact(sock, 4))
    if size > limit:
        raise ValueError(f"a frame of {size} bytes is larger than the limit ({limit})")
    return json.loads(_recv_exact(sock, size))


class Record(dict):  # type: ignore[type-arg]
    """A result from the API: a dict whose keys also read as attributes (``fork.name``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"no field {name!r}; the fields are: {', '.join(sorted(self))}"
            ) from None


class Text(str):
    """A string from the API; ``.value`` gives it too (enums arrive as their value)."""

    __slots__ = ()

    @property
    def value(self) -> str:
        return str(self)


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return Record({k: _wrap(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    if isinstance(value, str):
        return Text(value)
    return value


class APIError(Exception):
    """An error raised by the API on the host (its type, message and forkman's hint)."""

    def __init__(self, type_: str, message: str, hint: str | None) -> None:
        super().__init__(message + (f" (hint: {hint})" if hint else ""))
        self.type = type_
        self.message = message
        self.hint = hint


class _Method:
    def __init__(self, proxy: Project, name: str, signature: str, doc: str) -> None:
        self._proxy = proxy
        self.__name__ = name
        self.__qualname__ = f"fm.{name}"
        self.__doc__ = f"fm.{name}{signature}\n\n{doc}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._proxy._call(self.__name__, list(args), kwargs)

    def __repr__(self) -> str:
        return f"<forkman API method {self.__qualname__}>"


class Project:
    """``fm``: the project's API; each call is performed by the host."""

    def __init__(self, sock: socket.socket, methods: dict[str, dict[str, str]]) -> None:
        self._sock = sock
        self._methods = {
            name: _Method(self, name, meta.get("signature", "(...)"), meta.get("doc", ""))
            for name, meta in methods.items()
        }

    def __getattr__(self, name: str) -> Any:
        methods = self.__dict__.get("_methods", {})
        if name in methods:
            return methods[name]
        raise AttributeError(
            f"fm has no method {name!r}; it has: {', '.join(sorted(methods))} "
            "(the search tool finds them by what they do)"
        )

    def __dir__(self) -> list[str]:
        return sorted(self._methods)

    def __repr__(self) -> str:
        return f"<forkman project API: {', '.join(sorted(self._methods))}>"

    def _call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        try:
            request = {"call": name, "args": args, "kwargs": kwargs}
            json.dumps(request, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"fm.{name}: arguments must be JSON values (str, int, float, bool, None, "
                f"lists and dicts of them): {exc}"
            ) from None
        send_frame(self._sock, request)
        reply = recv_frame(self._sock)
        if "error" in reply:
            err = reply["error"]
            raise APIError(str(err.get("type")), str(err.get("message")), err.get("hint"))
        return _wrap(reply.get("value"))


def compile_body(code: str) -> Any:
    """`code` as the body of ``def main(fm)``; a last bare expression is returned."""
    tree = ast.parse(code, filename="<execute>", mode="exec")
    body: list[ast.stmt] = list(tree.body)
    has_return = any(isinstance(node, ast.Return) for node in ast.walk(tree))
    if body and isinstance(body[-1], ast.Expr) and not has_return:
        last = body[-1]
        body[-1] = ast.Return(value=last.value)
        ast.copy_location(body[-1], last)
    module = ast.parse("def main(fm):\n    pass\n")  # the same node on every Python version
    func = module.body[0]
    assert isinstance(func, ast.FunctionDef)
    func.body = body or [ast.Pass()]
    ast.fix_missing_locations(module)
    return compile(module, "<execute>", "exec")


def jsonable(value: Any, depth: int = 0) -> Any:
    """`value` as plain JSON types; TypeError naming what is not."""
    if depth > 64:
        raise TypeError("the result is nested more than 64 levels deep")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TypeError("the result holds NaN or infinity, which JSON cannot carry")
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        items = [jsonable(v, depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    raise TypeError(
        f"the result holds a {type(value).__name__}, which is not JSON; return dicts, lists, "
        "strings, numbers, booleans or None"
    )


def _error(exc: BaseException, code: str) -> dict[str, Any]:
    lines = code.splitlines()

    def source(lineno: int | None) -> str:
        return lines[lineno - 1].strip() if lineno and lineno <= len(lines) else ""

    frames = [
        f"line {f.lineno}: {source(f.lineno)}".rstrip()
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename == "<execute>"
    ]
    if isinstance(exc, APIError):
        return {"type": exc.type, "message": exc.message, "hint": exc.hint, "where": frames}
    if isinstance(exc, SyntaxError):
        return {
            "type": "SyntaxError",
            "message": f"{exc.msg} (line {exc.lineno})",
            "hint": "the code is the body of a function: statements, then `return VALUE`",
            "where": [],
        }
    return {"type": type(exc).__name__, "message": str(exc), "hint": None, "where": frames}


def main() -> None:
    """Read the code from the channel, run it with ``fm``, send the result back."""
    sock = socket.socket(fileno=0)
    start = recv_frame(sock)
    fm = Project(sock, start.get("methods", {}))
    try:
        namespace: dict[str, Any] = {"__name__": "__execute__", "APIError": APIError}
        exec(compile_body(start["code"]), namespace)  # noqa: S102 - the sandboxed code itself
        value = jsonable(namespace["main"](fm))
        final: dict[str, Any] = {"result": value}
    except ChannelClosed:
        sys.exit(3)
    except BaseException as exc:
        final = {"error": _error(exc, start.get("code", ""))}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        send_frame(sock, final)
    except ValueError as exc:  # pragma: no cover - jsonable already refused it
        send_frame(sock, {"error": {"type": "TypeError", "message": str(exc), "hint": None}})
