"""Import rewriting on the syntax tree: forms, placement, byte preservation, execution."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from forkman.layouts.rewrite import (
    RewriteError,
    RewriteMode,
    Substitution,
    check_namespace,
    rewrite_source,
)

NS = "mypkg._vendor"
MODS = {"a", "six", "certifi"}


def rw(src: str, **kw: object) -> str:
    res = rewrite_source(src.encode(), modules=MODS, namespace=NS, **kw)  # type: ignore[arg-type]
    return res.data.decode()


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("import a\n", "from mypkg._vendor import a\n"),
        ("import a as c\n", "from mypkg._vendor import a as c\n"),
        ("import a.b\n", "import mypkg._vendor.a.b; from mypkg._vendor import a\n"),
        ("import a.b.c\n", "import mypkg._vendor.a.b.c; from mypkg._vendor import a\n"),
        ("import a.b as c\n", "from mypkg._vendor.a import b as c\n"),
        ("import a.b.c as d\n", "from mypkg._vendor.a.b import c as d\n"),
        ("from a import b\n", "from mypkg._vendor.a import b\n"),
        ("from a import b as c, d\n", "from mypkg._vendor.a import b as c, d\n"),
        ("from a.b import c\n", "from mypkg._vendor.a.b import c\n"),
        ("from a.b import *\n", "from mypkg._vendor.a.b import *\n"),
        (
            "from a import (\n    b,  # why\n    c,\n)\n",
            "from mypkg._vendor.a import (\n    b,  # why\n    c,\n)\n",
        ),
        ("from  a . b  import c\n", "from  mypkg._vendor.a.b  import c\n"),
        ("from \\\n  a import b\n", "from \\\n  mypkg._vendor.a import b\n"),
        ("import os, a, sys\n", "import os; from mypkg._vendor import a; import sys\n"),
        ("import os.path as p, six\n", "import os.path as p; from mypkg._vendor import six\n"),
        ("import a  # comment\n", "from mypkg._vendor import a  # comment\n"),
        ("x = 1; import a; y = 2\n", "x = 1; from mypkg._vendor import a; y = 2\n"),
        ("if x: import a\n", "if x: from mypkg._vendor import a\n"),
        # relative and unrelated imports stay
        ("from . import a\n", "from . import a\n"),
        ("from .a import b\n", "from .a import b\n"),
        ("from ..a.b import c\n", "from ..a.b import c\n"),
        ("import os\nfrom os import path\n", "import os\nfrom os import path\n"),
        (
            "import ab\nfrom ab import a\nimport sixer\n",
            "import ab\nfrom ab import a\nimport sixer\n",
        ),
        ("import mypkg\n", "import mypkg\n"),
        # strings and comments that look like imports stay
        ('s = "import a"\n# import a\n', 's = "import a"\n# import a\n'),
        ('"""\nimport a\n"""\n', '"""\nimport a\n"""\n'),
    ],
)
def test_import_forms(before: str, after: str) -> None:
    assert rw(before) == after
    ast.parse(rw(before))


def test_imports_in_every_block() -> None:
    src = textwrap.dedent(
        """\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from a import T
        try:
            import six
        except ImportError:  # pragma: no cover
            six = None
        class K:
            import certifi
            def m(self):
                import a.b
                return a.b
        def f():
            async def g():
                from a.b import c
            with open(x) as fh:
                import a
        """
    )
    out = rw(src)
    assert "    from mypkg._vendor.a import T\n" in out
    assert "    from mypkg._vendor import six\n" in out
    assert "    import certifi" not in out and "    from mypkg._vendor import certifi\n" in out
    assert "        import mypkg._vendor.a.b; from mypkg._vendor import a\n" in out
    assert "        from mypkg._vendor.a.b import c\n" in out
    assert "        from mypkg._vendor import a\n" in out
    assert out.count("\n") == src.count("\n")
    ast.parse(out)


def test_other_bytes_preserved_exactly() -> None:
    src = (
        b"# -*- coding: utf-8 -*-\r\n"
        b'"""D\xc3\xa9j\xc3\xa0 vu."""\r\n'
        b"x = '\xe2\x82\xac'; import a  # \xc3\xa9t\xc3\xa9\r\n"
        b"def f():\r\n\timport os,   six\r\n\treturn  ( 1 )\r\n"
        b"from a.b import (c,\r\n   d)"
    )
    res = rewrite_source(src, modules=MODS, namespace=NS)
    assert res.imports == 3
    expected = (
        src.replace(b"; import a  #", b"; from mypkg._vendor import a  #")
        .replace(b"import os,   six", b"import os; from mypkg._vendor import six")
        .replace(b"from a.b import", b"from mypkg._vendor.a.b import")
    )
    assert res.data == expected


def test_bom_and_legacy_encoding_preserved() -> None:
    bom = b"\xef\xbb\xbfimport a\nx = 'caf\xc3\xa9'\n"
    assert rewrite_source(bom, modules=MODS, namespace=NS).data == (
        b"\xef\xbb\xbffrom mypkg._vendor import a\nx = 'caf\xc3\xa9'\n"
    )
    latin = b"# -*- coding: latin-1 -*-\nx = 'caf\xe9'; import a\n"
    assert rewrite_source(latin, modules=MODS, namespace=NS).data == (
        b"# -*- coding: latin-1 -*-\nx = 'caf\xe9'; from mypkg._vendor import a\n"
    )


def test_unchanged_file_is_returned_as_is() -> None:
    src = b"import os\r\n\r\nprint( 1 )\n"
    res = rewrite_source(src, modules=MODS, namespace=NS)
    assert res.data is src and not res.changed


def test_substitutions_run_first_and_count() -> None:
    src = "mod = __import__('six')\nimport a\n"
    subs = [Substitution(match=r"__import__\('six'\)", replace="__import__('mypkg._vendor.six')")]
    res = rewrite_source(src.encode(), modules=MODS, namespace=NS, substitutions=subs)
    assert res.substitutions == 1 and res.imports == 1
    assert res.data.decode() == (
        "mod = __import__('mypkg._vendor.six')\nfrom mypkg._vendor import a\n"
    )


def test_syntax_error_names_file_and_line() -> None:
    with pytest.raises(RewriteError) as info:
        rewrite_source(
            b"import a\n\ndef f(:\n    pass\n", modules=MODS, namespace=NS, filename="x/y.py"
        )
    assert "x/y.py:3:" in info.value.message
    assert info.value.hint and "patch" in info.value.hint


@pytest.mark.parametrize("bad", ["", "1abc", "a..b", "a-b._vendor", "a.", ".a"])
def test_bad_namespace(bad: str) -> None:
    with pytest.raises(RewriteError):
        check_namespace(bad)
    check_namespace("pkg._vendor")


def test_compat_mode_reproduces_vendoring_regexes() -> None:
    src = (
        "import a\nimport a as c\nimport a.b\nimport a.b as d\nfrom a.b import c\n"
        "    import six\nimport os\r\nimport six, os\nimport sixth\n"
    )
    res = rewrite_source(
        src.encode(), modules=MODS, namespace=NS, mode=RewriteMode.VENDORING_COMPAT
    )
    assert res.data.decode() == (
        "from mypkg._vendor import a\nfrom mypkg._vendor import a as c\nimport a.b\n"
        "import mypkg._vendor.a.b as d\nfrom mypkg._vendor.a.b import c\n"
        "    from mypkg._vendor import six\nimport os\nimport six, os\nimport sixth\n"
    )
    # the tool refuses `import a.b` (a patch must change it): left, and its line reported
    assert res.unrewritten == (3,)


def _tool_rewrite(tmp: Path, text: str, modules: list[str]) -> str | None:
    """The vendoring tool's own rewrite of `text` (None when it refuses the file)."""
    # the vendoring tool ships neither type hints nor a py.typed marker
    from vendoring.errors import VendoringError  # type: ignore[import-untyped]
    from vendoring.tasks.vendor import rewrite_file_imports  # type: ignore[import-untyped]

    path = tmp / "x.py"
    path.write_text(text, encoding="utf-8")
    subs = [{"match": r"pkg_resources\.extern", "replace": NS}]
    try:
        rewrite_file_imports(path, NS, modules, subs)
    except VendoringError:
        return None
    return path.read_text(encoding="utf-8")


