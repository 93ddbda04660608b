"""`forkman test`: run a fork's own test suite in the sandbox and record the result.

The fork is built inside the sandbox and installed, with its test
requirements and pytest (wheels from the configured index, hash-checked),
into a venv cached by content (:mod:`forkman._testenv`): no code of the fork
runs outside the sandbox. The suite then runs, with no network, on a writable
scratch copy of the vendored tree, by the venv's own interpreter, and its
JUnit XML report is parsed. The result records the version and tree that were
tested and where the suite imported the fork from, which must be the venv's
copy of the fork's build.
"""

from __future__ import annotations

import enum
import json
import os
import re
import shlex
import shutil
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from ._config import Config
from ._errors import BadInput, ConfigError, NotFound
from ._fsutil import remove_tree
from ._lock import GitSource, LockEntry
from ._observer import NullObserver, Observer
from ._project import Project
from ._testenv import TestEnv, copy_tree, parse_requirements, prepare_test_env
from .sandbox import ForkServer, RunResult, SandboxPolicy, Tier

NETWORK_MARKERS = (
    "Network is unreachable",
    "[Errno 101]",
    "Temporary failure in name resolution",
    "Name or service not known",
    "gaierror",
    "No address associated with hostname",
)
"""Failure texts that mean a test tried to reach the network."""


class TestStatus(enum.Enum):
    """How a fork's test run ended."""

    PASSED = "passed"
    """Every test passed (or was skipped)."""
    FAILED = "failed"
    """At least one test failed or errored."""
    NETWORK_DISABLED = "network-disabled"
    """Tests failed because they tried to reach the network, which is disabled."""
    NO_TESTS = "no-tests"
    """The vendored tree holds no tests to run."""
    ERROR = "error"
    """The suite did not produce a report (crash, timeout, limit exceeded)."""

    __test__ = False


@dataclass(frozen=True)
class TestConfig:
    """``[tool.forkman.forks.NAME.test]``."""

    command: tuple[str, ...] = ("pytest", "-q")
    """The test command, run in the scratch copy by the test environment's interpreter."""
    requirements: tuple[str, ...] = ()
    """Extra requirements installed into the test environment."""
    extras: tuple[str, ...] = ()
    """Extras of the fork whose dependencies are installed too."""
    include: tuple[str, ...] = ()
    """Files or folders of the project (relative paths) copied into the scratch tree."""

    __test__ = False


@dataclass(frozen=True)
class TestCounts:
    """Counts from a JUnit XML report."""

    passed: int
    """Tests that passed."""
    failed: int
    """Tests that failed."""
    errors: int
    """Tests that errored."""
    skipped: int
    """Tests that were skipped."""
    duration: float
    """Seconds the suite reported."""
    network_failures: int
    """Failures and errors whose text says the network was unreachable."""

    __test__ = False


@dataclass(frozen=True)
class TestOutcome:
    """The result of testing one fork."""

    name: str
    """The fork."""
    status: TestStatus
    """How it ended."""
    message: str
    """One line for the user."""
    counts: TestCounts | None
    """Counts, when a report was produced."""
    run: RunResult | None
    """The sandboxed run, when one happened."""
    env_key: str
    """The test environment's content hash."""
    command: tuple[str, ...]
    """The command that ran."""
    version: str = ""
    """The fork's version in the lock when it was tested."""
    tree: str = ""
    """The fork's vendored tree hash in the lock when it was tested."""
    tested_tree: str = ""
    """Tree hash of the vendored tree as it was on disk, which was built and tested."""
    imported_from: tuple[str, ...] = ()
    """``module: path`` inside the test environment, for each module of the fork the
    suite imported (the proof that the fork's build was tested)."""

    __test__ = False


def _str_list(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key} must be a list of strings")
    return tuple(value)


