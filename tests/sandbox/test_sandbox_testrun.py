"""`forkman test`: real fork trees, a real index, the real sandbox."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from forkman.cli import cli
from forkman.model.lock import IndexSource, LockEntry, load_lock, write_lock
from forkman.model.project import Project
from forkman.sandbox import ForkServer, HostSupport, Mechanism, SandboxUnavailable
from forkman.store.treehash import tree_hash
from forkman.testing.run import TestStatus, load_test_config, parse_junit, prepare_env, run_tests
from tests.support.index import LocalIndex

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("runner_on_index")]


def vendor(project: Path, name: str, files: dict[str, str], test_table: str = "") -> LockEntry:
    """Vendor a tree and lock it (as `forkman fork` would)."""
    tree = project / "vendor" / name
    for rel, text in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    h = tree_hash(tree)
    entry = LockEntry(
        name=name,
        version="1.0",
        path=f"vendor/{name}",
        source=IndexSource(
            "http://127.0.0.1/simple/",
            f"http://127.0.0.1/{name}-1.0.tar.gz",
            f"{name}-1.0.tar.gz",
            "0" * 64,
            f"{name}==1.0",
        ),
        upstream_tree=h,
        vendored_tree=h,
        fetched="2026-01-01T00:00:00Z",
    )
    lock = load_lock(project / "forkman.lock")
    write_lock(project / "forkman.lock", lock.with_entry(entry))
    if test_table:
        with (project / "pyproject.toml").open("a") as f:
            f.write(test_table)
    return entry


def package(name: str, tests: str, deps: str = "") -> dict[str, str]:
    return {
        "pyproject.toml": (
            '[build-system]\nrequires = ["setuptools>=61"]\n'
            'build-backend = "setuptools.build_meta"\n\n'
            f'[project]\nname = "{name}"\nversion = "1.0"\ndependencies = [{deps}]\n\n'
            '[tool.setuptools.packages.find]\nwhere = ["src"]\n'
        ),
        f"src/{name}/__init__.py": "def greet(who):\n    return 'hello ' + who\n",
        "tests/test_it.py": tests,
    }


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    srv = ForkServer()
    if srv.support.best_tier.value != "namespaces":
        pytest.skip(f"no user namespaces: {srv.support.namespaces.detail}")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


GOOD_TESTS = (
    "import pytest\nfrom greeter import greet\nimport helperlib\n\n"
    "def test_greet():\n    assert greet('x') == 'hello x'\n\n"
    "def test_helper():\n    assert helperlib.VALUE == 42\n\n"
    "@pytest.mark.skip(reason='demo')\ndef test_skipped():\n    pass\n"
)


def test_real_suite_passes_in_sandbox_and_is_recorded(
    project: Path, local_index: LocalIndex, server: ForkServer
) -> None:
    local_index.add_wheel("helperlib", "1.0", {"helperlib/__init__.py": "VALUE = 42\n"})
    vendor(
        project,
        "greeter",
        package("greeter", GOOD_TESTS),
        '\n[tool.forkman.forks.greeter.test]\nrequirements = ["helperlib==1.0"]\n',
    )
    [outcome] = run_tests(Project(project), ["greeter"], server=server)
    assert outcome.status is TestStatus.PASSED, (
        outcome.run.stdout.decode()[-3000:] if outcome.run else outcome
    )
    assert outcome.counts is not None
    assert (outcome.counts.passed, outcome.counts.skipped, outcome.counts.failed) == (2, 1, 0)
    section = load_lock(project / "forkman.lock").forks["greeter"].sections["test"]
    assert section["status"] == "passed"
    assert section["tier"] == "namespaces"
    assert section["passed"] == 2 and section["skipped"] == 1
    assert section["env"].startswith("sha256:")
    assert "net-namespace" in section["enforced"]
    assert section["version"] == "1.0" and section["tree"].startswith("sha256:")
    assert section["tested-tree"] == section["tree"]
    assert section["imported-from"] == ["greeter: greeter/__init__.py"]
    # the environment is cached by content: a second preparation reuses it
    proj = Project(project)
    entry = proj.load_lock().forks["greeter"]
    env = prepare_env(proj, entry, load_test_config(proj.config, "greeter"), server)
    assert env.reused
    assert (env.site / "helperlib" / "__init__.py").is_file()
    assert (env.site / "greeter" / "__init__.py").is_file()  # the fork's build
    assert (env.site / "pytest").is_dir()  # the runner comes from the index, into the env


def test_suite_needing_network_fails_with_network_disabled(
    project: Path, server: ForkServer, tmp_path: Path
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    stop = threading.Event()
    threading.Thread(target=lambda: stop.wait(30), daemon=True).start()
    tests = (
        "import socket\n\ndef test_talks_to_server():\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=60).close()\n\n"
        "def test_resolves():\n    socket.getaddrinfo('pypi.org', 443)\n"
    )
    vendor(project, "greeter", package("greeter", tests))
    try:
        result = CliRunner().invoke(
            cli, ["--project", str(project), "test", "greeter"], catch_exceptions=False
        )
    finally:
        stop.set()
        listener.close()
    assert result.exit_code == 1, result.output
    assert "greeter: network-disabled" in result.stdout
    assert "network is disabled in the sandbox" in result.stdout
    section = load_lock(project / "forkman.lock").forks["greeter"].sections["test"]
    assert section["status"] == "network-disabled" and section["failed"] == 2


def test_failing_suite_exits_1(project: Path, server: ForkServer) -> None:
    vendor(project, "greeter", package("greeter", "def test_bad():\n    assert 1 == 2\n"))
    result = CliRunner().invoke(cli, ["--project", str(project), "test", "--all"])
    assert result.exit_code == 1, result.output
    assert "greeter: failed: 1 failed, 0 errors, 0 passed [sandbox: namespaces]" in result.stdout


def test_sdist_without_tests_says_so(project: Path, server: ForkServer) -> None:
    files = package("greeter", "")
    del files["tests/test_it.py"]
    vendor(project, "greeter", files)
    [o] = run_tests(Project(project), ["greeter"], server=server)
    assert o.status is TestStatus.NO_TESTS
    assert o.message.startswith("the sdist of greeter (greeter-1.0.tar.gz) ships no tests; ")
    assert "fork greeter from git at its release tag" in o.message
    assert "[tool.forkman.forks.greeter.test] include" in o.message


def test_no_sandbox_is_recorded_and_warned(project: Path, server: ForkServer) -> None:
    vendor(project, "greeter", package("greeter", "def test_ok():\n    pass\n"))
    result = CliRunner().invoke(cli, ["--project", str(project), "test", "greeter", "--no-sandbox"])
    assert result.exit_code == 0, result.output
    assert "warning: the sandbox is disabled" in result.stderr
    section = load_lock(project / "forkman.lock").forks["greeter"].sections["test"]
    assert section["tier"] == "none (disabled by user)"


def test_refuses_below_min_tier_and_changes_nothing(project: Path) -> None:
    vendor(project, "greeter", package("greeter", "def test_ok():\n    pass\n"))
    before = (project / "forkman.lock").read_text()
    weak = HostSupport(
        namespaces=Mechanism("namespaces", False, "unshare failed: user.max_user_namespaces is 0"),
        landlock=Mechanism("landlock", True, "ABI 7"),
        seccomp=Mechanism("seccomp", True, "x86_64"),
        landlock_abi=7,
    )
    with pytest.raises(SandboxUnavailable) as info:
        run_tests(Project(project), ["greeter"], server=ForkServer(support=weak))
    text = info.value.diagnostics()
    assert "offers sandbox tier 'landlock', below the required 'namespaces'" in text
    assert "max_user_namespaces is 0" in text
    assert (project / "forkman.lock").read_text() == before


def test_unknown_fork_is_bad_input(project: Path) -> None:
    result = CliRunner().invoke(cli, ["--project", str(project), "test", "nope"])
    assert result.exit_code == 2
    assert "no fork named 'nope'" in result.stderr


def test_parse_junit_counts(tmp_path: Path) -> None:
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<testsuites><testsuite tests="4" failures="1" errors="1" skipped="1" time="0.5">'
        '<testcase name="a">'
        '<failure message="OSError: [Errno 101] Network is unreachable"/></testcase>'
        '<testcase name="b"><error message="boom"/></testcase></testsuite></testsuites>'
    )
    c = parse_junit(xml)
    assert (c.passed, c.failed, c.errors, c.skipped, c.network_failures) == (1, 1, 1, 1, 1)


def test_jobs_and_include(project: Path, server: ForkServer) -> None:
    files = package("alpha", "")
    del files["tests/test_it.py"]
    vendor(
        project,
        "alpha",
        files,
        '\n[tool.forkman.forks.alpha.test]\ninclude = ["extra/test_alpha.py"]\n'
        'command = "pytest -q extra"\n',
    )
    (project / "extra").mkdir()
    (project / "extra" / "test_alpha.py").write_text(
        "from alpha import greet\n\ndef test_it():\n    assert greet('a') == 'hello a'\n"
    )
    vendor(project, "beta", package("beta", "def test_b():\n    pass\n"))
    outcomes = run_tests(Project(project), [], all_forks=True, jobs=2, server=server)
    assert {o.name: o.status for o in outcomes} == {
        "alpha": TestStatus.PASSED,
        "beta": TestStatus.PASSED,
    }, [(o.name, o.message) for o in outcomes]
    lock = load_lock(project / "forkman.lock")
    assert lock.forks["alpha"].sections["test"]["command"] == "pytest -q extra"
    assert lock.forks["beta"].sections["test"]["passed"] == 1


def test_fork_of_a_pytest_dependency_is_tested_not_shadowed(
    project: Path, server: ForkServer
) -> None:
    # pytest imports `iniconfig`; a fork of it must be the code under test (and the one
    # pytest itself uses: one copy in the environment), not the index's copy.
    files = {
        "pyproject.toml": (
            '[build-system]\nrequires = ["setuptools>=61"]\n'
            'build-backend = "setuptools.build_meta"\n\n'
            '[project]\nname = "iniconfig"\nversion = "99.0"\n'
        ),
        "iniconfig/__init__.py": (
            "FORKED = True\n\n\nclass ParseError(Exception):\n    pass\n\n\n"
            "class IniConfig:\n    pass\n\n\nclass SectionWrapper:\n    pass\n"
        ),
        "tests/test_fork.py": (
            "import iniconfig\n\ndef test_is_fork():\n    assert iniconfig.FORKED\n"
        ),
    }
    vendor(project, "iniconfig", files)
    [o] = run_tests(Project(project), ["iniconfig"], server=server)
    assert o.status is TestStatus.PASSED, o.run.stdout.decode()[-2000:] if o.run else o
    assert o.imported_from == ("iniconfig: iniconfig/__init__.py",)


IN_TREE_BACKEND = '''
"""A tiny PEP 517 backend (in-tree, no requirements) that builds a pure wheel."""
import base64, hashlib, os, zipfile

NAME, VERSION = "builtpkg", "1.0"


def _wheel(directory):
    dist = f"{NAME}-{VERSION}.dist-info"
    files = {}
    for root, _dirs, names in os.walk(NAME):
        for n in names:
            if n.endswith(".py"):
                p = os.path.join(root, n)
                files[p] = open(p, "rb").read()
    meta = f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"
    files[f"{dist}/METADATA"] = meta.encode()
    wheel = "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    files[f"{dist}/WHEEL"] = wheel.encode()
    record = []
    for p, data in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{p},sha256={h},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\\n".join(record).encode()
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w") as z:
        for p, data in files.items():
            z.writestr(p, data)
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory)
'''


def test_fork_is_installed_from_its_vendored_tree(project: Path, server: ForkServer) -> None:
    files = {
        "pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "_backend"\nbackend-path = ["."]\n\n'
            '[project]\nname = "builtpkg"\nversion = "1.0"\n'
        ),
        "_backend.py": IN_TREE_BACKEND,
        "builtpkg/__init__.py": "VALUE = 7\n",
        "tests/test_installed.py": (
            "import importlib.metadata, builtpkg\n\n"
            "def test_installed_distribution():\n"
            "    assert importlib.metadata.version('builtpkg') == '1.0'\n"
            "    assert builtpkg.VALUE == 7\n"
            "    assert 'forkman-test-' not in builtpkg.__file__  # not the scratch copy\n"
        ),
    }
    vendor(project, "builtpkg", files)
    proj = Project(project)
    env = prepare_env(
        proj, proj.load_lock().forks["builtpkg"], load_test_config(proj.config, "builtpkg"), server
    )
    assert env.version == "1.0" and not env.reused
    assert env.modules == ("builtpkg",)
    assert (env.site / "builtpkg" / "__init__.py").is_file()
    [o] = run_tests(proj, ["builtpkg"], server=server)
    assert o.status is TestStatus.PASSED, o.run.stdout.decode()[-2000:] if o.run else o


def test_requirement_with_wrong_hash_is_refused(
    project: Path, local_index: LocalIndex, server: ForkServer
) -> None:
    local_index.add_wheel(
        "evillib", "1.0", {"evillib/__init__.py": "X = 1\n"}, announced_sha256="0" * 64
    )
    vendor(
        project,
        "greeter",
        package("greeter", "def test_ok():\n    pass\n"),
        '\n[tool.forkman.forks.greeter.test]\nrequirements = ["evillib==1.0"]\n',
    )
    before = (project / "forkman.lock").read_text()
    result = CliRunner().invoke(cli, ["--project", str(project), "test", "greeter"])
    assert result.exit_code == 2, result.output
    assert "cannot install the test requirements of greeter" in result.stderr
    assert "does not match the sha256 hash the index announced" in result.stderr
    assert (project / "forkman.lock").read_text() == before
