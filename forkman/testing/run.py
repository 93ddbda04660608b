"""`forkman test`: run a fork's own test suite in the sandbox and record the result.

The fork is built inside the sandbox and installed, with its test
requirements and pytest (wheels from the configured index, hash-checked),
into a venv cached by content (:mod:`forkman.testing.env`): no code of the fork
runs outside the sandbox. The suite then runs, with no network, on a writable
scratch copy of the vendored tree, by the venv's own interpreter, and its
JUnit XML report is parsed. The result records the version and tree that were
tested and where the suite imported the fork from, which must be the venv's
copy of the fork's build.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from packaging.requirements import Requirement

from ..core.errors import BadInput, ConfigError, IntegrityError, NotFound
from ..core.fs import atomic_write_bytes, remove_tree, replace_dir, staging_dir
from ..core.observer import NullObserver, Observer
from ..model.lock import LockEntry
from ..model.project import Project
from ..sandbox import ForkServer, RunResult, SandboxPolicy
from .config import (
    DEFAULT_SUITE_TIMEOUT,
    TestConfig,
    fork_policy,
    load_test_config,
    sandbox_policy,
    timeout_setting,
)
from .env import TestEnv, copy_tree, parse_requirements, prepare_test_env
from .junit import (
    MAX_JUNIT_BYTES,
    FailedTest,
    ProgressReporter,
    TestCounts,
    clean_line,
    clean_output,
    count_tests_done,
    parse_junit,
    parse_junit_bytes,
    read_report,
)
from .outcome import (
    TestOutcome,
    TestStatus,
    evaluate_run,
    lock_section,
    no_tests_message,
    outcome_report,
)
from .probe import PROBE, PROBE_MODULE, has_tests, import_proof, unshadow

__all__ = [
    "DEFAULT_SUITE_TIMEOUT",
    "LOGS_DIR",
    "MAX_JUNIT_BYTES",
    "FailedTest",
    "TestConfig",
    "TestCounts",
    "TestOutcome",
    "TestStatus",
    "clean_line",
    "clean_output",
    "count_tests_done",
    "evaluate_run",
    "fork_policy",
    "keep_logs",
    "load_test_config",
    "lock_section",
    "outcome_report",
    "parse_junit",
    "parse_junit_bytes",
    "prepare_env",
    "run_fork_tests",
    "run_tests",
    "sandbox_policy",
    "test_requirements",
]

LOGS_DIR = "test-logs"
"""Under the project's state dir (``.forkman/``, git-ignored): one folder per fork."""


# ---- the environment --------------------------------------------------------


def test_requirements(
    project: Project, entry: LockEntry, cfg: TestConfig
) -> tuple[Requirement, ...]:
    """The requirements installed for `entry`'s suite: the configured ``requirements``
    and ``extras`` first, then what :mod:`forkman.testing.deps` finds in the fork's tree
    (dependency groups, test extras, requirement files, tox, nox, setup.py, the
    fork's dependencies, pytest plugins; all PEP 508, read statically), unless
    ``discover = false``."""
    from .deps import resolve

    deps = resolve(
        project.root / entry.path,
        entry.name,
        requirements=cfg.requirements,
        extras=cfg.extras,
        command=cfg.command,
        discover=cfg.discover,
    )
    return parse_requirements(deps.requirements, f"the test dependencies of the fork {entry.name}")


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


def _log_dir_name(name: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name) and ".." not in name:
        return name
    return "fork-" + hashlib.sha256(name.encode()).hexdigest()[:16]


def keep_logs(
    project: Project, name: str, run: RunResult, junit: Path, observer: Observer | None = None
) -> tuple[Path | None, bytes | IntegrityError | None]:
    """Keep the run's output and JUnit report in ``.forkman/test-logs/NAME/`` (one
    directory swap: readers see the last run's files or this run's, never a mix).

    Returns the directory (None when it cannot be written: a warning says so) and the
    report's bytes (None when the run wrote none; the refusal when it is not a regular
    file or too big: then it is not kept either).
    """
    report: bytes | IntegrityError | None = None
    if junit.exists() or junit.is_symlink():
        try:
            report = read_report(junit)
        except IntegrityError as exc:
            report = exc
    try:
        base = project.ensure_state_dir() / LOGS_DIR
        target = base / _log_dir_name(name)
        with staging_dir(base, f".{_log_dir_name(name)}-") as stage:
            output = run.stdout
            if run.stderr:
                output += b"\n---- stderr ----\n" + run.stderr
            atomic_write_bytes(stage / "output.log", output)
            if isinstance(report, bytes):
                atomic_write_bytes(stage / "junit.xml", report)
            replace_dir(stage, target, base / ".trash")
    except OSError as exc:
        (observer or NullObserver()).warning(
            f"{name}: cannot keep the test logs in {project.state_dir / LOGS_DIR}: {exc}"
        )
        return None, report
    return target, report


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


_RAN = (TestStatus.PASSED, TestStatus.FAILED, TestStatus.NETWORK_DISABLED)
"""Statuses of a suite that ran: only these can be undone by a missing proof."""


def _ships_tests(work: Path, includes: Sequence[tuple[Path, str]]) -> bool:
    """The scratch copy or an ``include`` holds a test file pytest would collect."""
    return has_tests(work) or any(
        has_tests(src) if src.is_dir() else src.name.startswith("test") for src, _ in includes
    )


