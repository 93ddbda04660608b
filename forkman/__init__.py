"""forkman: own your dependencies as forks.

The public library surface is what :data:`__all__` lists: :class:`Project`
(a method for every operation the CLI offers), its result types, the
:class:`ForkmanError` hierarchy and the :class:`Observer` protocol. It follows
semantic versioning; every module and name with a leading underscore is
private and may change in any release. The CLI (:mod:`forkman.cli`) is a thin
layer over this API.

Example::

    import forkman

    fm = forkman.Project.open(".")
    print([fork.name for fork in fm.forks()])

Names are imported on first use, so ``import forkman`` stays cheap (the
pre-commit hook ``forkman check`` imports nothing it does not need).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "Project": "forkman.api",
    "to_json": "forkman._results",
    "AuditRun": "forkman._results",
    "CheckResult": "forkman._results",
    "ErrorInfo": "forkman._results",
    "ForkInfo": "forkman._results",
    "ForkResult": "forkman._results",
    "InitResult": "forkman._results",
    "PatchResult": "forkman._results",
    "SyncReport": "forkman._results",
    "SyncRun": "forkman._results",
    "TestResult": "forkman._results",
    "UnforkResult": "forkman._results",
    "UnforkRun": "forkman._results",
    "SyncOutcome": "forkman._sync",
    "ConflictInfo": "forkman._sync",
    "Observer": "forkman._observer",
    "BatchObserver": "forkman._observer",
    "NullObserver": "forkman._observer",
    "RecordingObserver": "forkman._observer",
    "ForkmanError": "forkman._errors",
    "BadInput": "forkman._errors",
    "Blocked": "forkman._errors",
    "BuildError": "forkman._errors",
    "Busy": "forkman._errors",
    "ConfigError": "forkman._errors",
    "IntegrityError": "forkman._errors",
    "LockError": "forkman._errors",
    "NetworkError": "forkman._errors",
    "NotFound": "forkman._errors",
    "ProjectError": "forkman._errors",
    "SecurityError": "forkman._errors",
    "UnsafeArchive": "forkman._errors",
}

__all__ = [
    "AuditRun",
    "BadInput",
    "BatchObserver",
    "Blocked",
    "BuildError",
    "Busy",
    "CheckResult",
    "ConfigError",
    "ConflictInfo",
    "ErrorInfo",
    "ForkInfo",
    "ForkResult",
    "ForkmanError",
    "InitResult",
    "IntegrityError",
    "LockError",
    "NetworkError",
    "NotFound",
    "NullObserver",
    "Observer",
    "PatchResult",
    "Project",
    "ProjectError",
    "RecordingObserver",
    "SecurityError",
    "SyncOutcome",
    "SyncReport",
    "SyncRun",
    "TestResult",
    "UnforkResult",
    "UnforkRun",
    "UnsafeArchive",
    "__version__",
    "to_json",
]

if TYPE_CHECKING:
    from ._errors import (
        BadInput,
        Blocked,
        BuildError,
        Busy,
        ConfigError,
        ForkmanError,
        IntegrityError,
        LockError,
        NetworkError,
        NotFound,
        ProjectError,
        SecurityError,
        UnsafeArchive,
    )
    from ._observer import BatchObserver, NullObserver, Observer, RecordingObserver
    from ._results import (
        AuditRun,
        CheckResult,
        ErrorInfo,
        ForkInfo,
        ForkResult,
        InitResult,
        PatchResult,
        SyncReport,
        SyncRun,
        TestResult,
        UnforkResult,
        UnforkRun,
        to_json,
    )
    from ._sync import ConflictInfo, SyncOutcome
    from .api import Project


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'forkman' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
