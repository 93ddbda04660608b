"""The warm fork server: one single-threaded process that forks a sandbox per run.

``unshare(CLONE_NEWUSER)`` refuses threaded callers, and a fresh interpreter
costs tens of milliseconds, so forkman starts this server once, as a new
process with a clean environment (and, when asked, modules such as the MCP
guest already imported), and asks it over
a unix socketpair to run commands. Each request carries the run's pipes (as
SCM_RIGHTS file descriptors); the server forks a supervisor for it and goes
back to listening, so runs can overlap (``forkman test --jobs N``).
"""

# Paths such as /tmp below name directories inside the sandbox, not temporary files.
# ruff: noqa: S108

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.errors import SecurityError
from ._detect import HostSupport, detect
from .interface import RunResult, SandboxPolicy, SandboxSetupError, Tier

MAX_MESSAGE = 1 << 20


def _server_main(sock_fd: int, preload: Sequence[str]) -> None:
    """The server loop (runs in the fresh, single-threaded server process)."""
    from . import _child, _linux

    for module in preload:
        with contextlib.suppress(Exception):
            __import__(module)
    try:
        abi = _linux.landlock_abi()
    except OSError:
        abi = 0
    import gc

    gc.collect()
    gc.freeze()  # keep the warm heap shared with the forked children (fewer copy-on-write faults)
    gc.disable()
    sock = socket.socket(fileno=sock_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 4)
        except OSError:
            break
        if not msg:
            break
        req = json.loads(msg)
        if len(fds) not in (3, 4):
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                _child.supervise(req, fds, abi if req.get("landlock", True) else 0)
            except BaseException as exc:  # never fall back into the server loop
                import traceback

                with contextlib.suppress(OSError):
                    os.write(
                        fds[2],
                        json.dumps(
                            {"error": f"supervisor crashed: {exc!r}\n" + traceback.format_exc()}
                        ).encode(),
                    )
            finally:
                os._exit(70)
        for fd in fds:
            os.close(fd)
    os._exit(0)


def _clean_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": root,
        "PYTHONDONTWRITEBYTECODE": "1",
    }


