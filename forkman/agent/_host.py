"""The host side of ``execute``: runs code in the sandbox and answers its ``fm`` calls.

Each execution is one sandboxed run forked from a warm :class:`ForkServer`
(the guest, :mod:`forkman.agent._guest`). Its standard input is one end of a
unix socketpair; this module holds the other end and serves the guest's
calls on it, one at a time, through the gate (:mod:`forkman.agent._gate`):
the method must be a public method of :class:`forkman.Project`, the
arguments must bind to its signature, fork names must be forks of the
project (or, for ``fork``, a requirement or a ``git+https`` URL), paths must
be relative, inside the project and free of ``..``. A call that may change
the project is performed only with ``allow_writes``; otherwise it becomes a
pending plan in the agent record, applied when a person runs
``forkman agent approve ID``.
"""

from __future__ import annotations

import contextlib
import inspect
import shutil
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ForkmanError
from . import _catalog
from ._gate import Gate
from ._guest import MAX_FRAME
from ._store import AgentStore

GUEST_MODULE = "forkman.agent._guest"
"""Imported once by the warm fork server."""
RUN_MODULE = "forkman.agent._run"
_PACKAGE = Path(__file__).resolve().parent.parent
"""The ``forkman`` package the guest imports (``RUN_MODULE``), shown read-only."""
"""Run as ``__main__`` in each sandboxed child: calls the guest's ``main``."""
MAX_CALLS = 500
"""API calls one execution may make."""
MAX_CODE = 100_000
"""Characters of code one execution may send."""
MAX_REPLY = 4 * 1024 * 1024
"""Bytes of one reply to the guest; a larger result is an error asking for less."""


@dataclass
class Execution:
    """What one ``execute`` call produced."""

    id: int
    result: Any = None
    error: dict[str, Any] | None = None
    logs: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    plans: list[int] = field(default_factory=list)
    duration: float = 0.0
    tier: str = ""

    def to_json(self) -> dict[str, Any]:
        """The answer to the agent."""
        out: dict[str, Any] = {"execution": self.id}
        if self.error is not None:
            out["error"] = self.error
        else:
            out["result"] = self.result
        if self.logs:
            out["logs"] = self.logs
        if self.plans:
            out["pending_plans"] = self.plans
            out["approve_with"] = [f"forkman agent approve {p}" for p in self.plans]
        return out


def _send(sock: socket.socket, obj: Any) -> None:
    import json

    data = json.dumps(obj, allow_nan=False, separators=(",", ":"), default=str).encode()
    if len(data) > MAX_REPLY:
        data = json.dumps(
            {
                "error": {
                    "type": "BadInput",
                    "message": f"the result is {len(data)} bytes, more than {MAX_REPLY}",
                    "hint": "ask for less: one fork, one file, or a narrower range",
                }
            }
        ).encode()
    sock.sendall(struct.pack(">I", len(data)) + data)