def test_compat_mode_is_the_vendoring_tool(tmp_path: Path) -> None:
    """Differential: every generated file is rewritten exactly as the tool itself does."""
    pytest.importorskip("vendoring", reason="the vendoring tool is a test dependency")
    import random

    rng = random.Random(5)
    pieces = [
        *_forms(),
        "from pkg_resources.extern import six",
        "    import a",
        "\timport six  # indented",
        "import a  # comment",
        "import a\\\n    .b",
        "x = 'import a'",
        "",
        "from a import (b,\n    c)",
        "from . import a",
        "import a.b.c as q, os",
        "try:\n    import certifi\nexcept ImportError:\n    pass",
    ]
    modules = sorted(MODS)
    for _ in range(300):
        text = "\n".join(rng.choice(pieces) for _ in range(rng.randint(1, 6))) + "\n"
        if rng.random() < 0.2:
            text = text.replace("\n", "\r\n")
        expected = _tool_rewrite(tmp_path, text, modules)
        subs = (Substitution(r"pkg_resources\.extern", NS),)
        res = rewrite_source(
            text.encode(),
            modules=modules,
            namespace=NS,
            substitutions=subs,
            mode=RewriteMode.VENDORING_COMPAT,
        )
        if expected is None:
            assert res.unrewritten, text  # the tool refused it: forkman says which lines
        else:
            assert res.data.decode() == expected, text
            assert not res.unrewritten, text


