"""`forkman check` without click: it runs in pre-commit hooks, so start-up matters.

:func:`fast_check` handles the plain forms (``check [NAME...] [--format
text|json]``) with nothing but the standard library and forkman's lock and
tree code; anything else (``--help``, ``--project``) falls through to click,
whose command (:mod:`forkman.cli._check_cmd`) calls the same :func:`run_check`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path


def _find_root(start: Path) -> Path:
    here = start.resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    from .._errors import ProjectError

    raise ProjectError(
        f"no pyproject.toml in {here} or any parent directory",
        hint="run forkman inside your project, or pass --project DIR",
    )


def _dirs(root: Path) -> tuple[str, str]:
    import tomllib

    try:
        data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        from .._errors import ConfigError

        raise ConfigError(f"{root / 'pyproject.toml'} is not valid TOML: {exc}") from None
    tool = data.get("tool", {})
    if "forkman" not in tool and not (root / "forkman.lock").exists():
        from .._errors import ProjectError

        raise ProjectError(
            f"{root} is not a forkman project: its pyproject.toml has no [tool.forkman] "
            "and there is no forkman.lock",
            hint="run `forkman init` to start one (or remove the forkman hooks from "
            ".pre-commit-config.yaml)",
        )
    table = tool.get("forkman", {})
    vendor = table.get("vendor-dir", "vendor")
    patches = table.get("patches-dir", "patches")
    if not isinstance(vendor, str) or not isinstance(patches, str):
        from .._config import load_config

        load_config(root / "pyproject.toml")  # raises the precise configuration error
    return str(vendor), str(patches)


def run_check(
    root: Path, names: Sequence[str], fmt: str, status: tuple[int, int] | None = None
) -> int:
    """Check the project at `root`, print the report, return the exit code.

    `status` is a ``git status`` already started (see :mod:`forkman._quickcheck`).
    """
    from .._quickcheck import quick_clean

    try:
        vendor_dir, patches_dir = _dirs(root)
    except BaseException:
        _discard(status)
        raise
    if (root / ".forkman" / "txn").is_dir():
        _discard(status)  # interrupted work to recover first: the full check runs
    else:
        count = quick_clean(root, vendor_dir, patches_dir, list(names), status)
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
    from .._check import check

    if (root / ".forkman" / "txn").is_dir():
        from .._project import Project
        from .._txn import recover

        for line in recover(Project(root)):
            print(f"recovered: {line}", file=sys.stderr)
    report = check(root, vendor_dir=vendor_dir, patches_dir=patches_dir, names=names)
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


def _discard(status: tuple[int, int] | None) -> None:
    if status is not None:
        from .._gitstatus import collect

        collect(*status)


def fast_check(args: Sequence[str], status: tuple[int, int] | None = None) -> int | None:
    """Run `check` if `args` is a plain check invocation; None to let click handle it.

    `status` is a ``git status`` the entry point started before importing this.
    """
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
            _discard(status)
            return None
        else:
            names.append(arg)
    from .._errors import ForkmanError
    from .._gitstatus import start_status

    if status is None:
        status = start_status()  # runs while the rest of the check gets ready
    try:
        return run_check(_find_root(Path.cwd()), names, fmt, status)
    except ForkmanError as exc:
        print(exc.diagnostics(), file=sys.stderr)
        return exc.exit_code
