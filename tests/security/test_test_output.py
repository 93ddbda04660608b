"""Red team: a fork's test suite attacks forkman through what it writes.

The suite is the code under test: it controls its output, its JUnit report (a
file in the writable scratch directory) and every test id and message in it.
Each attack runs through the real CLI on a real fork in the real sandbox and
checks what the host sees afterwards: exit codes, the kept logs, the terminal.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from forkman.model.lock import load_lock
from forkman.testing.run import MAX_JUNIT_BYTES
from tests.support.cli import run
from tests.support.index import LocalIndex, default_project_files

pytestmark = [pytest.mark.sandbox, pytest.mark.usefixtures("needs_namespaces", "runner_on_index")]


def fork_suite(cwd: Path, index: LocalIndex, name: str, files: dict[str, str]) -> None:
    project = default_project_files(name, "1.0")
    for rel in [r for r in project if r.startswith("tests/")]:
        del project[rel]
    project.update(files)
    index.add_sdist(name, "1.0", project)
    assert run("init").exit_code == 0
    res = run("fork", f"{name}==1.0")
    assert res.exit_code == 0, res


def rewrite_report(body: str) -> str:
    """A conftest that replaces pytest's JUnit report once pytest has written it."""
    return (
        "import os\n\n"
        "def pytest_unconfigure(config):\n"
        "    path = config.option.xmlpath\n"
        "    if not path:\n        return\n"
        + "".join(f"    {line}\n" for line in body.splitlines())
    )


LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "' + f"&lol{i - 1 if i > 1 else ''};" * 10 + '">\n' for i in range(1, 10)
    )
    + ']>\n<testsuites><testsuite tests="1" failures="1" errors="0" skipped="0" time="0">'
    '<testcase classname="t" name="x"><failure message="&lol9;"/></testcase>'
    "</testsuite></testsuites>\n"
)


def test_entity_expansion_in_the_report_is_refused(cwd: Path, local_index: LocalIndex) -> None:
    # the attack works against a plain parser: the stdlib expands internal entities
    small = LAUGHS.replace("&lol9;", "&lol2;")
    msg = ET.fromstring(small).find(".//failure").get("message")  # type: ignore[union-attr]
    assert msg is not None and len(msg) == 300
    body = f"open(path, 'w').write({LAUGHS!r})"
    fork_suite(
        cwd,
        local_index,
        "laughs",
        {"tests/conftest.py": rewrite_report(body), "tests/test_a.py": "def test_a():\n    pass\n"},
    )
    res = run("test", "laughs", "--format", "json")
    assert res.exit_code == 2, res
    [row] = json.loads(res.stdout)
    assert row["status"] == "error"
    assert "declares a DOCTYPE or entities; forkman does not expand them" in row["message"]
    assert "lollol" not in res.stdout
    # kept as the suite wrote it (size-capped), for the user to inspect; never expanded
    assert Path(row["junit"]).read_text() == LAUGHS


def test_external_entity_in_the_report_reads_nothing(cwd: Path, local_index: LocalIndex) -> None:
    secret = cwd.parent / "host-secret.txt"
    secret.write_text("HOST-SECRET-VALUE")
    report = (
        f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY s SYSTEM "file://{secret}">]>\n'
        '<testsuites><testsuite tests="1" failures="1" errors="0" skipped="0" time="0">'
        '<testcase classname="t" name="x"><failure message="&s;"/></testcase>'
        "</testsuite></testsuites>\n"
    )
    body = f"open(path, 'w').write({report!r})"
    fork_suite(
        cwd,
        local_index,
        "xxe",
        {"tests/conftest.py": rewrite_report(body), "tests/test_a.py": "def test_a():\n    pass\n"},
    )
    res = run("test", "xxe")
    assert res.exit_code == 2, res
    assert "HOST-SECRET-VALUE" not in res.stdout + res.stderr
    assert "declares a DOCTYPE or entities" in res.stdout


def test_huge_report_is_refused_unparsed(cwd: Path, local_index: LocalIndex) -> None:
    body = (
        "with open(path, 'w') as f:\n"
        '    f.write(\'<testsuites><testsuite tests="1" failures="0" errors="0" skipped="0">\')\n'
        f"    for _ in range({MAX_JUNIT_BYTES // (1024 * 1024) + 2}):\n"
        "        f.write('<!--' + 'x' * (1024 * 1024) + '-->')\n"
        "    f.write('</testsuite></testsuites>')"
    )
    fork_suite(
        cwd,
        local_index,
        "huge",
        {"tests/conftest.py": rewrite_report(body), "tests/test_a.py": "def test_a():\n    pass\n"},
    )
    res = run("test", "huge")
    assert res.exit_code == 2, res
    assert f"over the {MAX_JUNIT_BYTES} forkman reads" in res.stdout
    logs = cwd / ".forkman" / "test-logs" / "huge"
    assert not (logs / "junit.xml").exists()
    assert (logs / "output.log").is_file()


