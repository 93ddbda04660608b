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

import enum
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.parsers import expat

from packaging.requirements import Requirement

from ..core.errors import BadInput, ConfigError, IntegrityError, NotFound
from ..core.fs import atomic_write_bytes, remove_tree, replace_dir, staging_dir
from ..core.observer import NullObserver, Observer
from ..model.config import Config, parse_size
from ..model.lock import GitSource, LockEntry
from ..model.project import Project
from ..sandbox import ForkServer, RunResult, SandboxPolicy, Tier
from .env import TestEnv, copy_tree, parse_requirements, prepare_test_env

NETWORK_MARKERS = (
    "Network is unreachable",
    "[Errno 101]",
    "No route to host",
    "[Errno 113]",
    # the sandbox's private loopback answers "refused" where a test expected a service
    # of the host (a database on the host's 127.0.0.1): the host is not reachable
    "Connection refused",
    "[Errno 111]",
    "Temporary failure in name resolution",
    "Name or service not known",
    "gaierror",
    "No address associated with hostname",
    "nodename nor servname provided",
    "NameResolutionError",
    "Failed to establish a new connection",
)
"""Failure texts that mean a test tried to reach the network (or a service of the host)."""

NETWORK_SKIP = re.compile(
    "|".join(re.escape(m) for m in NETWORK_MARKERS)
    + r"|network is unreachable|no (?:internet|network)\b|(?:internet|network) (?:access )?"
    r"(?:is )?(?:unavailable|not available|required|needed)|requires? (?:an? )?"
    r"(?:internet|network)|cannot resolve",
    re.IGNORECASE,
)
"""Skip reasons that say a test skipped itself because it could not reach the network
(urllib3: "Can't run the test because the network is unreachable")."""

MAX_JUNIT_BYTES = 32 * 1024 * 1024
"""Largest JUnit report forkman reads; a bigger one is refused, never parsed."""
MAX_FAILURES_KEPT = 5000
"""Failing tests kept per run (ids and first lines); the JUnit report in the log has all."""
MAX_MESSAGE_CHARS = 300
"""Characters kept of a failing test's first line of message."""
MAX_FAILURE_TEXT = 64 * 1024
"""Characters of a failure's text (traceback) read to classify it; the rest is ignored."""
LOGS_DIR = "test-logs"
"""Under the project's state dir (``.forkman/``, git-ignored): one folder per fork."""


class TestStatus(enum.Enum):
    """How a fork's test run ended."""

    PASSED = "passed"
    """Every test passed (or was skipped)."""
    FAILED = "failed"
    """At least one test failed or errored."""
    NETWORK_DISABLED = "network-disabled"
    """Tests failed because they tried to reach the network, which is disabled."""
    NO_TESTS = "no-tests"
    """The vendored tree holds no tests to run (or pytest collected none)."""
    TIMEOUT = "timeout"
    """The suite ran longer than its wall-clock limit and was killed."""
    ERROR = "error"
    """The suite could not run or report (usage or collection error, crash, limit exceeded)."""

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
    discover: bool = True
    """Find the suite's test dependencies in the fork's tree (see :mod:`forkman.testing.deps`)."""
    timeout: float | None = None
    """Wall-clock seconds for this fork's suite (None: ``[tool.forkman.sandbox] timeout``)."""
    loopback: bool | None = None
    """A private loopback in the sandbox (None: ``[tool.forkman.sandbox] loopback``)."""

    __test__ = False