class ForkServer:
    """A warm server forking sandboxed runs; start once, reuse for many runs."""

    def __init__(self, *, preload: Sequence[str] = (), support: HostSupport | None = None) -> None:
        self._preload = tuple(preload)
        self._support = support
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def support(self) -> HostSupport:
        """What the host offers (probed once)."""
        if self._support is None:
            self._support = detect()
        return self._support

    def start(self) -> ForkServer:
        """Start the server process (idempotent)."""
        if self._proc is not None:
            return self
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        code = (
            "import sys; from forkman.sandbox._forkserver import _server_main; "
            f"_server_main({theirs.fileno()}, {list(self._preload)!r})"
        )
        self._proc = subprocess.Popen(
            [sys.executable, "-s", "-c", code],
            env=_clean_env(),
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            close_fds=True,
        )
        theirs.close()
        self._sock = ours
        return self

    def _restart(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
        self.start()

    def stop(self) -> None:
        """Stop the server (runs in flight finish on their own)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> ForkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tier_for(self, policy: SandboxPolicy, disabled: bool, tier: Tier | None) -> Tier:
        if disabled:
            return Tier.NONE
        run_tier = self.support.require(policy.min_tier)
        if tier is not None:
            if tier.rank > run_tier.rank:
                raise SecurityError(f"tier {tier.value!r} is not available on this host")
            if tier.rank < policy.min_tier.rank:
                raise SecurityError(f"tier {tier.value!r} is below the policy's minimum")
            run_tier = tier
        return run_tier

    def run(
        self,
        argv: Sequence[str],
        policy: SandboxPolicy,
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        python_module: str | None = None,
        python_path: Sequence[str] = (),
        disabled: bool = False,
        tier: Tier | None = None,
        on_output: Callable[[int, bytes], None] | None = None,
        stdin: int | None = None,
    ) -> RunResult:
        """Run `argv` under `policy`; with `python_module`, run that module in-process
        in the warm child instead of exec'ing (argv becomes its arguments).

        `disabled` runs without isolation (``--no-sandbox``); `tier` asks for a
        weaker tier than the best (for tests and comparisons), never a stronger one.
        `on_output` receives each chunk of stdout (1) and stderr (2) as it is read.
        `stdin` is a file descriptor (one end of a socketpair, a pipe) that becomes the
        command's standard input, the one channel it has to the caller. `run` takes it
        over and closes it once handed to the sandbox, so the caller's other end sees
        end-of-file when the run ends. Without it, standard input is ``/dev/null``.
        """
        try:
            run_tier = self._tier_for(policy, disabled, tier)
        except BaseException:
            if stdin is not None:
                os.close(stdin)
            raise
        self.start()
        assert self._sock is not None
        work_dir = (
            str(Path(cwd).resolve())
            if cwd is not None
            else (str(Path(policy.writable[0]).resolve()) if policy.writable else "/")
        )
        source_env = os.environ if env is None else env
        run_env = {k: v for k, v in source_env.items() if k in policy.env_allow}
        run_env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        if run_tier is Tier.NAMESPACES:
            run_env["HOME"] = "/tmp"
            run_env["TMPDIR"] = "/tmp"
        elif policy.writable:
            run_env["HOME"] = str(Path(policy.writable[0]).resolve())
            run_env["TMPDIR"] = run_env["HOME"]
        run_env["PYTHONDONTWRITEBYTECODE"] = "1"
        hide = {str(Path.home().resolve())}
        if "HOME" in os.environ:
            hide.add(str(Path(os.environ["HOME"]).resolve()))
        req: dict[str, Any] = {
            "argv": list(argv),
            "cwd": work_dir,
            "env": run_env,
            "tier": run_tier.value,
            "policy": policy.to_json(),
            "hide": sorted(h for h in hide if h != "/"),
        }
        if python_module:
            req["python"] = {
                "module": python_module,
                "args": list(argv),
                "sys_path": list(python_path),
            }
            req["argv"] = [python_module, *argv]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        message = json.dumps(req).encode()
        passed = [out_w, err_w, res_w] + ([stdin] if stdin is not None else [])
        # the read ends stay here; run() owns every write end and `stdin`, and closes them
        try:
            with self._lock:
                try:
                    assert self._sock is not None
                    socket.send_fds(self._sock, [message], passed)
                except OSError:  # the server died (killed, OOM): start a new one, once
                    self._restart()
                    assert self._sock is not None
                    socket.send_fds(self._sock, [message], passed)
        except OSError as exc:
            for fd in (out_r, err_r, res_r):
                os.close(fd)
            raise SandboxSetupError(f"cannot reach the sandbox's fork server: {exc}") from None
        finally:
            for fd in passed:
                os.close(fd)
        start = time.monotonic()
        out, err, res = _collect([out_r, err_r, res_r], policy.output_limit, on_output)
        wall = time.monotonic() - start
        if not res:
            raise SandboxSetupError("the fork server died before reporting a result")
        info = json.loads(res)
        if "error" in info:
            raise SandboxSetupError(info["error"], hint="run `forkman sandbox doctor`")
        return RunResult(
            exit_code=info.get("exit_code"),
            signal=info.get("signal"),
            timed_out=bool(info["timed_out"]),
            memory_exceeded=bool(info["memory_exceeded"]),
            processes_exceeded=bool(info["processes_exceeded"]),
            stdout=out,
            stderr=err,
            duration=float(info.get("duration", wall)),
            tier=run_tier,
            enforced=tuple(info["enforced"]),
            disabled_by_user=disabled,
        )


def _collect(
    fds: list[int], limit: int, on_output: Callable[[int, bytes], None] | None = None
) -> tuple[bytes, bytes, bytes]:
    """Read pipes to EOF, keeping at most `limit` bytes of each; closes them. Chunks of
    the first two (stdout, stderr) also go to `on_output` (1 or 2, chunk) as they come."""
    bufs: dict[int, bytearray] = {fd: bytearray() for fd in fds}
    sel = selectors.DefaultSelector()
    for fd in fds:
        sel.register(fd, selectors.EVENT_READ)
    try:
        open_fds = set(fds)
        while open_fds:
            for key, _ in sel.select():
                fd = int(key.fd)
                chunk = os.read(fd, 65536)
                if not chunk:
                    sel.unregister(fd)
                    open_fds.discard(fd)
                    continue
                if on_output is not None and fd != fds[2]:
                    with contextlib.suppress(Exception):  # progress never breaks a run
                        on_output(1 if fd == fds[0] else 2, chunk)
                buf = bufs[fd]
                if len(buf) < limit:
                    buf += chunk[: limit - len(buf)]
    finally:
        sel.close()
        for fd in fds:
            os.close(fd)
    return bytes(bufs[fds[0]]), bytes(bufs[fds[1]]), bytes(bufs[fds[2]])


_default: ForkServer | None = None
_default_lock = threading.Lock()


def default_server() -> ForkServer:
    """The process-wide fork server, started on first use."""
    global _default
    with _default_lock:
        if _default is None:
            import atexit

            _default = ForkServer().start()
            atexit.register(_default.stop)
        return _default


def run(
    argv: Sequence[str],
    policy: SandboxPolicy,
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> RunResult:
    """Run `argv` under `policy` through the process-wide fork server."""
    return default_server().run(argv, policy, cwd=cwd, env=env)