def load_test_config(config: Config, name: str) -> TestConfig:
    """The test settings of fork `name`."""
    raw = config.policy(name).raw.get("test", {})
    where = f"[tool.forkman.forks.{name}.test]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table")
    command: Any = raw.get("command", "pytest -q")
    if isinstance(command, str):
        argv = tuple(shlex.split(command))
    elif isinstance(command, list) and all(isinstance(c, str) for c in command):
        argv = tuple(command)
    else:
        raise ConfigError(f"{where}.command must be a string or a list of strings")
    if not argv:
        raise ConfigError(f"{where}.command is empty")
    requirements = _str_list(raw, "requirements", where)
    parse_requirements(requirements, f"{where}.requirements")
    extras = _str_list(raw, "extras", where)
    for extra in extras:
        if not _EXTRA.fullmatch(extra):
            raise ConfigError(f"{where}.extras: {extra!r} is not an extra's name")
    include = _str_list(raw, "include", where)
    for inc in include:
        if not inc or os.path.isabs(inc) or ".." in Path(inc).parts:
            raise ConfigError(f"{where}.include: {inc!r} is not a relative path inside the project")
    return TestConfig(command=argv, requirements=requirements, extras=extras, include=include)


_EXTRA = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str | int) -> int:
    """``512M``, ``1G``, ``4096`` -> bytes."""
    if isinstance(text, int):
        return text
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = t[-1:] if t[-1:] in _SIZE_UNITS else ""
    try:
        return int(float(t[: len(t) - len(unit)]) * _SIZE_UNITS[unit])
    except ValueError:
        raise BadInput(
            f"not a size: {text!r}", hint="use a number with K, M or G, e.g. 1G"
        ) from None


def sandbox_policy(config: Config | None, **overrides: Any) -> SandboxPolicy:
    """The policy from ``[tool.forkman.sandbox]``, with overrides."""
    table = config.section("sandbox") if config is not None else {}
    kw: dict[str, Any] = {}
    try:
        if "min-tier" in table:
            kw["min_tier"] = Tier.parse(str(table["min-tier"]))
        for key, attr in (
            ("timeout", "timeout"),
            ("cpu-seconds", "cpu_seconds"),
            ("max-processes", "max_processes"),
            ("max-open-files", "max_open_files"),
        ):
            if key in table:
                kw[attr] = type(getattr(SandboxPolicy(), attr))(table[key])
        for key, attr in (
            ("memory", "memory"),
            ("max-file-size", "max_file_size"),
            ("tmpfs-size", "tmpfs_size"),
        ):
            if key in table:
                kw[attr] = parse_size(table[key])
        if "env-allow" in table:
            kw["env_allow"] = SandboxPolicy().env_allow + _str_list(
                table, "env-allow", "[tool.forkman.sandbox]"
            )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[tool.forkman.sandbox]: {exc}") from None
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return SandboxPolicy(**kw)


# ---- the environment --------------------------------------------------------


def _fork_requirements(tree: Path, extras: Sequence[str]) -> list[str]:
    pyproject = tree / "pyproject.toml"
    if not pyproject.is_file():
        return []
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (tomllib.TOMLDecodeError, OSError):
        return []
    reqs = [str(r) for r in project.get("dependencies", [])]
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise ConfigError(
                f"the fork has no extra {extra!r}", hint=f"known: {', '.join(optional)}"
            )
        reqs += [str(r) for r in optional[extra]]
    return reqs


def test_requirements(
    project: Project, entry: LockEntry, cfg: TestConfig
) -> tuple[Requirement, ...]:
    """The requirements installed for `entry`'s suite: the dependencies and extras its
    pyproject.toml declares, and the configured ``requirements`` (all PEP 508)."""
    tree = project.root / entry.path
    declared = parse_requirements(
        _fork_requirements(tree, cfg.extras), f"the dependencies of the fork {entry.name}"
    )
    configured = parse_requirements(
        cfg.requirements, f"[tool.forkman.forks.{entry.name}.test].requirements"
    )
    return (*declared, *configured)


def _is_pytest(command: Sequence[str]) -> bool:
    return command[0] in ("pytest", "py.test") or tuple(command[:3]) == ("python", "-m", "pytest")