@dataclass(frozen=True)
class FailedTest:
    """One failing or erroring test, as its JUnit report names it (untrusted, cleaned)."""

    id: str
    """``path/to/test_file.py::TestClass::test_name`` when the file is found, else
    ``classname::name`` as the report spells it."""
    kind: str
    """``failed`` or ``error``."""
    message: str
    """The first line of its message, without control characters, capped."""
    network: bool
    """Its text says the network (or a service of the host) was unreachable."""

    __test__ = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {"id": self.id, "kind": self.kind, "message": self.message, "network": self.network}


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
    failures: tuple[FailedTest, ...] = ()
    """The failing and erroring tests, in report order (at most MAX_FAILURES_KEPT)."""
    failures_dropped: int = 0
    """Failing tests beyond MAX_FAILURES_KEPT, counted but not kept."""
    collection_errors: int = 0
    """Errors pytest reported while collecting (a test file could not be imported)."""
    network_skipped: int = 0
    """Skipped tests whose reason says the network was unreachable (the suite skipped
    them itself; with the network they would have run)."""

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
    log_dir: Path | None = None
    """Where the run's output and JUnit report were kept (``.forkman/test-logs/NAME``)."""
    timeout: float | None = None
    """The wall-clock limit the run had, in seconds."""
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

    @property
    def output_log(self) -> Path | None:
        """The kept stdout and stderr of the run, when it ran."""
        return self.log_dir / "output.log" if self.log_dir is not None else None

    @property
    def junit_log(self) -> Path | None:
        """The kept JUnit report, when the run wrote one."""
        path = self.log_dir / "junit.xml" if self.log_dir is not None else None
        return path if path is not None and path.is_file() else None


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
    discover = raw.get("discover", True)
    if not isinstance(discover, bool):
        raise ConfigError(f"{where}.discover must be true or false")
    timeout = raw.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise ConfigError(
            f"{where}.timeout must be a positive number of seconds", hint="e.g. timeout = 600"
        )
    loopback = raw.get("loopback")
    if loopback is not None and not isinstance(loopback, bool):
        raise ConfigError(f"{where}.loopback must be true or false")
    return TestConfig(
        command=argv,
        requirements=requirements,
        extras=extras,
        include=include,
        discover=discover,
        timeout=float(timeout) if timeout is not None else None,
        loopback=loopback,
    )


_EXTRA = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


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
        if "loopback" in table:
            if not isinstance(table["loopback"], bool):
                raise ValueError("loopback must be true or false")
            kw["loopback"] = table["loopback"]
        if "env-allow" in table:
            kw["env_allow"] = SandboxPolicy().env_allow + _str_list(
                table, "env-allow", "[tool.forkman.sandbox]"
            )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[tool.forkman.sandbox]: {exc}") from None
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return SandboxPolicy(**kw)


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


# ---- reports ------------------------------------------------------------------


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_UNPRINTABLE_KEEP_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]"
)