def test_report_replaced_by_a_symlink_to_a_host_file_is_not_followed(
    cwd: Path, local_index: LocalIndex
) -> None:
    secret = cwd.parent / "host-report.xml"
    # a host file that is valid JUnit: a plain reader would follow the link and believe it
    secret.write_text(
        '<testsuites><testsuite tests="7" failures="0" errors="0" skipped="0" time="0">'
        "<!-- HOST-ONLY-CONTENT --></testsuite></testsuites>"
    )
    body = f"os.unlink(path)\nos.symlink({str(secret)!r}, path)"
    fork_suite(
        cwd,
        local_index,
        "linky",
        {
            "tests/conftest.py": rewrite_report(body),
            "tests/test_a.py": "def test_a():\n    assert 0\n",
        },
    )
    res = run("test", "linky")
    assert res.exit_code == 2, res
    assert "cannot open the JUnit report junit.xml" in res.stdout
    assert "symbolic link" in res.stdout
    logs = cwd / ".forkman" / "test-logs" / "linky"
    assert not (logs / "junit.xml").exists()
    assert "HOST-ONLY-CONTENT" not in (logs / "output.log").read_text()
    section = load_lock(cwd / "forkman.lock").forks["linky"].sections["test"]
    assert section["status"] == "error" and "passed" not in section


def test_report_replaced_by_a_fifo_does_not_hang(cwd: Path, local_index: LocalIndex) -> None:
    body = "os.unlink(path)\nos.mkfifo(path)"
    fork_suite(
        cwd,
        local_index,
        "fifo",
        {"tests/conftest.py": rewrite_report(body), "tests/test_a.py": "def test_a():\n    pass\n"},
    )
    res = run("test", "fifo")
    assert res.exit_code == 2, res
    assert "the JUnit report junit.xml is not a regular file" in res.stdout


ESCAPES = "\x1b]0;pwned-title\x07\x1b[2J\x1b[31mRED\r\x08\u202eevil\x9b31m"


def test_escape_sequences_in_messages_never_reach_the_terminal(
    cwd: Path, local_index: LocalIndex
) -> None:
    tests = (
        f"ESC = {ESCAPES!r}\n\n"
        "def test_bad():\n    print(ESC)\n    raise AssertionError(ESC)\n\n"
        "import pytest\n\n@pytest.mark.parametrize('x', [ESC])\ndef test_param(x):\n"
        "    assert not x\n"
    )
    fork_suite(cwd, local_index, "shouty", {"tests/test_esc.py": tests})
    # the payload reaches forkman: pytest keeps it in the report and the output
    res = run("-v", "test", "shouty", "--show-output")
    assert res.exit_code == 1, res
    raw = (cwd / ".forkman" / "test-logs" / "shouty" / "junit.xml").read_text()
    assert "[31mRED" in raw and "\x1b" in (
        cwd / ".forkman" / "test-logs" / "shouty" / "output.log"
    ).read_text(errors="replace")
    for stream in (res.stdout, res.stderr):
        for bad in ("\x1b", "\x07", "\x08", "\r", "\u202e", "\x9b"):
            assert bad not in stream, (bad, stream)
    assert "shouty: failed: 2 failed" in res.stdout
    # pytest itself escapes C0 controls in its report; C1 controls, CR and bidi overrides
    # are valid XML and arrive raw: forkman shows each as "?"
    assert "  FAILED tests/test_esc.py::test_bad: AssertionError: #x1B]0;pwned-title#x07" in (
        res.stdout
    )
    assert "?[2J?[31mRED???evil?31m" in res.stdout  # --show-output: the raw output, defused
    res = run("test", "shouty", "--format", "json")
    [row] = json.loads(res.stdout)
    for f in row["failures"]:
        assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in f["id"] + f["message"])
    lock_text = (cwd / "forkman.lock").read_text()
    assert "\x1b" not in lock_text and "\\u001b" not in lock_text.lower()


def test_control_characters_in_a_forged_report_are_shown_as_question_marks(
    cwd: Path, local_index: LocalIndex
) -> None:
    # C1 CSI (8-bit escape), carriage return and a bidi override are valid XML references
    report = (
        '<testsuites><testsuite tests="1" failures="1" errors="0" skipped="0" time="0">'
        '<testcase classname="tests.test_a" name="test_&#155;2J&#8238;x">'
        '<failure message="boom&#13;&#155;31mFAKE: all passed&#x2028;"/></testcase>'
        "</testsuite></testsuites>"
    )
    body = f"open(path, 'w').write({report!r})"
    fork_suite(
        cwd,
        local_index,
        "forged",
        {"tests/conftest.py": rewrite_report(body), "tests/test_a.py": "def test_a():\n    pass\n"},
    )
    res = run("test", "forged")
    assert res.exit_code == 1, res
    # the first line only: a carriage return ends it, nothing after it can overprint
    assert "  FAILED tests/test_a.py::test_?2J?x: boom\n" in res.stdout
    assert "FAKE" not in res.stdout
    for bad in ("\x9b", "\r", "\u202e", "\u2028"):
        assert bad not in res.stdout + res.stderr
