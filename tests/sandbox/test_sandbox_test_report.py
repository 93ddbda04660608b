"""What `forkman test` shows and keeps: failing tests, kept logs, the cause of a suite
that could not run, time limits, "no tests", the private loopback.

Real forks from the local index, real pytest in the real sandbox, the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forkman.model.lock import load_lock
from forkman.testing.run import count_tests_done, parse_junit
from tests.support.cli import run
from tests.support.index import LocalIndex, default_project_files

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("needs_namespaces", "runner_on_index")]


def fork_with(
    cwd: Path,
    index: LocalIndex,
    name: str,
    tests: dict[str, str],
    *,
    pyproject_extra: str = "",
    test_table: str = "",
    wheel: bool = False,
) -> None:
    """Publish `name` 1.0 with these test files, fork it, configure its test table."""
    files = default_project_files(name, "1.0")
    for rel in [r for r in files if r.startswith("tests/")]:
        del files[rel]
    files.update(tests)
    files["pyproject.toml"] += pyproject_extra
    if wheel:
        index.add_wheel(name, "1.0", {f"{name}/__init__.py": "X = 1\n"})
    else:
        index.add_sdist(name, "1.0", files)
    if not (cwd / "forkman.lock").exists():
        assert run("init").exit_code == 0
    res = run("fork", f"{name}==1.0", *(["--wheel"] if wheel else []))
    assert res.exit_code == 0, res
    if test_table:
        with (cwd / "pyproject.toml").open("a") as f:
            f.write(f"\n[tool.forkman.forks.{name}.test]\n{test_table}")


FAILING = {
    "tests/test_mixed.py": (
        "import pytest\n\n"
        "def test_ok():\n    pass\n\n"
        "def test_bad():\n    print('SUITE-SAYS-HELLO')\n    assert 1 == 2, 'one is not two'\n\n"
        "class TestGroup:\n    def test_method(self):\n        raise ValueError('broken value')\n\n"
        "@pytest.mark.parametrize('n', [1, 2])\ndef test_param(n):\n    assert n == 1\n\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('fixture down')\n\n"
        "def test_setup_error(broken):\n    pass\n"
    ),
}


def test_failing_tests_are_listed_logs_kept_and_json_complete(
    cwd: Path, local_index: LocalIndex
) -> None:
    fork_with(cwd, local_index, "mixed", FAILING)
    res = run("test", "mixed")
    assert res.exit_code == 1, res
    out = res.stdout
    assert "mixed: failed: 3 failed, 1 errors, 2 passed [sandbox: namespaces" in out
    assert "  FAILED tests/test_mixed.py::test_bad: AssertionError: one is not two" in out
    assert "  FAILED tests/test_mixed.py::TestGroup::test_method: ValueError: broken value" in out
    assert "  FAILED tests/test_mixed.py::test_param[2]: assert 2 == 1" in out
    assert "  ERROR tests/test_mixed.py::test_setup_error: " in out
    logs = cwd / ".forkman" / "test-logs" / "mixed"
    assert f"  log: {logs / 'output.log'}" in out
    # the kept output is pytest's own, the kept report is the one that was parsed
    assert "SUITE-SAYS-HELLO" in (logs / "output.log").read_text()
    counts = parse_junit(logs / "junit.xml")
    assert (counts.passed, counts.failed, counts.errors) == (2, 3, 1)
    # forkman's .gitignore keeps the logs out of the project's history
    assert (cwd / ".forkman" / ".gitignore").read_text().splitlines()[-1] == "*"

    res = run("test", "mixed", "--format", "json")
    assert res.exit_code == 1, res
    [row] = json.loads(res.stdout)
    assert row["status"] == "failed"
    assert (row["passed"], row["failed"], row["errors"], row["skipped"]) == (2, 3, 1, 0)
    by_id = {f["id"]: f for f in row["failures"]}
    assert set(by_id) == {
        "tests/test_mixed.py::test_bad",
        "tests/test_mixed.py::TestGroup::test_method",
        "tests/test_mixed.py::test_param[2]",
        "tests/test_mixed.py::test_setup_error",
    }
    assert by_id["tests/test_mixed.py::test_setup_error"]["kind"] == "error"
    assert "fixture down" in by_id["tests/test_mixed.py::test_setup_error"]["message"]
    assert row["output_log"] == str(logs / "output.log")
    assert row["junit"] == str(logs / "junit.xml")
    assert row["timeout"] == 900.0  # a suite's default limit, not a sandboxed command's 60 s
    section = load_lock(cwd / "forkman.lock").forks["mixed"].sections["test"]
    assert section["failing"][0] == "tests/test_mixed.py::test_bad"


def test_show_output_prints_the_suites_output(cwd: Path, local_index: LocalIndex) -> None:
    fork_with(cwd, local_index, "mixed", FAILING)
    res = run("test", "mixed", "--show-output")
    assert res.exit_code == 1, res
    head, _, _ = res.stdout.partition("mixed: failed:")
    assert "---- output of mixed" in head
    assert "SUITE-SAYS-HELLO" in head  # pytest's captured stdout of the failing test
    assert "short test summary info" in head
    res = run("test", "mixed", "--show-output", "--format", "json")
    assert "SUITE-SAYS-HELLO" in res.stderr
    json.loads(res.stdout)  # the JSON stays clean


def test_missing_plugin_named(cwd: Path, local_index: LocalIndex) -> None:
    fork_with(
        cwd,
        local_index,
        "covered",
        {"tests/test_a.py": "def test_a():\n    pass\n"},
        pyproject_extra=(
            '\n[tool.pytest.ini_options]\naddopts = "--cov=covered --cov-report=term"\n'
        ),
        # discovery would install pytest-cov (which this index does not serve)
        test_table="discover = false\n",
    )
    res = run("test", "covered")
    assert res.exit_code == 2, res
    assert (
        "covered: error: the test suite of covered was stopped by a usage error before running "
        "tests: a pytest plugin is missing: --cov needs pytest-cov (add it to "
        "[tool.forkman.forks.covered.test] requirements" in res.stdout
    )
    assert "wrote no JUnit report" not in res.stdout
    log = cwd / ".forkman" / "test-logs" / "covered" / "output.log"
    assert "unrecognized arguments: --cov=covered" in log.read_text()


def test_collection_error_names_the_missing_module(cwd: Path, local_index: LocalIndex) -> None:
    fork_with(
        cwd,
        local_index,
        "needy",
        {
            "tests/test_ok.py": "def test_ok():\n    pass\n",
            "tests/test_needs.py": "import nosuchdep_xyz\n\ndef test_it():\n    pass\n",
        },
    )
    res = run("test", "needy")
    assert res.exit_code == 2, res
    assert (
        "needy: error: pytest could not collect 1 test file(s) of needy: tests/test_needs.py: "
        "ModuleNotFoundError: No module named 'nosuchdep_xyz' (a test dependency is missing"
    ) in res.stdout


def test_unknown_strict_config_key_names_its_plugin(cwd: Path, local_index: LocalIndex) -> None:
    fork_with(
        cwd,
        local_index,
        "strict",
        {"tests/test_a.py": "def test_a():\n    pass\n"},
        pyproject_extra=(
            '\n[tool.pytest.ini_options]\naddopts = "--strict-config"\nasyncio_mode = "auto"\n'
        ),
        # discovery would install pytest-asyncio (which this index does not serve)
        test_table="discover = false\n",
    )
    res = run("test", "strict")
    assert res.exit_code == 2, res
    assert "the configuration key asyncio_mode needs pytest-asyncio" in res.stdout


def test_timeout_is_its_own_status_and_names_the_setting(
    cwd: Path, local_index: LocalIndex
) -> None:
    fork_with(
        cwd,
        local_index,
        "slow",
        {
            "tests/test_slow.py": (
                "import time\n\ndef test_quick():\n    pass\n\n"
                "def test_hangs():\n    time.sleep(120)\n"
            )
        },
        test_table="timeout = 3\n",
    )
    res = run("test", "slow", "--format", "json")
    assert res.exit_code == 2, res
    [row] = json.loads(res.stdout)
    assert row["status"] == "timeout"
    assert row["message"].startswith("the test suite of slow timed out after 3 s")
    assert row["message"].endswith("the limit is [tool.forkman.forks.slow.test] timeout")
    assert row["timeout"] == 3.0
    section = load_lock(cwd / "forkman.lock").forks["slow"].sections["test"]
    assert section["status"] == "timeout" and section["timeout"] == 3.0
    assert (cwd / ".forkman" / "test-logs" / "slow" / "output.log").is_file()


def test_timeout_message_names_the_sandbox_setting(cwd: Path, local_index: LocalIndex) -> None:
    fork_with(
        cwd,
        local_index,
        "slow",
        {"tests/test_slow.py": "import time\n\ndef test_hangs():\n    time.sleep(120)\n"},
    )
    with (cwd / "pyproject.toml").open("a") as f:
        f.write("\n[tool.forkman.sandbox]\ntimeout = 2\n")
    res = run("test", "slow")
    assert res.exit_code == 2, res
    assert "slow: timeout: the test suite of slow timed out after 2 s" in res.stdout
    assert (
        "the limit is [tool.forkman.sandbox] timeout (or [tool.forkman.forks.slow.test] "
        "timeout for this fork alone)" in res.stdout
    )


def test_no_tests_in_a_wheel_says_wheel(cwd: Path, local_index: LocalIndex) -> None:
    fork_with(cwd, local_index, "wheely", {}, wheel=True)
    res = run("test", "wheely")
    # no tests is not a failure of the fork (exit 0); the message says where forkman looked
    assert res.exit_code == 0, res
    assert "wheely: no-tests: the wheel of wheely (wheely-1.0-py3-none-any.whl) ships no " in (
        res.stdout
    )
    assert "sdist" not in res.stdout
    assert "fork wheely from git at its release tag" in res.stdout
    assert "[tool.forkman.forks.wheely.test] include" in res.stdout


def test_no_tests_collected_says_where(cwd: Path, local_index: LocalIndex) -> None:
    fork_with(cwd, local_index, "empty", {"tests/test_nothing.py": "# no test functions here\n"})
    res = run("test", "empty")
    assert res.exit_code == 0, res
    assert (
        "empty: no-tests: the sdist of empty (empty-1.0.tar.gz) holds no tests pytest collects"
        in res.stdout
    )


LOCAL_SERVER_SUITE = (
    "import socket, threading\n\n"
    "def test_local_server():\n"
    "    srv = socket.socket()\n    srv.bind(('127.0.0.1', 0))\n    srv.listen(1)\n"
    "    def serve():\n        c, _ = srv.accept()\n        c.sendall(b'hi')\n        c.close()\n"
    "    t = threading.Thread(target=serve)\n    t.start()\n"
    "    assert socket.create_connection(srv.getsockname(), timeout=5).recv(2) == b'hi'\n"
    "    t.join()\n"
)


def test_suite_with_a_local_server_runs_on_the_private_loopback(
    cwd: Path, local_index: LocalIndex
) -> None:
    fork_with(cwd, local_index, "served", {"tests/test_server.py": LOCAL_SERVER_SUITE})
    res = run("test", "served", "--format", "json")
    assert res.exit_code == 0, res
    [row] = json.loads(res.stdout)
    assert row["status"] == "passed" and row["passed"] == 1
    section = load_lock(cwd / "forkman.lock").forks["served"].sections["test"]
    assert "private-loopback" in section["enforced"]
    # per fork, the loopback can be turned off: then the same suite is a network failure
    with (cwd / "pyproject.toml").open("a") as f:
        f.write("\n[tool.forkman.forks.served.test]\nloopback = false\n")
    res = run("test", "served")
    assert res.exit_code == 1, res
    assert "served: network-disabled: 1 test(s) failed because network is disabled" in res.stdout
    section = load_lock(cwd / "forkman.lock").forks["served"].sections["test"]
    assert "private-loopback" not in section["enforced"]


def test_progress_lines_are_counted() -> None:
    out = b"....F.s.   [ 40%]\n..x....    [ 80%]\n..\n============ 1 failed\n"
    assert count_tests_done(out) == 17


SELF_SKIPPING_SUITE = (
    "import socket\n\nimport pytest\n\n"
    "def test_local():\n    pass\n\n"
    "def test_needs_the_internet():\n"
    "    try:\n        socket.create_connection(('10.255.255.1', 80), timeout=2)\n"
    "    except OSError as exc:\n"
    '        pytest.skip(f"Can\'t run the test because the network is unreachable: {exc}")\n\n'
    "@pytest.mark.skip(reason='not on this platform')\n"
    "def test_other():\n    pass\n"
)


def test_tests_that_skip_themselves_for_want_of_network_are_counted(
    cwd: Path, local_index: LocalIndex
) -> None:
    # urllib3's suite skips its internet tests itself when the network is unreachable:
    # the counts differ from a run with network, and forkman says why
    fork_with(cwd, local_index, "skippy", {"tests/test_skip.py": SELF_SKIPPING_SUITE})
    res = run("test", "skippy", "--format", "json")
    assert res.exit_code == 0, res
    [row] = json.loads(res.stdout)
    assert row["status"] == "passed" and row["skipped"] == 2, row
    assert row["network_skipped"] == 1, row
    assert "1 for want of network" in row["message"], row
    section = load_lock(cwd / "forkman.lock").forks["skippy"].sections["test"]
    assert section["network_skipped"] == 1