def clean_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` (written by a test suite) made safe for a terminal: one line, no control
    characters (escape sequences, carriage returns, bidi overrides), at most `limit` chars."""
    text = text.replace("\t", " ").replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    text = _UNPRINTABLE.sub("?", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def clean_output(data: bytes) -> str:
    """A suite's captured output made safe for a terminal: lines kept, every other
    control character (escape sequences, carriage returns, bidi overrides) shown as ``?``."""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    return _UNPRINTABLE_KEEP_LINES.sub("?", text)


def _first_line(message: str, text: str) -> str:
    """The line that says why a test failed: the message's first line; for pytest's
    collection errors (message "collection failure") the last ``E   `` line of the text."""
    if message.strip() in ("", "collection failure") or message.startswith("failed on setup"):
        e_lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
        if e_lines:
            return e_lines[-1]
    for line in (message or text).splitlines():
        if line.strip():
            return line
    return message


def _test_id(classname: str, name: str, root: Path | None) -> str:
    """pytest's node id when the test file is found under `root`, else ``classname::name``."""
    if not classname and root is not None:  # a collection error names the module only
        parts = name.split(".")
        rel = "/".join(parts) + ".py"
        if all(p.isidentifier() for p in parts) and (root / rel).is_file():
            return rel
    parts = classname.split(".") if classname else []
    if root is not None and parts and all(p.isidentifier() for p in parts):
        for cut in range(len(parts), 0, -1):
            rel = "/".join(parts[:cut]) + ".py"
            if (root / rel).is_file():
                return "::".join([rel, *parts[cut:], name])
    return f"{classname}::{name}" if classname else name


def read_report(path: Path, limit: int = MAX_JUNIT_BYTES) -> bytes:
    """The bytes of a report the sandboxed run wrote, refused unless a regular file no
    bigger than `limit` (the run may have left a symlink to a host file, or a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise IntegrityError(
            f"cannot open the JUnit report {path.name}: {exc.strerror}"
            + (" (it is a symbolic link)" if path.is_symlink() else ""),
            hint="the suite replaced its report; forkman reads only a regular file",
        ) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise IntegrityError(
                f"the JUnit report {path.name} is not a regular file",
                hint="the suite replaced its report; forkman reads only a regular file",
            )
        if st.st_size > limit:
            raise IntegrityError(
                f"the JUnit report is {st.st_size} bytes, over the {limit} forkman reads",
                hint="it was not parsed; run fewer tests per fork or fix the suite's output",
            )
        data = f.read(limit + 1)
    if len(data) > limit:
        raise IntegrityError(f"the JUnit report grew over the {limit} bytes forkman reads")
    return data


class _JUnitReader:
    """Streams a JUnit report through expat, keeping counts and failing tests only."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.tests = self.failed = self.errors = self.skipped = 0
        self.duration = 0.0
        self.network = 0
        self.collection = 0
        self.network_skipped = 0
        self.failures: list[FailedTest] = []
        self.dropped = 0
        self.case: dict[str, str] | None = None
        self.bad: tuple[str, str] | None = None
        self.text: list[str] = []
        self.text_len = 0

    @staticmethod
    def _refuse(*_args: object) -> None:
        raise IntegrityError(
            "the JUnit report declares a DOCTYPE or entities; forkman does not expand them",
            hint="pytest never writes one: the suite wrote or altered its own report",
        )

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        if tag == "testsuite":
            try:
                self.tests += int(attrs.get("tests", 0))
                self.failed += int(attrs.get("failures", 0))
                self.errors += int(attrs.get("errors", 0))
                self.skipped += int(attrs.get("skipped", 0))
                self.duration += float(attrs.get("time", 0.0))
            except ValueError as exc:
                raise IntegrityError(f"the JUnit report has a bad count: {exc}") from None
        elif tag == "testcase":
            self.case = attrs
        elif tag in ("failure", "error") and self.case is not None and self.bad is None:
            self.bad = (tag, attrs.get("message", ""))
            self.text, self.text_len = [], 0
        elif tag == "skipped" and self.case is not None:
            reason = attrs.get("message", "")[:MAX_FAILURE_TEXT]
            self.network_skipped += bool(NETWORK_SKIP.search(reason))

    def data(self, chunk: str) -> None:
        if self.bad is not None and self.text_len < MAX_FAILURE_TEXT:
            self.text.append(chunk[: MAX_FAILURE_TEXT - self.text_len])
            self.text_len += len(self.text[-1])

    def end(self, tag: str) -> None:
        if tag in ("failure", "error") and self.bad is not None and self.case is not None:
            kind, message = self.bad
            text = "".join(self.text)
            self.bad = None
            network = any(m in message or m in text for m in NETWORK_MARKERS)
            self.network += network
            if kind == "error" and message.strip() == "collection failure":
                self.collection += 1
            if len(self.failures) >= MAX_FAILURES_KEPT:
                self.dropped += 1
                return
            case = self.case
            self.failures.append(
                FailedTest(
                    id=clean_line(
                        _test_id(case.get("classname", ""), case.get("name", ""), self.root), 1000
                    ),
                    kind="failed" if kind == "failure" else "error",
                    message=clean_line(_first_line(message, text)),
                    network=network,
                )
            )
        elif tag == "testcase":
            self.case = None


def parse_junit_bytes(data: bytes, root: Path | None = None) -> TestCounts:
    """Counts and failing tests from a JUnit XML report (pytest's format).

    The report is written by the code under test: no DOCTYPE or entity declaration is
    accepted (no entity expansion, no external entities), texts are capped, and test
    ids and messages lose their control characters. `root` (the tree the suite ran in)
    turns ``classname`` into the test file's path when that file exists.
    """
    if len(data) > MAX_JUNIT_BYTES:
        raise IntegrityError(
            f"the JUnit report is {len(data)} bytes, over the {MAX_JUNIT_BYTES} forkman reads"
        )
    reader = _JUnitReader(root)
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = reader._refuse
    parser.EntityDeclHandler = reader._refuse
    parser.UnparsedEntityDeclHandler = reader._refuse
    parser.ExternalEntityRefHandler = reader._refuse  # type: ignore[assignment]
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise IntegrityError(f"the JUnit report is not valid XML: {exc}") from None
    r = reader
    return TestCounts(
        passed=max(0, r.tests - r.failed - r.errors - r.skipped),
        failed=r.failed,
        errors=r.errors,
        skipped=r.skipped,
        duration=r.duration,
        network_failures=r.network,
        failures=tuple(r.failures),
        failures_dropped=r.dropped,
        collection_errors=r.collection,
        network_skipped=min(r.network_skipped, r.skipped),
    )


def parse_junit(path: Path, root: Path | None = None) -> TestCounts:
    """Counts and failing tests from a JUnit XML file (see :func:`parse_junit_bytes`)."""
    return parse_junit_bytes(read_report(path), root)


def _has_tests(tree: Path) -> bool:
    for _dirpath, _dirs, files in os.walk(tree):
        if any(
            (f.startswith("test_") or f.endswith("_test.py")) and f.endswith(".py") for f in files
        ):
            return True
    return False


# ---- what happened ---------------------------------------------------------------

PLUGIN_OPTIONS = {
    "--cov": "pytest-cov",
    "--no-cov": "pytest-cov",
    "-n": "pytest-xdist",
    "--numprocesses": "pytest-xdist",
    "--dist": "pytest-xdist",
    "--timeout": "pytest-timeout",
    "--benchmark": "pytest-benchmark",
    "--reruns": "pytest-rerunfailures",
    "--asyncio-mode": "pytest-asyncio",
    "--mypy": "pytest-mypy",
    "--hypothesis": "hypothesis",
    "--randomly": "pytest-randomly",
    "--mpl": "pytest-mpl",
    "--flake8": "pytest-flake8",
    "--ds": "pytest-django",
    "--snapshot-update": "syrupy",
    "--forked": "pytest-forked",
    "--html": "pytest-html",
    "--doctest-cython": "pytest-cython",
}
"""Command-line options (or their prefix before ``-``) and the pytest plugin that adds them."""

PLUGIN_INI_OPTIONS = {
    "asyncio_mode": "pytest-asyncio",
    "asyncio_default_fixture_loop_scope": "pytest-asyncio",
    "timeout": "pytest-timeout",
    "DJANGO_SETTINGS_MODULE": "pytest-django",
    "env": "pytest-env",
    "mock_use_standalone_module": "pytest-mock",
    "flake8-ignore": "pytest-flake8",
    "mpl-baseline-path": "pytest-mpl",
}
"""pytest configuration keys and the plugin that defines them."""


def _plugin_for(option: str) -> str | None:
    opt = option.split("=", 1)[0]
    if opt in PLUGIN_OPTIONS:
        return PLUGIN_OPTIONS[opt]
    for known, plugin in PLUGIN_OPTIONS.items():
        if known.startswith("--") and opt.startswith(known + "-"):
            return plugin
    return None


def pre_run_cause(name: str, stdout: bytes, stderr: bytes) -> str | None:
    """Why pytest stopped before running tests, from its output (untrusted, cleaned);
    None when the output names no cause forkman knows."""
    text = (stderr + b"\n" + stdout).decode("utf-8", errors="replace")
    where = f"[tool.forkman.forks.{name}.test] requirements"
    m = re.search(r"error: unrecognized arguments: (.*)", text)
    if m:
        options = [o for o in m.group(1).split() if o.startswith("-")] or [m.group(1)]
        for option in options:
            plugin = _plugin_for(option)
            if plugin is not None:
                opt = option.split("=", 1)[0]
                return clean_line(
                    f"a pytest plugin is missing: {opt} needs {plugin} (add it to {where}, "
                    "or drop the option from the command or the suite's addopts)"
                )
        return clean_line(
            f"pytest does not know the option(s) {' '.join(options)} (from the test command or "
            "the suite's pytest addopts; a plugin may be missing)"
        )
    m = re.search(r"Unknown config option: (\S+)", text)
    if m:
        key = m.group(1)
        plugin = PLUGIN_INI_OPTIONS.get(key)
        if plugin is not None:
            return clean_line(
                f"a pytest plugin is missing: the configuration key {key} needs {plugin} "
                f"(add it to {where})"
            )
        return clean_line(f"pytest refused the unknown configuration key {key} (strict config)")
    m = re.search(r"ERROR: file or directory not found: (.*)", text)
    if m:
        return clean_line(
            f"the test command names {m.group(1).strip()}, which the vendored tree does not have"
        )
    e_lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ") and ln[1:].strip()]
    m = re.search(r"ImportError while loading conftest '([^']*)'", text)
    if m:
        why = e_lines[-1] if e_lines else "an import failed"
        return clean_line(
            f"the suite's conftest {Path(m.group(1)).name} could not be imported: {why}"
            + (f" (a test dependency is missing: add it to {where})" if "No module" in why else "")
        )
    internal = [ln for ln in text.splitlines() if ln.startswith("INTERNALERROR>")]
    if internal:
        last = [ln[len("INTERNALERROR>") :].strip() for ln in internal]
        errors = [ln for ln in last if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", ln)]
        return clean_line(f"pytest crashed (internal error): {(errors or last)[-1]}")
    m = re.search(r"(ModuleNotFoundError: No module named [^\n]*)", text)
    if m:
        return clean_line(f"a test dependency is missing: {m.group(1)} (add it to {where})")
    m = re.search(r"forkman sandbox: (cannot run [^\n]*)", text)
    if m:
        return clean_line(m.group(1))
    usage = [ln for ln in text.splitlines() if ln.startswith(("ERROR:", "error:"))]
    usage = [ln for ln in usage if not ln.startswith("ERROR: usage:")]
    if usage:
        return clean_line(usage[0])
    return None


def _timeout_setting(config: Config, name: str, cfg: TestConfig) -> str:
    """The setting that decided this fork's time limit, as the user would edit it."""
    if cfg.timeout is not None:
        return f"[tool.forkman.forks.{name}.test] timeout"
    if "timeout" in config.section("sandbox"):
        return (
            f"[tool.forkman.sandbox] timeout (or [tool.forkman.forks.{name}.test] timeout "
            "for this fork alone)"
        )
    return (
        f"the default for a suite ({DEFAULT_SUITE_TIMEOUT:g} s); set "
        f"[tool.forkman.forks.{name}.test] timeout (seconds)"
    )


DEFAULT_SUITE_TIMEOUT = 900.0
"""Wall-clock seconds a fork's build and suite get when neither ``[tool.forkman.forks.
NAME.test] timeout`` nor ``[tool.forkman.sandbox] timeout`` is set: real suites take
minutes (packaging's 26,000 tests, urllib3's servers), far over a sandboxed command's 60."""


def fork_policy(
    policy: SandboxPolicy, cfg: TestConfig, config: Config | None = None
) -> SandboxPolicy:
    """`policy` with the fork's own ``timeout`` and ``loopback``; a longer timeout raises
    the per-process CPU limit with it (a suite is one busy process). With `config`
    (the project's) and no timeout set anywhere, the suite gets DEFAULT_SUITE_TIMEOUT."""
    timeout = cfg.timeout
    if timeout is None and config is not None and "timeout" not in config.section("sandbox"):
        timeout = DEFAULT_SUITE_TIMEOUT
    if timeout is not None:
        policy = replace(
            policy, timeout=timeout, cpu_seconds=max(policy.cpu_seconds, math.ceil(timeout))
        )
    if cfg.loopback is not None:
        policy = replace(policy, loopback=cfg.loopback)
    return policy


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


def no_tests_message(entry: LockEntry, what: str) -> str:
    """A "no tests" message with where forkman looked (the fork's source) and what to do."""
    name = entry.name
    source = entry.source
    include = f"[tool.forkman.forks.{name}.test] include"
    if isinstance(source, GitSource):
        where = f"the git checkout of {name} ({source.url} at {source.ref})"
        todo = (
            f"check the test command in [tool.forkman.forks.{name}.test], or {include} the "
            "project's own tests"
        )
    else:
        kind = "wheel" if source.filename.endswith(".whl") else "sdist"
        where = f"the {kind} of {name} ({source.filename})"
        todo = (
            f"fork {name} from git at its release tag (forkman fork git+URL@TAG --name {name}), "
            f"or copy tests in with {include}"
        )
    return f"{where} {what}; {todo}"


def _limit_message(name: str, run: RunResult, policy: Mapping[str, Any]) -> str | None:
    if run.memory_exceeded:
        mib = int(policy["memory"]) // (1024 * 1024)
        return (
            f"the test suite of {name} exceeded its memory limit ({mib} MiB, "
            "[tool.forkman.sandbox] memory) and was killed"
        )
    if run.processes_exceeded:
        return (
            f"the test suite of {name} exceeded its process limit ({policy['max_processes']}, "
            "[tool.forkman.sandbox] max-processes) and was killed"
        )
    if run.signal in (signal.SIGXCPU, signal.SIGKILL):
        return (
            f"the test suite of {name} was killed by {signal.Signals(run.signal).name}: it may "
            f"have used more than its {policy['cpu_seconds']} CPU seconds "
            "([tool.forkman.sandbox] cpu-seconds, raised with a fork's timeout)"
        )
    return None


def evaluate_run(
    name: str,
    run: RunResult,
    report: bytes | IntegrityError | None,
    tree: Path | None,
    timeout_setting: str,
    policy: SandboxPolicy | None = None,
) -> tuple[TestStatus, str, TestCounts | None]:
    """How a run ended: its status, one line for the user (naming the cause when the
    suite did not run) and the counts of its JUnit report."""
    policy_json = (policy or SandboxPolicy()).to_json()
    if run.timed_out:
        done = count_tests_done(run.stdout)
        progress = f" with {done} test(s) done" if done else ""
        limit = run.duration if policy is None else policy.timeout
        return (
            TestStatus.TIMEOUT,
            f"the test suite of {name} timed out after {limit:g} s{progress} and was killed; "
            f"the limit is {timeout_setting}",
            None,
        )
    limit_msg = _limit_message(name, run, policy_json)
    if isinstance(report, IntegrityError):
        return TestStatus.ERROR, f"the JUnit report of {name} was refused: {report}", None
    counts: TestCounts | None = None
    if report is not None:
        try:
            counts = parse_junit_bytes(report, tree)
        except IntegrityError as exc:
            return TestStatus.ERROR, f"the JUnit report of {name} was refused: {exc}", None
    rc = run.returncode
    if counts is None:
        if limit_msg is not None:
            return TestStatus.ERROR, limit_msg, None
        cause = pre_run_cause(name, run.stdout, run.stderr)
        if rc == 5:
            return TestStatus.NO_TESTS, f"pytest collected no tests in {name}", None
        what = {2: "was interrupted", 3: "crashed", 4: "was stopped by a usage error"}.get(
            rc, f"exited with status {rc}"
        )
        why = f": {cause}" if cause else " and wrote no JUnit report (see the log)"
        return TestStatus.ERROR, f"the test suite of {name} {what} before running tests{why}", None
    bad = counts.failed + counts.errors
    total = counts.passed + bad + counts.skipped
    if counts.collection_errors:
        first = next((f for f in counts.failures if f.message), None)
        detail = f": {first.id}: {first.message}" if first is not None else ""
        hint = ""
        if first is not None and "No module named" in first.message:
            hint = f" (a test dependency is missing: add it to [tool.forkman.forks.{name}.test] "
            hint += "requirements)"
        return (
            TestStatus.ERROR,
            clean_line(
                f"pytest could not collect {counts.collection_errors} test file(s) of {name}"
                f"{detail}{hint}",
                600,
            ),
            counts,
        )
    if limit_msg is not None:
        return TestStatus.ERROR, limit_msg, counts
    if rc == 5 or (total == 0 and rc == 0):
        return TestStatus.NO_TESTS, f"pytest collected no tests in {name}", counts
    if rc in (3, 4) or (bad == 0 and rc != 0):
        cause = pre_run_cause(name, run.stdout, run.stderr)
        return (
            TestStatus.ERROR,
            f"the test suite of {name} exited with status {rc} although its report lists no "
            f"failure{': ' + cause if cause else ' (see the log)'}",
            counts,
        )
    if bad == 0:
        offline = (
            f" ({counts.network_skipped} for want of network)" if counts.network_skipped else ""
        )
        return (
            TestStatus.PASSED,
            f"{counts.passed} passed, {counts.skipped} skipped{offline}",
            counts,
        )
    if counts.network_failures == bad:
        return (
            TestStatus.NETWORK_DISABLED,
            f"{bad} test(s) failed because network is disabled in the sandbox "
            "(the suite needs network access or a service of the host; mark or deselect "
            "those tests)",
            counts,
        )
    causes = []
    if counts.network_failures:
        causes.append(f"{counts.network_failures} of the failures for want of network")
    if counts.network_skipped:
        causes.append(f"{counts.network_skipped} skipped for want of network")
    return (
        TestStatus.FAILED,
        f"{counts.failed} failed, {counts.errors} errors, {counts.passed} passed"
        + (f" ({'; '.join(causes)})" if causes else ""),
        counts,
    )


_PROGRESS_LINE = re.compile(rb"^(?:\S+ )?([.FEsxX]+) *(?:\[ *(\d+)%\])?\s*$")


def count_tests_done(stdout: bytes) -> int:
    """Tests finished so far, counted from pytest's progress lines (``..F.s  [ 40%]``)."""
    done = 0
    for line in stdout.splitlines():
        m = _PROGRESS_LINE.match(line)
        if m:
            done += len(m.group(1))
    return done


class ProgressReporter:
    """Feeds on a running suite's stdout; tells the observer how many tests are done,
    at most every `every` seconds."""

    def __init__(self, name: str, observer: Observer, every: float = 15.0) -> None:
        self.name = name
        self.observer = observer
        self.every = every
        self.started = time.monotonic()
        self.last = self.started
        self.done = 0
        self.percent: int | None = None
        self.partial = b""

    def feed(self, stream: int, chunk: bytes) -> None:
        """A chunk of the suite's stdout (stream 1) or stderr (2)."""
        if stream != 1:
            return
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()[-4096:]
        for line in lines:
            m = _PROGRESS_LINE.match(line)
            if m:
                self.done += len(m.group(1))
                if m.group(2):
                    self.percent = int(m.group(2))
        now = time.monotonic()
        if now - self.last >= self.every and self.done:
            self.last = now
            pct = f" ({self.percent}%)" if self.percent is not None else ""
            self.observer.step(
                self.name,
                f"running the test suite: {self.done} test(s) done{pct} after "
                f"{now - self.started:.0f} s",
            )


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


_RAN = (TestStatus.PASSED, TestStatus.FAILED, TestStatus.NETWORK_DISABLED)
"""Statuses of a suite that ran: only these can be undone by a missing proof."""


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
        has_tests = _has_tests(work) or any(
            _has_tests(src) if src.is_dir() else src.name.startswith("test") for src, _ in includes
        )
        if is_pytest and not has_tests:
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
        progress = ProgressReporter(entry.name, observer)
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
                on_output=progress.feed,
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
                list(cfg.command),
                run_policy,
                cwd=work,
                env=run_env,
                disabled=no_sandbox,
                on_output=progress.feed,
            )
        imported_from, not_proven = _imports(probe_out, env)
        recorded = {"version": entry.version, "tree": entry.vendored_tree, "tested_tree": env.tree}
        log_dir, report = keep_logs(project, entry.name, run, junit, observer)
        status, msg, counts = evaluate_run(
            entry.name,
            run,
            report,
            work,
            _timeout_setting(project.config, entry.name, cfg),
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
        if c.network_failures:
            data["network_failures"] = c.network_failures
        if c.network_skipped:
            data["network_skipped"] = c.network_skipped
        if c.failures:
            data["failing"] = [f.id for f in c.failures[:LOCK_FAILING]]
    if outcome.status is TestStatus.TIMEOUT and outcome.timeout is not None:
        data["timeout"] = outcome.timeout
    return data


LOCK_FAILING = 10
"""Failing test ids recorded in the lock (all of them are in the kept JUnit report)."""


def outcome_report(outcome: TestOutcome) -> dict[str, Any]:
    """What `forkman test --format json` says of one fork beyond its lock section:
    every kept failing test (id, kind, first line of message), the log paths, the limit."""
    c = outcome.counts
    return {
        "failures": [f.to_json() for f in c.failures] if c is not None else [],
        "failures_not_listed": c.failures_dropped if c is not None else 0,
        "network_failures": c.network_failures if c is not None else 0,
        "network_skipped": c.network_skipped if c is not None else 0,
        "log_dir": str(outcome.log_dir) if outcome.log_dir is not None else None,
        "output_log": str(outcome.output_log) if outcome.output_log is not None else None,
        "junit": str(outcome.junit_log) if outcome.junit_log is not None else None,
        "timeout": outcome.timeout,
        "duration": round(outcome.run.duration, 3) if outcome.run is not None else None,
    }


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
    from ..store.txn import update_lock

    def record(lock: Any) -> Any:
        for outcome in outcomes:
            current = lock.get(outcome.name)
            if current is not None:
                lock = lock.with_entry(current.with_section("test", lock_section(outcome)))
        return lock

    update_lock(project, record)
    return outcomes