def test_every_mode_is_handled() -> None:
    for mode in RewriteMode:
        rewrite_source(b"import a\n", modules=MODS, namespace=NS, mode=mode)


# -- property: many generated statements keep their meaning ---------------------------


def _forms() -> list[str]:
    names = ["a", "a.b", "a.b.c", "os", "os.path", "six"]
    out: list[str] = []
    for n in names:
        out.append(f"import {n}")
        out.append(f"import {n} as q")
        out.append(f"from {n} import z")
        out.append(f"from {n} import z as q, y")
    out += [f"import {x}, {y}" for x in names for y in names]
    return out


def _bindings(stmt: str, ns: str | None) -> list[tuple[str, str]]:
    """(bound name, module path it refers to) for one rewritten or original statement."""
    result: list[tuple[str, str]] = []
    for node in ast.parse(stmt).body:
        if isinstance(node, ast.Import):
            for al in node.names:
                if al.asname:
                    result.append((al.asname, al.name))
                elif ns is None or not al.name.startswith(ns + "."):
                    result.append((al.name.split(".")[0], al.name.split(".")[0]))
        elif isinstance(node, ast.ImportFrom):
            assert node.module
            for al in node.names:
                result.append((al.asname or al.name, f"{node.module}.{al.name}"))
    return result


@pytest.mark.parametrize("stmt", _forms())
def test_rewrite_keeps_bindings(stmt: str) -> None:
    out = rw(stmt + "\n").rstrip("\n")
    before = _bindings(stmt, None)
    after = _bindings(out, NS)

    def strip(path: str) -> str:
        return path.removeprefix(NS + ".")

    # the same names are bound, in the same order, to the same modules (de-namespaced)
    assert [(n, strip(p)) for n, p in after] == before
    # vendored references all point into the namespace, others never do
    for _, p in after:
        assert p.startswith(NS + ".") == (strip(p).split(".")[0] in MODS)


# -- execution: a real interpreter imports the vendored copy --------------------------


def test_rewritten_tree_imports_the_vendored_copy(tmp_path: Path) -> None:
    """A top-level `a` exists on sys.path too; the rewritten code must not use it."""
    decoy = tmp_path / "site"
    (decoy / "a" / "b").mkdir(parents=True)
    (decoy / "a" / "__init__.py").write_text("WHO = 'decoy'\n")
    (decoy / "a" / "b" / "__init__.py").write_text("WHO = 'decoy.b'\n")
    (decoy / "six.py").write_text("WHO = 'decoy six'\n")

    root = tmp_path / "proj"
    vendor = root / "mypkg" / "_vendor"
    (vendor / "a" / "b").mkdir(parents=True)
    (root / "mypkg" / "__init__.py").write_text("")
    (vendor / "__init__.py").write_text("")
    files = {
        vendor / "a" / "__init__.py": "import six\nWHO = 'vendored'\nSIX = six.WHO\n",
        vendor / "a" / "b" / "__init__.py": "from . import c\nWHO = 'vendored.b'\n",
        vendor / "a" / "b" / "c.py": "import a\nPARENT = a.WHO\n",
        vendor / "six.py": "WHO = 'vendored six'\n",
        root / "mypkg" / "use.py": textwrap.dedent(
            """\
            import a.b
            import a.b as ab
            from a.b import c
            from a import WHO
            import six as s
            def lazy():
                import a.b.c
                return a.b.c.PARENT
            RESULT = (a.WHO, a.b.WHO, ab.WHO, c.PARENT, WHO, s.WHO, a.SIX, lazy())
            """
        ),
    }
    for path, text in files.items():
        res = rewrite_source(text.encode(), modules={"a", "six"}, namespace=NS)
        path.write_bytes(res.data)
    code = (
        "import sys; from mypkg.use import RESULT; print(RESULT);"
        "print(sorted(m for m in sys.modules if m in ('a', 'six', 'a.b')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={"PYTHONPATH": f"{root}:{decoy}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0] == str(
        (
            "vendored",
            "vendored.b",
            "vendored.b",
            "vendored",
            "vendored",
            "vendored six",
            "vendored six",
            "vendored",
        )
    )
    assert out[1] == "[]", "the top-level decoys must never be imported"


@pytest.mark.parametrize(
    "src",
    [
        "def f():\n    import os, \\\n        a\n    return a\n",
        "import os, \\\n  a",
        "import a, \\\r\n  six  # c\r\nx = 1\r\n",
        "if x: import a.b, \\\n   os\nelse: pass\n",
    ],
)
def test_continued_imports_keep_line_numbers(src: str) -> None:
    out = rw(src)
    assert out.count("\n") == src.count("\n")
    assert out.count("\r") == src.count("\r")
    ast.parse(out)
    assert "from mypkg._vendor import a" in out
