"""`forkman check` without click: it runs in pre-commit hooks, so start-up matters.

:func:`fast_check` handles the plain forms (``check [NAME...] [--format
text|json]``); when :mod:`forkman.gate.quickcheck` proves the project clean it
imports nothing else, otherwise the full check explains every finding.
Anything else (``--help``, ``--project``) falls through to click, whose command
(:mod:`forkman.cli._check_cmd`) calls the same :func:`run_check`.
"""

from __future__ import annotations

import os
import sys

MYPY = False  # the quick path imports nothing it does not need (not even typing)
if MYPY:
    from collections.abc import Sequence


def _find_root(start: str) -> str:
    here = os.path.abspath(start)
    while True:
        if os.path.isfile(os.path.join(here, "pyproject.toml")):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            break
        here = parent
    from ..core.errors import ProjectError

    raise ProjectError(
        f"no pyproject.toml in {os.path.abspath(start)} or any parent directory",
        hint="run forkman inside your project, or pass --project DIR",
    )


def _dirs(
    root: str,
) -> tuple[str, str, tuple[str, ...], str | None, tuple[str, ...]]:
    """vendor-dir, patches-dir, the namespace's protected files, its destination and the
    declared forks, cached by the pyproject's digest (parsing TOML is slow).

    Every path is validated as the full configuration validates it (relative,
    normalised, inside the project); the symlink check runs every time.
    """
    from ..core.paths import config_dirs, confine_config, confined_relpath, protected_names
    from ..gate.quickcheck import sha256_hex
    from ..model.statetrust import read_cache, write_cache

    with open(os.path.join(root, "pyproject.toml"), "rb") as fh:
        raw = fh.read()
    digest = sha256_hex(raw)
    cache = os.path.join(root, ".forkman", "config.cache")
    # sealed (forkman.model.statetrust): a cache this user's forkman did not write is ignored
    cached = read_cache(cache, "config.cache")
    if isinstance(cached, list) and len(cached) == 7 and cached[0] == digest:
        try:
            table = cached[6]
            confine_config(root, table)  # the symlink check runs every time
            return (
                str(cached[1]),
                str(cached[2]),
                tuple(str(p) for p in cached[3]),
                None if cached[4] is None else str(cached[4]),
                tuple(str(n) for n in cached[5]),
            )
        except (TypeError, ValueError, AttributeError):
            pass
    import tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        from ..core.errors import ConfigError

        raise ConfigError(f"{root}/pyproject.toml is not valid TOML: {exc}") from None
    tool = data.get("tool", {})
    if "forkman" not in tool and not os.path.exists(os.path.join(root, "forkman.lock")):
        from ..core.errors import ProjectError

        raise ProjectError(
            f"{root} is not a forkman project: its pyproject.toml has no [tool.forkman] "
            "and there is no forkman.lock",
            hint="run `forkman init` to start one (or remove the forkman hooks from "
            ".pre-commit-config.yaml)",
        )
    table = tool.get("forkman", {})
    forks = table.get("forks", {}) if isinstance(table, dict) else None
    if (
        not isinstance(table, dict)
        or not isinstance(forks, dict)
        or any(not isinstance(t, dict) or n != _canonical(n) for n, t in forks.items())
    ):
        from pathlib import Path

        from ..model.config import load_config

        load_config(Path(root) / "pyproject.toml")  # raises the precise configuration error
        raise AssertionError("unreachable: load_config refuses this table")
    vendor, patches = config_dirs(table)
    vendoring = table.get("vendoring", {})
    vendoring = vendoring if isinstance(vendoring, dict) else {}
    where = "[tool.forkman.vendoring]"
    protected = protected_names(vendoring.get("protected-files", []), f"{where}.protected-files")
    destination = vendoring.get("destination")
    if destination is not None:
        destination = confined_relpath(destination, f"{where}.destination")
    declared = tuple(sorted(n for n, t in forks.items() if isinstance(t.get("requirement"), str)))
    confined: dict[str, object] = {"vendor-dir": vendor, "patches-dir": patches}
    if destination is not None:
        confined["vendoring"] = {"destination": destination}
    confine_config(root, confined)
    state = os.path.dirname(cache)
    if "forkman" in tool and os.path.isdir(state) and not os.path.islink(state):
        write_cache(
            cache,
            "config.cache",
            [digest, vendor, patches, list(protected), destination, list(declared), confined],
        )
    return vendor, patches, protected, destination, declared


def _canonical(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _all_forked(root: str, declared: tuple[str, ...]) -> bool:
    """Whether every declared fork has a table in the (canonical) lock."""
    if not declared:
        return True
    try:
        with open(os.path.join(root, "forkman.lock"), encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return False
    from ..model.lock import _key

    return all(f"\n[forks.{_key(name)}]\n" in text for name in declared)


def run_check(root: str | os.PathLike[str], names: Sequence[str], fmt: str) -> int:
    """Check the project at `root`, print the report, return the exit code."""
    from ..gate.quickcheck import quick_clean

    root = os.fspath(root)
    vendor_dir, patches_dir, protected, destination, declared = _dirs(root)
    # with interrupted work to recover, the full check runs (and recovers it first);
    # so does it when a declared fork is not made yet (the quick path knows only the lock)
    if not os.path.isdir(os.path.join(root, ".forkman", "txn")) and _all_forked(root, declared):
        count = quick_clean(root, vendor_dir, patches_dir, list(names))
        if count is not None:
            if fmt == "json":
                import json

                print(
                    json.dumps(
                        {"ok": True, "forks_checked": count, "findings": [], "hints": []}, indent=2
                    )
                )
            else:
                print(f"ok: {count} fork(s) match forkman.lock")
            return 0
    from pathlib import Path

    from ..gate.check import check

    if os.path.isdir(os.path.join(root, ".forkman", "txn")):
        from ..model.project import Project
        from ..store.txn import recover

        for line in recover(Project(Path(root))):
            print(f"recovered: {line}", file=sys.stderr)
    report = check(
        Path(root),
        vendor_dir=vendor_dir,
        patches_dir=patches_dir,
        names=names,
        protected=protected,
        destination=destination,
        declared=declared,
    )
    if fmt == "json":
        print(report.to_json())
        return 0 if report.ok else 1
    if report.ok:
        print(f"ok: {report.forks_checked} fork(s) match forkman.lock")
        return 0
    for finding in report.findings:
        where = f"{finding.fork}: " if finding.fork else ""
        print(f"{where}{finding.message()}")
    for hint in report.hints():
        print(f"hint: {hint}", file=sys.stderr)
    return 1


def fast_check(args: Sequence[str]) -> int | None:
    """Run `check` if `args` is a plain check invocation; None to let click handle it."""
    if not args or args[0] != "check":
        return None
    fmt = "text"
    names: list[str] = []
    rest = list(args[1:])
    while rest:
        arg = rest.pop(0)
        if arg == "--format" and rest and rest[0] in ("text", "json"):
            fmt = rest.pop(0)
        elif arg in ("--format=text", "--format=json"):
            fmt = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            return None
        else:
            names.append(arg)
    from ..core.errors import ForkmanError

    try:
        return run_check(_find_root(os.getcwd()), names, fmt)
    except ForkmanError as exc:
        print(exc.diagnostics(), file=sys.stderr)
        return exc.exit_code
