"""The proof that a suite tested the fork's build: a probe, run inside the sandbox,
reports where each of the fork's modules was imported from, which must be the test
environment's copy; the scratch copy loses the fork's own top-level modules so the
suite cannot import them from there instead."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from .env import TestEnv

PROBE = """
import importlib, json, sys
_FORKMAN_MODULES = {modules!r}
_FORKMAN_OUT = {out!r}


def _forkman_where():
    found = {{}}
    for name in _FORKMAN_MODULES:
        mod = sys.modules.get(name)
        if mod is None:
            try:
                mod = importlib.import_module(name)
            except BaseException as exc:
                found[name] = {{"error": repr(exc)[:300]}}
                continue
        found[name] = {{
            "file": getattr(mod, "__file__", None),
            "path": [str(p) for p in (getattr(mod, "__path__", None) or [])],
        }}
    with open(_FORKMAN_OUT, "w") as f:
        json.dump(found, f)


def pytest_sessionfinish(session, exitstatus):
    _forkman_where()
"""
"""Where the fork's modules came from, written by the sandboxed run itself: a pytest
plugin (after the suite, so it sees what the suite imported) or, for other commands,
a probe run before the suite."""

PROBE_MODULE = "_forkman_probe"
"""The probe's module name inside the sandbox."""


def unshadow(work: Path, modules: Sequence[str]) -> None:
    """Take the fork's own top-level modules out of the scratch copy's root and ``src/``,
    so the suite imports the build in the test environment (pytest puts the rootdir on
    sys.path); a package folder holding tests stays."""
    for base in (work, work / "src"):
        for name in modules:
            pkg = base / name
            if pkg.is_dir() and not pkg.is_symlink() and not has_tests(pkg):
                shutil.rmtree(pkg)
            for f in [base / f"{name}.py", *base.glob(f"{name}.*.so")]:
                if f.is_file() or f.is_symlink():
                    f.unlink()


def import_proof(path: Path, env: TestEnv) -> tuple[tuple[str, ...], str | None]:
    """The proof from the probe's report: ``module: path`` inside the env, or why not."""
    if not env.modules:
        return (), None
    try:
        if path.stat().st_size > 1 << 20:
            raise ValueError("oversized")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except (OSError, ValueError):
        return (), "the run did not report where it imported the fork from"
    site = os.path.realpath(env.site)
    proven: list[str] = []
    for name in env.modules:
        info = data.get(name)
        if not isinstance(info, dict) or "error" in info:
            continue
        files = [info.get("file"), *(info.get("path") or [])]
        places = [os.path.normpath(f) for f in files if isinstance(f, str)]
        outside = [
            f for f in places if not os.path.isabs(f) or os.path.commonpath([site, f]) != site
        ]
        if outside:
            return tuple(proven), (
                f"the suite imported {name} from {outside[0]}, not from the fork's build "
                "in the test environment (a package folder holding tests stays in the "
                f"scratch copy: test the installed package, e.g. `pytest --pyargs {name}`)"
            )
        if places:
            proven.append(f"{name}: {os.path.relpath(places[0], site)}")
    if env.modules and not proven:
        return (), f"the run could import none of the fork's modules ({', '.join(env.modules)})"
    return tuple(proven), None


def has_tests(tree: Path) -> bool:
    """`tree` holds a test file pytest would collect (``test_*.py``, ``*_test.py``)."""
    for _dirpath, _dirs, files in os.walk(tree):
        if any(
            (f.startswith("test_") or f.endswith("_test.py")) and f.endswith(".py") for f in files
        ):
            return True
    return False
