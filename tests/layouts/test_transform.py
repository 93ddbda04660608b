"""The namespace layout's transformation of a pristine wheel tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from forkman.core.errors import BadInput, ConfigError
from forkman.core.observer import RecordingObserver
from forkman.layouts.rewrite import RewriteError
from forkman.layouts.transform import (
    check_destination,
    member_moves,
    members_tree_hash,
    namespace_modules,
    place_members,
    rewrite_consumer,
    transform_tree,
)
from forkman.model.vendoring import StubPolicy, parse_vendoring_config
from forkman.store.treehash import tree_hash
from tests.support.wheel_trees import ns_config, sdist_file, wheel_tree

REQUESTS_LIKE = {
    "req/__init__.py": "import urllib3\nimport req.sub\nfrom req.sub import X\nfrom . import sub\n",
    "req/sub.py": "X = 1\n",
    "req/tests/test_x.py": "import req\n",
    "req/data.pem": "cert\n",
    "req/py.typed": "",
}


def run(pristine: Path, out: Path, **kw: object) -> dict[str, Any]:
    obs = RecordingObserver()
    record = transform_tree(
        pristine,
        out,
        fork_name=kw.pop("fork_name", "req"),  # type: ignore[arg-type]
        config=kw.pop("config", ns_config()),  # type: ignore[arg-type]
        observer=obs,
        **kw,  # type: ignore[arg-type]
    )
    record["_warnings"] = obs.warnings
    return record


def test_wheel_becomes_namespace_members(tmp_path: Path) -> None:
    pristine = wheel_tree(
        tmp_path,
        "req",
        "1.0",
        REQUESTS_LIKE,
        **{"licenses/LICENSE": "Apache\n"},
        metadata="License-Expression: Apache-2.0\nClassifier: License :: OSI Approved\n",
    )
    out = tmp_path / "out"
    rec = run(pristine, out, other_modules={"urllib3"})
    assert rec["members"] == ["req"]
    assert rec["modules"] == ["req"]
    assert not list(out.glob("*.dist-info"))
    init = (out / "req" / "__init__.py").read_text()
    assert init == (
        "from mypkg._vendor import urllib3\n"
        "import mypkg._vendor.req.sub; from mypkg._vendor import req\n"
        "from mypkg._vendor.req.sub import X\nfrom . import sub\n"
    )
    assert (out / "req" / "LICENSE").read_text() == "Apache\n"
    t = rec["transform"]
    assert t["licenses"] == [{"file": "req/LICENSE", "from": "wheel:licenses/LICENSE"}]
    assert t["metadata"]["license-expression"] == "Apache-2.0"
    assert t["rewritten-imports"] == 4 and t["rewritten-files"] == 2
    assert t["stubs"] == []  # ships py.typed


def test_modules_get_stubs_and_license_next_to_them(tmp_path: Path) -> None:
    pristine = wheel_tree(tmp_path, "six", "1.16.0", {"six.py": "import six\n"}, LICENSE="MIT\n")
    out = tmp_path / "out"
    rec = run(pristine, out, fork_name="six")
    assert rec["members"] == ["six.LICENSE", "six.py", "six.pyi"]
    assert (out / "six.pyi").read_text() == "from six import *"
    assert (out / "six.py").read_text() == "from mypkg._vendor import six\n"


def test_drop_globs_and_regexes_protected_and_data(tmp_path: Path) -> None:
    files = {
        **REQUESTS_LIKE,
        "req/vendor.txt": "nope\n",
        "__init__.py": "mine\n",
        "bin/tool.py": "x = 1\n",
        "req-1.0.data/purelib/extra_mod.py": "import req\n",
        "req-1.0.data/scripts/run": "#!/bin/sh\n",
    }
    pristine = wheel_tree(tmp_path, "req", "1.0", files)
    cfg = ns_config(
        drop=["*/tests", "bin/", {"regex": r"req/.*\.pem"}],
        **{"protected-files": ["__init__.py"]},
    )
    out = tmp_path / "out"
    rec = run(pristine, out, config=cfg)
    assert rec["members"] == ["extra_mod.py", "extra_mod.pyi", "req"]
    assert sorted(rec["transform"]["dropped"]) == ["bin", "req/data.pem", "req/tests"]
    assert rec["transform"]["protected-skipped"] == ["__init__.py"]
    assert rec["transform"]["data-skipped"] == ["req-1.0.data/scripts"]
    assert (out / "extra_mod.py").read_text() == "from mypkg._vendor import req\n"
    assert not (out / "req" / "tests").exists() and not (out / "req" / "data.pem").exists()
    assert any("protected" in w for w in rec["_warnings"])


def test_license_from_sdist_when_wheel_has_none(tmp_path: Path) -> None:
    pristine = wheel_tree(tmp_path, "req", "1.0", REQUESTS_LIKE)
    sdist = sdist_file(
        tmp_path,
        "req",
        "1.0",
        {"LICENSE.txt": "BSD\n", "tests/LICENSE": "not this\n", "setup.py": ""},
    )
    asked: list[tuple[str, str]] = []

    def fetch(name: str, version: str) -> Path:
        asked.append((name, version))
        return sdist

    rec = run(pristine, tmp_path / "out", fetch_sdist=fetch)
    assert asked == [("req", "1.0")]
    assert rec["transform"]["licenses"] == [
        {"file": "req/LICENSE.txt", "from": "sdist:req-1.0.tar.gz"}
    ]


def test_license_override_file_and_directory(tmp_path: Path) -> None:
    pristine = wheel_tree(tmp_path, "python-dateutil", "2.9", {"dateutil/__init__.py": ""})
    (tmp_path / "LICENSES").mkdir()
    (tmp_path / "LICENSES" / "dateutil.txt").write_text("Apache or BSD\n")
    cfg = ns_config(**{"license-overrides": {"python_dateutil": {"file": "LICENSES/dateutil.txt"}}})
    rec = run(pristine, tmp_path / "out", config=cfg, project_root=tmp_path)
    assert rec["transform"]["licenses"] == [
        {"file": "python-dateutil.dateutil.txt", "from": "override:LICENSES/dateutil.txt"}
    ]
    cfg2 = ns_config(**{"license-overrides": {"python-dateutil": {"directory": "dateutil"}}})
    pristine2 = wheel_tree(
        tmp_path / "2", "python-dateutil", "2.9", {"dateutil/__init__.py": ""}, LICENSE="A\n"
    )
    rec2 = run(pristine2, tmp_path / "out2", config=cfg2)
    assert rec2["transform"]["licenses"][0]["file"] == "dateutil/LICENSE"


def test_missing_license_warns(tmp_path: Path) -> None:
    pristine = wheel_tree(tmp_path, "req", "1.0", REQUESTS_LIKE)
    rec = run(pristine, tmp_path / "out")
    assert rec["transform"]["licenses"] == []
    assert any("no license" in w for w in rec["_warnings"])


@pytest.mark.parametrize("policy", list(StubPolicy))
def test_stub_policies(tmp_path: Path, policy: StubPolicy) -> None:
    pristine = wheel_tree(tmp_path, "req", "1.0", {**REQUESTS_LIKE, "untyped.py": ""})
    rec = run(pristine, tmp_path / "out", config=ns_config(stubs=policy.value))
    expected = {
        StubPolicy.UNTYPED: ["untyped.pyi"],
        StubPolicy.ALL: ["req.pyi", "untyped.pyi"],
        StubPolicy.NONE: [],
    }[policy]
    assert rec["transform"]["stubs"] == expected


def test_typing_stub_overrides(tmp_path: Path) -> None:
    pristine = wheel_tree(tmp_path, "six", "1.16.0", {"six.py": "", "six/moves/__init__.py": ""})
    cfg = ns_config(**{"typing-stubs": {"six": ["six.__init__", "six.moves.__init__"]}})
    out = tmp_path / "out"
    rec = run(pristine, out, config=cfg, fork_name="six")
    assert rec["transform"]["stubs"] == ["six/__init__.pyi", "six/moves/__init__.pyi"]
    assert (out / "six" / "moves" / "__init__.pyi").read_text() == "from six.moves import *"


def test_typed_modules_get_no_stub_even_when_listed(tmp_path: Path) -> None:
    """As the vendoring tool: a module with py.typed needs no stub, listed or not."""
    pristine = wheel_tree(tmp_path, "req", "1.0", REQUESTS_LIKE)
    cfg = ns_config(**{"typing-stubs": {"req": ["req.__init__"]}})
    assert run(pristine, tmp_path / "out", config=cfg)["transform"]["stubs"] == []


def test_archive_license_source_is_the_vendoring_tools_rule(tmp_path: Path) -> None:
    """Every LICENSE/COPYING file of the release archive, by base name, later ones winning;
    nothing under test folders; no sdist needed."""
    files = {
        **REQUESTS_LIKE,
        "req/_vendor/inner-1.0.dist-info/LICENSE": "inner MIT\n",
        "req/tests/LICENSE": "a test fixture\n",
        "req/COPYING.txt": "GPL text\n",
    }
    pristine = wheel_tree(tmp_path, "req", "1.0", files)
    wheel = next((tmp_path / "wheels").glob("*.whl"))

    def no_sdist(_d: str, _v: str) -> Path:
        raise AssertionError("the archive rule reads no sdist")

    out = tmp_path / "out"
    rec = run(
        pristine,
        out,
        config=ns_config(**{"license-source": "archive"}),
        release_archive=lambda: wheel,
        fetch_sdist=no_sdist,
    )
    assert (out / "req" / "COPYING.txt").read_text() == "GPL text\n"
    assert (out / "req" / "LICENSE").read_text() == "inner MIT\n"
    assert [x["file"] for x in rec["transform"]["licenses"]] == ["req/COPYING.txt", "req/LICENSE"]
    # the same names, a later file replacing an earlier one
    files["req/zz-1.0.dist-info/LICENSE"] = "the last one\n"
    (tmp_path / "wheels").rename(tmp_path / "old-wheels")
    pristine = wheel_tree(tmp_path, "req", "1.0", files)
    wheel = next((tmp_path / "wheels").glob("*.whl"))
    run(
        pristine,
        tmp_path / "out2",
        config=ns_config(**{"license-source": "archive"}),
        release_archive=lambda: wheel,
    )
    assert (tmp_path / "out2" / "req" / "LICENSE").read_text() == "the last one\n"


@pytest.mark.parametrize(
    ("files", "config"),
    [
        (REQUESTS_LIKE, ns_config()),
        ({"six.py": "", "six.pyi": "", "README.txt": ""}, ns_config()),
        (
            {"pkg/__init__.py": "", "pkg/tests/t.py": "", "tests/__init__.py": "", "bin/x": ""},
            ns_config(drop=["tests", "bin"]),
        ),
        (
            {"only_tests/test_x.py": "", "kept/__init__.py": "", "__init__.py": ""},
            ns_config(drop=[{"regex": "^only_tests/"}], **{"protected-files": ["__init__.py"]}),
        ),
        (
            {"fast.cpython-311-x86_64-linux-gnu.so": "", "pkg-1.0.data/purelib/extra.py": ""},
            ns_config(),
        ),
    ],
)
def test_wheel_modules_reads_what_the_transformation_vendors(
    tmp_path: Path, files: dict[str, str], config: object
) -> None:
    """The file-list reading used to vendor declared forks together agrees with the real thing."""
    from forkman.layouts.transform import wheel_modules

    pristine = wheel_tree(tmp_path, "pkg", "1.0", files)
    wheel = next((tmp_path / "wheels").glob("*.whl"))
    rec = run(pristine, tmp_path / "out", config=config, fork_name="pkg")
    assert wheel_modules(wheel, config) == rec["modules"]  # type: ignore[arg-type]


def test_syntax_error_in_vendored_code(tmp_path: Path) -> None:
    pristine = wheel_tree(tmp_path, "req", "1.0", {"req/__init__.py": "x = (\n"})
    with pytest.raises(RewriteError, match=r"req: req/__init__.py:1"):
        run(pristine, tmp_path / "out")


def test_not_a_wheel_and_namespace_collisions(tmp_path: Path) -> None:
    (tmp_path / "sdist-tree").mkdir()
    with pytest.raises(BadInput, match=r"one \.dist-info"):
        run(tmp_path / "sdist-tree", tmp_path / "o1")
    pristine = wheel_tree(tmp_path, "mypkg", "1.0", {"mypkg/__init__.py": ""})
    with pytest.raises(BadInput, match="collides with the vendored module mypkg"):
        run(pristine, tmp_path / "o2", fork_name="mypkg")
    (tmp_path / "src" / "mypkg").mkdir(parents=True)
    (tmp_path / "src" / "mypkg" / "_vendor.py").write_text("")
    vcfg = parse_vendoring_config(
        {"namespace": "mypkg._vendor", "destination": "src/mypkg/_vendor"}
    )
    with pytest.raises(BadInput, match="collides with the module"):
        check_destination(tmp_path, vcfg)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "missing"),
        ({"namespace": "mypkg._vendor", "destination": "src/other/_vendor"}, "not the directory"),
        ({"namespace": "my-pkg", "destination": "my-pkg"}, "not a dotted"),
        ({"namespace": "a._v", "destination": "../a/_v"}, "inside the project"),
        ({"namespace": "a._v", "destination": "a/_v", "drop": [1]}, "globs or"),
        ({"namespace": "a._v", "destination": "a/_v", "drop": [{"regex": "("}]}, "bad regex"),
        ({"namespace": "a._v", "destination": "a/_v", "substitute": [{"match": "x"}]}, "match"),
        ({"namespace": "a._v", "destination": "a/_v", "stubs": "some"}, "stubs must"),
        ({"namespace": "a._v", "destination": "a/_v", "rewrite-mode": "regex"}, "rewrite-mode"),
    ],
)
def test_bad_config(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_vendoring_config(table)


def test_place_members_into_shared_directory(tmp_path: Path) -> None:
    dest = tmp_path / "src" / "mypkg" / "_vendor"
    dest.mkdir(parents=True)
    (dest / "__init__.py").write_text("")
    (dest / "other.py").write_text("x = 1\n")
    pristine = wheel_tree(tmp_path, "six", "1.16.0", {"six.py": "X = 1\n"})
    out = tmp_path / "staged"
    rec = run(pristine, out, fork_name="six")
    with pytest.raises(BadInput, match="belongs to fork other"):
        place_members(out, dest, members=rec["members"], owned_by_others={"six.py": "other"})
    with pytest.raises(BadInput, match="protected"):
        place_members(out, dest, members=rec["members"], protected=["six.py"])
    assert sorted(p.name for p in dest.iterdir()) == ["__init__.py", "other.py"]
    place_members(out, dest, members=rec["members"], protected=["__init__.py"])
    h1 = members_tree_hash(dest, rec["members"])
    (dest / "other.py").write_text("changed\n")
    assert members_tree_hash(dest, rec["members"]) == h1
    (dest / "six.py").write_text("X = 2\n")
    assert members_tree_hash(dest, rec["members"]) != h1
    # an update replaces the previous members, protected files stay
    out2 = tmp_path / "staged2"
    pristine2 = wheel_tree(tmp_path / "v2", "six", "1.17.0", {"six/__init__.py": "X = 3\n"})
    rec2 = run(pristine2, out2, fork_name="six")
    place_members(out2, dest, members=rec2["members"], previous=rec["members"])
    assert sorted(p.name for p in dest.iterdir()) == ["__init__.py", "other.py", "six", "six.pyi"]
    staged_hash = tree_hash(tmp_path / "v2" / "pristine")
    assert staged_hash.startswith("sha256:")
    assert namespace_modules(
        {"six": {"namespace": rec2}, "req": {"namespace": {"modules": ["req"]}}, "x": {}},
        but="six",
    ) == {"req"}


def test_transformed_tree_runs_against_vendored_copies(tmp_path: Path) -> None:
    """Two forks vendored into one namespace import each other, not site-packages."""
    dest = tmp_path / "proj" / "mypkg" / "_vendor"
    dest.mkdir(parents=True)
    (dest.parent / "__init__.py").write_text("")
    (dest / "__init__.py").write_text("")
    lib = wheel_tree(tmp_path / "l", "lib", "1.0", {"lib/__init__.py": "NAME = 'vendored lib'\n"})
    app = wheel_tree(
        tmp_path / "a",
        "app",
        "1.0",
        {"app/__init__.py": "import lib\nimport lib as l2\nfrom lib import NAME\n"},
    )
    for name, tree, others in (("lib", lib, {"app"}), ("app", app, {"lib"})):
        out = tmp_path / f"staged-{name}"
        rec = run(tree, out, fork_name=name, other_modules=others)
        place_members(out, dest, members=rec["members"])
    decoy = tmp_path / "site"
    (decoy / "lib").mkdir(parents=True)
    (decoy / "lib" / "__init__.py").write_text("NAME = 'site lib'\n")
    printed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from mypkg._vendor import app;"
            "print(app.NAME, app.l2.NAME, 'lib' in sys.modules)",
        ],
        cwd=tmp_path / "proj",
        env={"PYTHONPATH": f"{tmp_path / 'proj'}:{decoy}"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed.strip() == "vendored lib vendored lib False"


def test_rewrite_consumer_package(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "mypkg"
    (pkg / "_vendor" / "six").mkdir(parents=True)
    (pkg / "_vendor" / "six" / "__init__.py").write_text("import six\n")
    (pkg / "sub").mkdir()
    (pkg / "__init__.py").write_text("import six\nimport os\n")
    (pkg / "sub" / "m.py").write_text("from six.moves import x  # keep\n")
    (pkg / "plain.py").write_text("import os\n")
    obs = RecordingObserver()
    changed = rewrite_consumer(tmp_path, ns_config(**{"rewrite-consumer": True}), {"six"}, obs)
    assert sorted(changed) == ["src/mypkg/__init__.py", "src/mypkg/sub/m.py"]
    assert (pkg / "__init__.py").read_text() == "from mypkg._vendor import six\nimport os\n"
    assert (pkg / "sub" / "m.py").read_text() == "from mypkg._vendor.six.moves import x  # keep\n"
    # the namespace directory itself is the transform's business, not the consumer's
    assert (pkg / "_vendor" / "six" / "__init__.py").read_text() == "import six\n"


def test_member_moves_for_a_transaction(tmp_path: Path) -> None:
    dest = tmp_path / "_vendor"
    dest.mkdir()
    (dest / "six.py").write_text("old\n")
    (dest / "six.LICENSE").write_text("MIT\n")
    (dest / "stray.py").write_text("")
    staged = tmp_path / "staged"
    moves = member_moves(
        staged, dest, members=["six", "six.LICENSE"], previous=["six.py", "six.LICENSE"]
    )
    assert moves == [
        (dest / "six.py", None),
        (dest / "six", staged / "six"),
        (dest / "six.LICENSE", staged / "six.LICENSE"),
    ]
    with pytest.raises(BadInput, match="belongs to no fork"):
        member_moves(staged, dest, members=["stray.py"])


def test_cache_gives_the_same_result_without_rewriting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import forkman.layouts.transform as transform
    import forkman.layouts.wheeltree as wheeltree

    pristine = wheel_tree(tmp_path, "req", "1.0", REQUESTS_LIKE)
    sdist = sdist_file(tmp_path, "req", "1.0", {"LICENSE": "BSD\n"})
    cache = transform.TransformCache(tmp_path / "cache")
    kw = {"other_modules": {"urllib3"}, "cache": cache, "fetch_sdist": lambda n, v: sdist}
    first = run(pristine, tmp_path / "o1", **kw)
    monkeypatch.setattr(wheeltree, "rewrite_source", _must_not_run)
    monkeypatch.setattr(wheeltree, "_licenses_from_sdist", _must_not_run)
    second = run(pristine, tmp_path / "o2", **kw)
    assert first == second
    assert tree_hash(tmp_path / "o1") == tree_hash(tmp_path / "o2")
    # another namespace is another cache key
    with pytest.raises(AssertionError, match="cache miss"):
        run(pristine, tmp_path / "o3", config=ns_config(namespace="x._v", destination="x/_v"), **kw)


def _must_not_run(*args: object, **kw: object) -> object:
    raise AssertionError("cache miss")
