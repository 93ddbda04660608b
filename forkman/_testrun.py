"""`forkman test`: run a fork's own test suite in the sandbox and record the result.

The test environment is prepared outside the sandbox (it needs the index):
a directory with the fork and its test requirements installed by pip from
the configured index (pip checks each file against the ``#sha256=`` the
index announces), cached by content under ``cache_root()/envs/``. The test
runner layer (pytest and its dependencies) is forkman's own, shown read-only
inside the sandbox and already imported by the warm fork server, so offline
suites never download pytest. The suite then runs on a writable scratch copy
of the vendored tree, with no network, and its JUnit XML report is parsed.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._config import Config
from ._errors import BadInput, ConfigError, IntegrityError, NetworkError, NotFound
from ._fsutil import remove_tree, staging_dir
from ._lock import GitSource, LockEntry
from ._observer import NullObserver, Observer
from ._project import Project, cache_root
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
    """The test command, run in the scratch copy (``pytest`` runs in the warm server)."""
    requirements: tuple[str, ...] = ()
    """Extra requirements installed into the test environment."""
    extras: tuple[str, ...] = ()
    """Extras of the fork whose dependencies are installed too."""
    include: tuple[str, ...] = ()
    """Files or folders of the project (relative paths) copied into the scratch tree."""
    discover: bool = True
    """Find the suite's test dependencies in the fork's tree (see :mod:`forkman._testdeps`)."""

    __test__ = False


@dataclass(frozen=True)
class TestEnv:
    """A prepared test environment."""

    path: Path
    """The cached environment directory."""
    site: Path
    """Its site directory (put on sys.path)."""
    key: str
    """The content hash it is cached by."""
    fork_installed: bool
    """The fork itself was installed (else it is imported from the scratch copy)."""
    reused: bool
    """It came from the cache."""

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
    discover = raw.get("discover", True)
    if not isinstance(discover, bool):
        raise ConfigError(f"{where}.discover must be true or false")
    return TestConfig(
        command=argv,
        requirements=_str_list(raw, "requirements", where),
        extras=_str_list(raw, "extras", where),
        include=_str_list(raw, "include", where),
        discover=discover,
    )


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


def _pip(args: Sequence[str], index_urls: Sequence[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "install"]
    cmd += ["--index-url", index_urls[0]]
    for extra in index_urls[1:]:
        cmd += ["--extra-index-url", extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, check=False)


def _pip_error(stderr: str) -> str:
    """The lines of pip's output that say what went wrong."""
    lines = [ln.rstrip() for ln in stderr.strip().splitlines()]
    errors = [
        ln for ln in lines if ln.startswith("ERROR:") or ln.strip().startswith(("Expected", "Got"))
    ]
    return "\n".join(errors[-6:] or lines[-1:] or ["pip failed"])


def _backend_available_here(tree: Path) -> bool:
    """Whether forkman's own environment can build `tree` without fetching a backend."""
    import importlib.util

    backend = "setuptools.build_meta"
    try:
        data = tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))
        backend = str(data.get("build-system", {}).get("build-backend", backend))
    except (OSError, tomllib.TOMLDecodeError):
        pass
    top = backend.split(".")[0].split(":")[0]
    if importlib.util.find_spec(top) is None:
        return False
    if top == "setuptools":
        # setuptools < 70.1 needs the separate `wheel` package for bdist_wheel
        from importlib.metadata import version

        major_minor = tuple(int(p) for p in version("setuptools").split(".")[:2])
        return major_minor >= (70, 1) or importlib.util.find_spec("wheel") is not None
    return True