def _copy_includes(work: Path, includes: Sequence[tuple[Path, str]]) -> None:
    for src, inc in includes:
        dest = work / inc
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest)


def _run_suite(
    scratch_root: Path,
    env: TestEnv,
    cfg: TestConfig,
    policy: SandboxPolicy,
    server: ForkServer,
    *,
    no_sandbox: bool,
    progress: ProgressReporter,
) -> RunResult:
    """Run the suite in the scratch copy (``scratch_root/tree``) with the environment's
    interpreter and the import probe; its report goes to ``scratch_root/junit.xml``."""
    work = scratch_root / "tree"
    junit = scratch_root / "junit.xml"
    probe_dir = scratch_root / "probe"
    probe_dir.mkdir()
    probe = PROBE.format(modules=list(env.modules), out=str(scratch_root / "imported.json"))
    (probe_dir / f"{PROBE_MODULE}.py").write_text(probe)
    progress.observer.step(
        progress.name, "running the test suite" + (" (sandbox disabled)" if no_sandbox else "")
    )
    run_policy = replace(policy, writable=(scratch_root,), readonly=(*policy.readonly, env.path))
    run_env = {k: v for k, v in os.environ.items() if k in run_policy.env_allow}
    run_env.pop("PYTHONPATH", None)  # the host's paths must not shadow the environment
    run_env["PATH"] = f"{env.path / 'bin'}{os.pathsep}" + run_env.get("PATH", "/usr/bin:/bin")
    run_env["VIRTUAL_ENV"] = str(env.path)
    run_policy = replace(
        run_policy, env_allow=(*run_policy.env_allow, "VIRTUAL_ENV", "FORKMAN_JUNIT_XML")
    )
    python = str(env.python)
    if _is_pytest(cfg.command):
        args = list(cfg.command[1:] if cfg.command[0] != "python" else cfg.command[3:])
        args += [f"--junitxml={junit}", "-p", "no:cacheprovider", "-o", "junit_family=xunit2"]
        args += ["-p", PROBE_MODULE]
        launcher = (
            f"import sys; sys.path.insert(0, {str(probe_dir)!r}); "
            "import pytest; raise SystemExit(pytest.main())"
        )
        return server.run(
            [python, "-P", "-c", launcher, *args],
            run_policy,
            cwd=work,
            env=run_env,
            disabled=no_sandbox,
            on_output=progress.feed,
        )
    server.run(
        [python, "-P", "-c", probe + "\n_forkman_where()\n"],
        run_policy,
        cwd=work,
        env=run_env,
        disabled=no_sandbox,
    )
    run_env["FORKMAN_JUNIT_XML"] = str(junit)
    return server.run(
        list(cfg.command),
        run_policy,
        cwd=work,
        env=run_env,
        disabled=no_sandbox,
        on_output=progress.feed,
    )


def _outcome(
    project: Project,
    entry: LockEntry,
    cfg: TestConfig,
    policy: SandboxPolicy,
    env: TestEnv,
    run: RunResult,
    scratch_root: Path,
    observer: Observer,
) -> TestOutcome:
    """The outcome of a run that happened: its logs kept, its report and proof read."""
    imported, not_proven = import_proof(scratch_root / "imported.json", env)
    log_dir, report = keep_logs(project, entry.name, run, scratch_root / "junit.xml", observer)
    status, msg, counts = evaluate_run(
        entry.name,
        run,
        report,
        scratch_root / "tree",
        timeout_setting(project.config, entry.name, cfg),
        policy,
    )
    if status is TestStatus.NO_TESTS:
        msg = no_tests_message(entry, "holds no tests pytest collects")
    elif not_proven is not None and status in _RAN:
        # counts of a suite that did not run the fork's build prove nothing
        status, msg = TestStatus.ERROR, not_proven
    return TestOutcome(
        entry.name,
        status,
        msg,
        counts,
        run,
        env.key,
        cfg.command,
        log_dir,
        policy.timeout,
        version=entry.version,
        tree=entry.vendored_tree,
        tested_tree=env.tree,
        imported_from=imported,
    )


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
    policy = fork_policy(policy or sandbox_policy(project.config), cfg, project.config)
    if not no_sandbox:
        server.support.require(policy.min_tier)  # refuse before any work
    includes = _include(project, entry, cfg)
    reqs = test_requirements(project, entry, cfg) if requirements is None else requirements
    scratch_root = Path(tempfile.mkdtemp(prefix=f"forkman-test-{entry.name}-"))
    try:
        work = scratch_root / "tree"
        copy_tree(tree, work)
        is_pytest = _is_pytest(cfg.command)
        if is_pytest and not _ships_tests(work, includes):
            return TestOutcome(
                entry.name,
                TestStatus.NO_TESTS,
                no_tests_message(entry, "ships no tests"),
                None,
                None,
                "",
                cfg.command,
                timeout=policy.timeout,
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
        _copy_includes(work, includes)
        unshadow(work, env.modules)
        progress = ProgressReporter(entry.name, observer)
        run = _run_suite(
            scratch_root, env, cfg, policy, server, no_sandbox=no_sandbox, progress=progress
        )
        return _outcome(project, entry, cfg, policy, env, run, scratch_root, observer)
    finally:
        remove_tree(scratch_root)


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
    from ..store.txn import record_section

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
        entries = [lock.require(name) for name in names]
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
    for outcome in outcomes:
        record_section(project, outcome.name, "test", lock_section(outcome))
    return outcomes
