"""Reading what a sandboxed suite wrote: its JUnit XML report (refused unless a small
regular file, parsed without entities), its output made safe for a terminal, and its
progress lines. All of it is written by the code under test: untrusted, capped, cleaned.
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.parsers import expat

from ..core.errors import IntegrityError
from ..core.observer import Observer

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