def prepare_env(
    project: Project,
    entry: LockEntry,
    cfg: TestConfig,
    server: ForkServer,
    observer: Observer | None = None,
    *,
    policy: SandboxPolicy | None = None,
    requirements: Sequence[Requirement] | None = None,
    snapshot: Path | None = None,
    no_sandbox: bool = False,
) -> TestEnv:
    """The cached test environment of `entry` (built when absent; the fork is built in
    the sandbox). `requirements` replaces :func:`test_requirements` when given."""
    reqs = test_requirements(project, entry, cfg) if requirements is None else requirements
    return prepare_test_env(
        project,
        entry,
        reqs,
        server,
        policy or sandbox_policy(project.config),
        extras=cfg.extras,
        with_pytest=_is_pytest(cfg.command),
        snapshot=snapshot,
        no_sandbox=no_sandbox,
        observer=observer,
    )


# ---- reports ------------------------------------------------------------------


def parse_junit(path: Path) -> TestCounts:
    """Counts from a JUnit XML file (pytest's format)."""
    root = ET.parse(path).getroot()  # noqa: S314 - written by our own sandboxed run, size-capped
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = failures = errors = skipped = 0
    duration = 0.0
    network = 0
    for s in suites:
        tests += int(s.get("tests", 0))
        failures += int(s.get("failures", 0))
        errors += int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
        duration += float(s.get("time", 0.0))
        for case in s.iter("testcase"):
            for bad in (*case.findall("failure"), *case.findall("error")):
                text = (bad.get("message") or "") + (bad.text or "")
                if any(m in text for m in NETWORK_MARKERS):
                    network += 1
    return TestCounts(
        passed=max(0, tests - failures - errors - skipped),
        failed=failures,
        errors=errors,
        skipped=skipped,
        duration=duration,
        network_failures=network,
    )


def _has_tests(tree: Path) -> bool:
    for _dirpath, _dirs, files in os.walk(tree):
        if any(
            (f.startswith("test_") or f.endswith("_test.py")) and f.endswith(".py") for f in files
        ):
            return True
    return False


# ---- running -------------------------------------------------------------------