def _recv(sock: socket.socket) -> Any | None:
    """One frame from the guest, or None at end-of-file or on a malformed frame."""
    import json

    def exact(n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(min(65536, n - len(buf)))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    head = exact(4)
    if head is None:
        return None
    (size,) = struct.unpack(">I", head)
    if size > MAX_FRAME:
        return None
    body = exact(size)
    if body is None:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _error_json(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ForkmanError):
        return {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}
    return {"type": type(exc).__name__, "message": str(exc), "hint": None}


def to_data(value: Any, depth: int = 0) -> Any:
    """A result as JSON data: a dataclass's fields and its public properties (``run.ok``)."""
    import dataclasses
    from collections.abc import Mapping

    import forkman

    if depth > 50:
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {
            f.name: to_data(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)
        }
        for name, attr in inspect.getmembers(type(value)):
            if isinstance(attr, property) and not name.startswith("_") and name not in data:
                with contextlib.suppress(Exception):
                    data[name] = to_data(getattr(value, name), depth + 1)
        return data
    if isinstance(value, Mapping):
        return {str(k): to_data(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_data(v, depth + 1) for v in value]
    return forkman.to_json(value)


def call_operation(project: Any, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Perform `method` on `project` and return its result as JSON data."""
    return to_data(getattr(project, method)(*args, **kwargs))


class Executor:
    """Runs ``execute`` calls for one project; keep one per server (the fork server stays warm)."""

    def __init__(
        self,
        root: Path,
        *,
        allow_writes: bool = False,
        timeout: float = 30.0,
        log_chars: int = 20_000,
    ) -> None:
        import forkman

        from ..sandbox import ForkServer

        self.project = forkman.Project.open(root)
        self.root = Path(self.project.root).resolve()
        self.allow_writes = allow_writes
        self.timeout = timeout
        self.log_chars = log_chars
        self.store = AgentStore(self.project.core.state_dir)
        self.gate = Gate(self.project)
        self._server = ForkServer(preload=(GUEST_MODULE,))
        self._lock = threading.Lock()
        self._methods = {
            op.name: {"signature": op.signature, "doc": op.doc} for op in _catalog.operations()
        }

    def start(self) -> Executor:
        """Start the warm fork server."""
        self._server.start()
        return self

    def close(self) -> None:
        """Stop the fork server and close the record."""
        self._server.stop()
        self.store.close()

    def _policy(self, scratch: Path) -> Any:
        from ..sandbox import SandboxPolicy
        from ..testing.run import sandbox_policy

        return sandbox_policy(
            self.project.core.config,
            timeout=self.timeout,
            writable=(scratch,),
            # forkman's own package: an editable install may live where the sandbox
            # shows nothing of the host (under /tmp or a home directory)
            readonly=(*SandboxPolicy().readonly, self.root, _PACKAGE),
            loopback=False,
            output_limit=max(self.log_chars * 4, 65536),
        )

    def execute(self, code: str) -> Execution:
        """Run `code` in the sandbox with ``fm`` in scope; what it returned, printed, raised."""
        with self._lock:
            return self._execute(code)

    def _execute(self, code: str) -> Execution:
        mode = "writes" if self.allow_writes else "read-only"
        execution = Execution(self.store.begin_execution(code, mode))
        start = time.monotonic()
        if len(code) > MAX_CODE:
            execution.error = {
                "type": "BadInput",
                "message": f"the code is {len(code)} characters, more than {MAX_CODE}",
                "hint": "send less code; do the work in several calls",
            }
            return self._finish(execution, start)
        host, guest = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        scratch = Path(tempfile.mkdtemp(prefix="forkman-agent-"))
        final: dict[str, Any] = {}
        served = threading.Thread(
            target=self._serve, args=(host, code, execution, final), daemon=True
        )
        try:
            policy = self._policy(scratch)
            served.start()
            run = self._server.run(
                [],
                policy,
                cwd=self.root,
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
                python_module=RUN_MODULE,
                stdin=guest.detach(),
            )
        except ForkmanError as exc:
            with contextlib.suppress(OSError):
                guest.close()
            host.close()
            execution.error = _error_json(exc)
            return self._finish(execution, start)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        served.join()
        host.close()
        execution.tier = run.tier_label
        logs = run.stdout.decode("utf-8", "replace")
        stderr = run.stderr.decode("utf-8", "replace").strip()
        if stderr:
            logs += ("\n" if logs and not logs.endswith("\n") else "") + "[stderr]\n" + stderr
        if len(logs) > self.log_chars:
            logs = (
                logs[: self.log_chars]
                + f"\n[logs cut at {self.log_chars} of {len(logs)} characters: print less]"
            )
        execution.logs = logs
        if run.timed_out:
            execution.error = {
                "type": "TimeoutError",
                "message": f"the code was stopped after {self.timeout:g} s",
                "hint": "each execute call has a time limit; do less per call",
            }
        elif run.memory_exceeded or run.processes_exceeded:
            what = "memory" if run.memory_exceeded else "processes"
            execution.error = {
                "type": "ResourceError",
                "message": f"the code was stopped: it used too many {what}",
                "hint": "do less per call",
            }
        elif "error" in final:
            execution.error = final["error"]
        elif "result" in final:
            execution.result = final["result"]
        else:
            execution.error = {
                "type": "SandboxError",
                "message": f"the code ended without a result (exit status {run.returncode})",
                "hint": "see the logs",
            }
        return self._finish(execution, start)

    def _finish(self, execution: Execution, start: float) -> Execution:
        execution.duration = time.monotonic() - start
        self.store.end_execution(
            execution.id,
            duration=execution.duration,
            result=execution.result,
            error=execution.error,
            logs=execution.logs,
            tier=execution.tier,
        )
        return execution

    def _serve(
        self, sock: socket.socket, code: str, execution: Execution, final: dict[str, Any]
    ) -> None:
        """Answer the guest's calls until it ends (end-of-file) or sends its result."""
        try:
            _send(sock, {"code": code, "methods": self._methods})
            seq = 0
            while True:
                frame = _recv(sock)
                if not isinstance(frame, dict):
                    return
                if "call" not in frame:
                    if "result" in frame:
                        final["result"] = frame["result"]
                    elif isinstance(frame.get("error"), dict):
                        final["error"] = frame["error"]
                    return
                seq += 1
                if seq > MAX_CALLS:
                    _send(
                        sock,
                        {
                            "error": {
                                "type": "BadInput",
                                "message": f"more than {MAX_CALLS} API calls in one execution",
                                "hint": "do the work in several execute calls",
                            }
                        },
                    )
                    continue
                _send(sock, self._one_call(execution, seq, frame))
        except OSError:
            return  # the guest is gone (stopped, killed): nothing more to answer

    def _one_call(self, execution: Execution, seq: int, frame: dict[str, Any]) -> dict[str, Any]:
        method = frame.get("call")
        args = frame.get("args", [])
        kwargs = frame.get("kwargs", {})
        arguments = {"args": args, "kwargs": kwargs}
        if (
            not isinstance(method, str)
            or not isinstance(args, list)
            or not isinstance(kwargs, dict)
        ):
            return {"error": {"type": "BadInput", "message": "malformed call", "hint": None}}
        record: dict[str, Any] = {"seq": seq, "method": method, "arguments": arguments}
        execution.calls.append(record)
        try:
            op = _catalog.operation(method)
            gated = self.gate.check(op, args, kwargs)
        except ForkmanError as exc:
            record["outcome"] = "refused"
            error = _error_json(exc)
            self.store.add_call(execution.id, seq, method, arguments, "refused", error)
            return {"error": error}
        if gated and not self.allow_writes:
            plan = self.store.add_plan(execution.id, method, arguments)
            execution.plans.append(plan)
            value = {
                "plan": plan,
                "status": "pending",
                "call": _call_text(method, args, kwargs),
                "note": "not performed: this server is read-only. A person applies it with "
                f"`forkman agent approve {plan}` "
                f"(or rejects it with `forkman agent reject {plan}`)",
            }
            record["outcome"] = "planned"
            self.store.add_call(execution.id, seq, method, arguments, "planned", value, plan)
            return {"value": value}
        try:
            value = call_operation(self.project, method, args, kwargs)
        except ForkmanError as exc:
            record["outcome"] = "error"
            error = _error_json(exc)
            self.store.add_call(execution.id, seq, method, arguments, "error", error)
            return {"error": error}
        except Exception as exc:  # a bug of forkman: the agent sees its type and message
            record["outcome"] = "error"
            error = {
                "type": type(exc).__name__,
                "message": str(exc),
                "hint": "this is a forkman bug; the call did not complete",
            }
            self.store.add_call(execution.id, seq, method, arguments, "error", error)
            return {"error": error}
        record["outcome"] = "done"
        self.store.add_call(execution.id, seq, method, arguments, "done", value)
        return {"value": value}


def _call_text(method: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"fm.{method}({', '.join(parts)})"


def apply_plan(root: Path, plan_id: int) -> tuple[Any, ForkmanError | None]:
    """Perform pending plan `plan_id` (a person approved it): its result, or its error.

    The call is validated again as it was when planned; a sync is taken with
    ``yes=True`` unless the plan says otherwise (approving it is the confirmation).
    """
    import forkman

    project = forkman.Project.open(root)
    store = AgentStore(project.core.state_dir)
    try:
        plan = store.plan(plan_id)
        op = _catalog.operation(plan.method)
        args = list(plan.arguments.get("args", []))
        kwargs = dict(plan.arguments.get("kwargs", {}))
        Gate(project).check(op, args, kwargs)
        if "yes" in inspect.signature(getattr(type(project), op.name)).parameters:
            kwargs.setdefault("yes", True)
        store.claim(plan_id, "applying")
        try:
            value = call_operation(project, plan.method, args, kwargs)
        except ForkmanError as exc:
            store.finish(plan_id, "failed", _error_json(exc))
            return None, exc
        except BaseException as exc:
            store.finish(plan_id, "failed", _error_json(exc))
            raise
        store.finish(plan_id, "applied", value)
        return value, None
    finally:
        store.close()