def prepare_env(
    project: Project, entry: LockEntry, cfg: TestConfig, observer: Observer | None = None
) -> TestEnv:
    """The cached test environment of `entry` (built when absent)."""
    observer = observer or NullObserver()
    tree = project.root / entry.path
    reqs = sorted(set(_fork_requirements(tree, cfg.extras)) | set(cfg.requirements))
    key_src = json.dumps(
        {
            "tree": entry.vendored_tree,
            "requirements": reqs,
            "extras": sorted(cfg.extras),
            "python": sys.version,
            "index": list(project.config.index_urls),
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()
    envs = cache_root() / "envs"
    path = envs / key[:32]
    meta = path / "forkman-env.json"
    if meta.is_file():
        info = json.loads(meta.read_text())
        return TestEnv(path, path / "site", key, bool(info["fork_installed"]), reused=True)
    envs.mkdir(parents=True, exist_ok=True)
    observer.step(entry.name, "preparing the test environment")
    with staging_dir(envs, f".{key[:12]}-") as stage:
        site = stage / "site"
        site.mkdir()
        if reqs:
            observer.step(entry.name, f"installing {len(reqs)} requirement(s) from the index")
            out = _pip(
                ["--target", str(site), "--only-binary", ":all:", *reqs], project.config.index_urls
            )
            if out.returncode != 0:
                if "DO NOT MATCH THE HASHES" in out.stderr:
                    raise IntegrityError(
                        f"cannot install the test requirements of {entry.name}: a downloaded "
                        "file does not match the sha256 hash the index announced\n"
                        + _pip_error(out.stderr),
                        hint="the index or a proxy serves altered files; nothing was installed",
                    )
                raise NetworkError(
                    f"cannot install the test requirements of {entry.name}: "
                    + _pip_error(out.stderr),
                    hint=f"check [tool.forkman.forks.{entry.name}.test] requirements and the index",
                )
        fork_installed = False
        if (tree / "pyproject.toml").is_file() or (tree / "setup.py").is_file():
            with tempfile.TemporaryDirectory(prefix="forkman-build-") as tmp:
                copy = Path(tmp) / "src"
                shutil.copytree(tree, copy, symlinks=True)
                # forkman's own environment builds the fork when it has the backend (no
                # download); otherwise pip builds in isolation, fetching the backend from
                # the configured index
                isolation = ["--no-build-isolation"] if _backend_available_here(copy) else []
                out = _pip(
                    ["--target", str(site), "--no-deps", *isolation, str(copy)],
                    project.config.index_urls,
                )
                fork_installed = out.returncode == 0
                if not fork_installed:
                    why = (out.stderr.strip().splitlines() or ["pip failed"])[-1]
                    observer.warning(
                        f"{entry.name}: could not build the fork itself ({why}); its tests "
                        "import it from the scratch copy (src/ or the tree root)"
                    )
        (stage / "forkman-env.json").write_text(
            json.dumps({"key": key, "requirements": reqs, "fork_installed": fork_installed})
        )
        os.replace(stage, path)
    return TestEnv(path, path / "site", key, fork_installed, reused=False)


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


def _site_packages_of_runner() -> list[str]:
    """Where forkman's own pytest lives (exposed read-only to exec'd commands)."""
    import pytest

    return [str(Path(pytest.__file__).resolve().parents[1])]


def run_fork_tests(
    project: Project,
    entry: LockEntry,
    server: ForkServer,
    *,
    no_sandbox: bool = False,
    policy: SandboxPolicy | None = None,
    observer: Observer | None = None,
) -> TestOutcome:
    """Prepare, run and evaluate one fork's test suite (does not touch the lock)."""
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
    env = prepare_env(project, entry, cfg, observer)
    scratch_root = Path(tempfile.mkdtemp(prefix=f"forkman-test-{entry.name}-"))
    try:
        work = scratch_root / "tree"
        shutil.copytree(tree, work, symlinks=True)
        for inc in cfg.include:
            src = (project.root / inc).resolve()
            if not src.is_relative_to(project.root.resolve()) or not src.exists():
                raise ConfigError(
                    f"[tool.forkman.forks.{entry.name}.test].include: no such file {inc!r}"
                )
            dest = work / inc
            dest.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(src, dest)
        is_pytest = cfg.command[0] in ("pytest", "py.test") or cfg.command[:3] == (
            "python",
            "-m",
            "pytest",
        )
        if is_pytest and not _has_tests(work):
            kind = "git checkout" if isinstance(entry.source, GitSource) else "sdist"
            return TestOutcome(
                entry.name,
                TestStatus.NO_TESTS,
                f"the {kind} of {entry.name} ships no tests; configure "
                f"[tool.forkman.forks.{entry.name}.test] include/command or fork from git",
                None,
                None,
                env.key,
                cfg.command,
            )
        junit = scratch_root / "junit.xml"
        python_path = [str(env.site)]
        if not env.fork_installed:
            python_path += [str(work / "src"), str(work)]
        observer.step(
            entry.name, "running the test suite" + (" (sandbox disabled)" if no_sandbox else "")
        )
        run_policy = replace(
            policy,
            writable=(scratch_root,),
            readonly=(*policy.readonly, env.path, *(Path(p) for p in _site_packages_of_runner())),
        )
        run_env = {k: v for k, v in os.environ.items() if k in run_policy.env_allow}
        if is_pytest:
            args = list(cfg.command[1:] if cfg.command[0] != "python" else cfg.command[3:])
            args += [f"--junitxml={junit}", "-p", "no:cacheprovider", "-o", "junit_family=xunit2"]
            run = server.run(
                args,
                run_policy,
                cwd=work,
                env=run_env,
                python_module="pytest",
                python_path=python_path,
                disabled=no_sandbox,
            )
        else:
            run_env["PYTHONPATH"] = os.pathsep.join(python_path + _site_packages_of_runner())
            run_env["FORKMAN_JUNIT_XML"] = str(junit)
            run = server.run(
                list(cfg.command), run_policy, cwd=work, env=run_env, disabled=no_sandbox
            )
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
            )
        counts = parse_junit(junit)
        bad = counts.failed + counts.errors
        if bad == 0 and run.returncode in (0, 5):
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
        return TestOutcome(entry.name, status, msg, counts, run, env.key, cfg.command)
    finally:
        remove_tree(scratch_root)


def lock_section(outcome: TestOutcome) -> dict[str, Any]:
    run = outcome.run
    data: dict[str, Any] = {
        "status": outcome.status.value,
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": shlex.join(outcome.command),
        "env": "sha256:" + outcome.env_key,
        "message": outcome.message,
    }
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