_PROBE = """
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


def _include(project: Project, entry: LockEntry, cfg: TestConfig) -> list[tuple[Path, str]]:
    """The ``include`` paths, each checked to stay inside the project (no symlinks)."""
    root = project.root.resolve()
    where = f"[tool.forkman.forks.{entry.name}.test].include"
    out = []
    for inc in cfg.include:
        path = root
        for part in Path(inc).parts:
            path = path / part
            if path.is_symlink():
                raise ConfigError(
                    f"{where}: {inc!r} passes through a symlink ({path.relative_to(root)}), "
                    "which may lead outside the project",
                    hint="include the real files of the project, not links",
                )
        if not path.resolve().is_relative_to(root):
            raise ConfigError(f"{where}: {inc!r} lies outside the project")
        if not path.exists():
            raise ConfigError(f"{where}: no such file {inc!r}")
        out.append((path, inc))
    return out


def _unshadow(work: Path, modules: Sequence[str]) -> None:
    """Take the fork's own top-level modules out of the scratch copy's root and ``src/``,
    so the suite imports the build in the test environment (pytest puts the rootdir on
    sys.path); a package folder holding tests stays."""
    for base in (work, work / "src"):
        for name in modules:
            pkg = base / name
            if pkg.is_dir() and not pkg.is_symlink() and not _has_tests(pkg):
                shutil.rmtree(pkg)
            for f in [base / f"{name}.py", *base.glob(f"{name}.*.so")]:
                if f.is_file() or f.is_symlink():
                    f.unlink()


def _imports(path: Path, env: TestEnv) -> tuple[tuple[str, ...], str | None]:
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


def run_fork_tests(
    project: Project,
    entry: LockEntry,
    server: ForkServer,
    *,
    no_sandbox: bool = False,
    policy: SandboxPolicy | None = None,
    observer: Observer | None = None,
    requirements: Sequence[Requirement] | None = None,
) -> TestOutcome:
    """Prepare, run and evaluate one fork's test suite (does not touch the lock).

    `requirements` replaces the test requirements forkman would install."""
    observer = observer or NullObserver()
    cfg = load_test_config(project.config, entry.name)
    tree = project.root / entry.path
    if not tree.is_dir():
        raise NotFound(
            f"the vendored tree of {entry.name} is missing: {tree}", hint="run `forkman verify`"
        )
    policy = policy or sandbox_policy(project.config)
    if not no_sandbox:
        server.support.require(policy.min_tier)  # refuse before any work
    includes = _include(project, entry, cfg)
    reqs = test_requirements(project, entry, cfg) if requirements is None else requirements
    scratch_root = Path(tempfile.mkdtemp(prefix=f"forkman-test-{entry.name}-"))
    try:
        work = scratch_root / "tree"
        copy_tree(tree, work)
        is_pytest = _is_pytest(cfg.command)
        has_tests = _has_tests(work) or any(
            _has_tests(src) if src.is_dir() else src.name.startswith("test") for src, _ in includes
        )
        if is_pytest and not has_tests:
            kind = "git checkout" if isinstance(entry.source, GitSource) else "sdist"
            return TestOutcome(
                entry.name,
                TestStatus.NO_TESTS,
                f"the {kind} of {entry.name} ships no tests; configure "
                f"[tool.forkman.forks.{entry.name}.test] include/command or fork from git",
                None,
                None,
                "",
                cfg.command,
                version=entry.version,
                tree=entry.vendored_tree,
            )
        env = prepare_test_env(
            project,
            entry,
            reqs,
            server,
            policy,
            extras=cfg.extras,
            with_pytest=is_pytest,
            snapshot=work,
            no_sandbox=no_sandbox,
            observer=observer,
        )
        for src, inc in includes:
            dest = work / inc
            dest.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(src, dest)
        _unshadow(work, env.modules)
        junit = scratch_root / "junit.xml"
        probe_dir = scratch_root / "probe"
        probe_dir.mkdir()
        probe_out = scratch_root / "imported.json"
        probe = _PROBE.format(modules=list(env.modules), out=str(probe_out))
        (probe_dir / f"{PROBE_MODULE}.py").write_text(probe)
        observer.step(
            entry.name, "running the test suite" + (" (sandbox disabled)" if no_sandbox else "")
        )
        run_policy = replace(
            policy, writable=(scratch_root,), readonly=(*policy.readonly, env.path)
        )
        run_env = {k: v for k, v in os.environ.items() if k in run_policy.env_allow}
        run_env.pop("PYTHONPATH", None)  # the host's paths must not shadow the environment
        run_env["PATH"] = f"{env.path / 'bin'}{os.pathsep}" + run_env.get("PATH", "/usr/bin:/bin")
        run_env["VIRTUAL_ENV"] = str(env.path)
        run_policy = replace(
            run_policy, env_allow=(*run_policy.env_allow, "VIRTUAL_ENV", "FORKMAN_JUNIT_XML")
        )
        python = str(env.python)
        if is_pytest:
            args = list(cfg.command[1:] if cfg.command[0] != "python" else cfg.command[3:])
            args += [f"--junitxml={junit}", "-p", "no:cacheprovider", "-o", "junit_family=xunit2"]
            args += ["-p", PROBE_MODULE]
            launcher = (
                f"import sys; sys.path.insert(0, {str(probe_dir)!r}); "
                "import pytest; raise SystemExit(pytest.main())"
            )
            run = server.run(
                [python, "-P", "-c", launcher, *args],
                run_policy,
                cwd=work,
                env=run_env,
                disabled=no_sandbox,
            )
        else:
            server.run(
                [python, "-P", "-c", probe + "\n_forkman_where()\n"],
                run_policy,
                cwd=work,
                env=run_env,
                disabled=no_sandbox,
            )
            run_env["FORKMAN_JUNIT_XML"] = str(junit)
            run = server.run(
                list(cfg.command), run_policy, cwd=work, env=run_env, disabled=no_sandbox
            )
        imported_from, not_proven = _imports(probe_out, env)
        recorded = {"version": entry.version, "tree": entry.vendored_tree, "tested_tree": env.tree}
        if not junit.is_file():
            why = (
                "timed out"
                if run.timed_out
                else "exceeded its memory limit"
                if run.memory_exceeded
                else "exceeded its process limit"
                if run.processes_exceeded
                else f"exited with status {run.returncode} and wrote no JUnit report"
            )
            return TestOutcome(
                entry.name,
                TestStatus.ERROR,
                f"the test suite of {entry.name} {why}",
                None,
                run,
                env.key,
                cfg.command,
                imported_from=imported_from,
                **recorded,
            )
        counts = parse_junit(junit)
        bad = counts.failed + counts.errors
        if not_proven is not None:
            status, msg = TestStatus.ERROR, not_proven
        elif bad == 0 and run.returncode in (0, 5):
            status, msg = TestStatus.PASSED, f"{counts.passed} passed, {counts.skipped} skipped"
        elif bad and counts.network_failures == bad:
            status = TestStatus.NETWORK_DISABLED
            msg = (
                f"{bad} test(s) failed because network is disabled in the sandbox "
                "(the suite needs network access; mark or deselect those tests)"
            )
        else:
            status = TestStatus.FAILED
            msg = f"{counts.failed} failed, {counts.errors} errors, {counts.passed} passed"
        return TestOutcome(
            entry.name,
            status,
            msg,
            counts,
            run,
            env.key,
            cfg.command,
            imported_from=imported_from,
            **recorded,
        )
    finally:
        remove_tree(scratch_root)


def lock_section(outcome: TestOutcome) -> dict[str, Any]:
    run = outcome.run
    data: dict[str, Any] = {
        "status": outcome.status.value,
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": shlex.join(outcome.command),
        "message": outcome.message,
        "version": outcome.version,
        "tree": outcome.tree,
    }
    if outcome.env_key:
        data["env"] = "sha256:" + outcome.env_key
    if outcome.tested_tree:
        data["tested-tree"] = outcome.tested_tree
    if outcome.imported_from:
        data["imported-from"] = list(outcome.imported_from)
    if run is not None:
        data["tier"] = run.tier_label
        data["enforced"] = list(run.enforced)
    if outcome.counts is not None:
        c = outcome.counts
        data.update(
            passed=c.passed,
            failed=c.failed,
            errors=c.errors,
            skipped=c.skipped,
            duration=round(c.duration, 3),
        )
    return data


def run_tests(
    project: Project,
    names: Sequence[str],
    *,
    all_forks: bool = False,
    no_sandbox: bool = False,
    jobs: int = 1,
    server: ForkServer | None = None,
    observer: Observer | None = None,
) -> list[TestOutcome]:
    """Test the named forks (or all) and record each result in the lock."""
    observer = observer or NullObserver()
    lock = project.load_lock()
    if all_forks:
        entries = list(lock)
        if not entries:
            raise NotFound(
                "the project has no forks", hint="fork something first: forkman fork NAME"
            )
    else:
        if not names:
            raise BadInput("name at least one fork, or pass --all")
        entries = []
        for name in names:
            e = lock.get(name)
            if e is None:
                raise NotFound(f"no fork named {name!r}", hint="see `forkman status` for the forks")
            entries.append(e)
    if jobs < 1:
        raise BadInput("--jobs must be at least 1")
    policy = sandbox_policy(project.config)
    own = server is None
    srv = server or ForkServer()
    if not no_sandbox:
        srv.support.require(policy.min_tier)
    else:
        observer.warning(
            "the sandbox is disabled: the tests run with your network, files and secrets"
        )
    srv.start()
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            outcomes = list(
                pool.map(
                    lambda e: run_fork_tests(
                        project, e, srv, no_sandbox=no_sandbox, policy=policy, observer=observer
                    ),
                    entries,
                )
            )
    finally:
        if own:
            srv.stop()
    from ._txn import update_lock

    def record(lock: Any) -> Any:
        for outcome in outcomes:
            current = lock.get(outcome.name)
            if current is not None:
                lock = lock.with_entry(current.with_section("test", lock_section(outcome)))
        return lock

    update_lock(project, record)
    return outcomes
