"""forkman: own your dependencies as forks.

The public library surface is what :data:`__all__` lists: :class:`Project`
(a method for every operation the CLI offers), its result types, the
:class:`ForkmanError` hierarchy and the :class:`Observer` protocol. It follows
semantic versioning; every other module (the layer packages such as
:mod:`forkman.operations`) is internal and may change in any release. The
CLI (:mod:`forkman.cli`) is a thin layer over this API.

Example::

    import forkman

    fm = forkman.Project.open(".")
    print([fork.name for fork in fm.forks()])

Names are imported on first use, so ``import forkman`` stays cheap (the
pre-commit hook ``forkman check`` imports nothing it does not need).
"""

from __future__ import annotations

import importlib

from .core.version import __version__

MYPY = False  # importing typing at run time would slow `forkman check` down
if MYPY:
    from typing import Any

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "Project": "forkman.api",
    "to_json": "forkman.operations.results",
    "AuditRun": "forkman.operations.results",
    "CheckResult": "forkman.operations.results",
    "ErrorInfo": "forkman.operations.results",
    "ForkInfo": "forkman.operations.results",
    "ForkResult": "forkman.operations.results",
    "InitResult": "forkman.operations.results",
    "PatchResult": "forkman.operations.results",
    "SyncReport": "forkman.operations.results",
    "SyncRun": "forkman.operations.results",
    "TestResult": "forkman.operations.results",
    "UnforkResult": "forkman.operations.results",
    "UnforkRun": "forkman.operations.results",
    "SyncOutcome": "forkman.operations.sync",
    "CiReport": "forkman.ci.report",
    "CiFinding": "forkman.ci.report",
    "StageResult": "forkman.ci.report",
    "StageStatus": "forkman.ci.report",
    "RenderedFile": "forkman.reports.templates",
    "ConflictInfo": "forkman.operations.sync",
    "Observer": "forkman.core.observer",
    "BatchObserver": "forkman.core.observer",
    "NullObserver": "forkman.core.observer",
    "RecordingObserver": "forkman.core.observer",
    "ForkmanError": "forkman.core.errors",
    "BadInput": "forkman.core.errors",
    "Blocked": "forkman.core.errors",
    "BuildError": "forkman.core.errors",
    "Busy": "forkman.core.errors",
    "ConfigError": "forkman.core.errors",
    "IntegrityError": "forkman.core.errors",
    "LockError": "forkman.core.errors",
    "NetworkError": "forkman.core.errors",
    "NotFound": "forkman.core.errors",
    "ProjectError": "forkman.core.errors",
    "SecurityError": "forkman.core.errors",
    "UnsafeArchive": "forkman.core.errors",
}

__all__ = [
    "AuditRun",
    "BadInput",
    "BatchObserver",
    "Blocked",
    "BuildError",
    "Busy",
    "CheckResult",
    "CiFinding",
    "CiReport",
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
    "RenderedFile",
    "SecurityError",
    "StageResult",
    "StageStatus",
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

if MYPY:
    from .api import Project
    from .ci.report import CiFinding, CiReport, StageResult, StageStatus
    from .core.errors import (
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
    from .core.observer import BatchObserver, NullObserver, Observer, RecordingObserver
    from .operations.results import (
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
    from .operations.sync import ConflictInfo, SyncOutcome
    from .reports.templates import RenderedFile


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'forkman' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
