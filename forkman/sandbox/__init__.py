"""The sandbox: run untrusted code (a fork's test suite) with no network and no secrets."""

from ._detect import HostSupport, Mechanism, detect
from ._forkserver import ForkServer, default_server, run
from .interface import RunResult, SandboxPolicy, SandboxSetupError, SandboxUnavailable, Tier

__all__ = [
    "ForkServer",
    "HostSupport",
    "Mechanism",
    "RunResult",
    "SandboxPolicy",
    "SandboxSetupError",
    "SandboxUnavailable",
    "Tier",
    "default_server",
    "detect",
    "run",
]
