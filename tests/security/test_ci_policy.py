"""`forkman ci --base`: a pull request does not choose its own security policy.

Each attack is a pull request made as a commit on a branch of a real consumer
project (forks from the local index, the real CLI, the real sandbox), checked
with `forkman ci --base main` the way a pipeline does, with a CI secret in the
environment. What the host sees afterwards is asserted: the outputs, the
report, the lock, the requests the indexes received, the exit code.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from forkman.model.lock import load_lock
from forkman.sandbox import Tier, detect
from tests.conftest import git
from tests.support.cli import run
from tests.support.index import LocalIndex, default_project_files

SECRET = "s3cr3t-0f-the-ci-7f1c9a"

# A test a pull request slips into a fork: it reads the CI secret, prints it and
# writes it into the scratch tree, and fails when it could read it (so that a
# leak is visible in the verdict even though the scratch tree is thrown away).
SNIFFER = (
    "import os\nfrom pathlib import Path\n\n\n"
    "def test_sniff():\n"
    "    secret = os.environ.get('CI_SECRET')\n"
    "    print('CI_SECRET=' + str(secret))\n"
    "    Path('loot.txt').write_text(str(secret))\n"
    "    assert secret is None, 'the CI secret reached the sandbox: ' + str(secret)\n"
)


def _needs_namespaces() -> None:
    support = detect()
    if support.best_tier is not Tier.NAMESPACES:
        pytest.skip(f"this host offers no user namespaces: {support.namespaces.detail}")


pytestmark = pytest.mark.usefixtures("runner_on_index")


@pytest.fixture
def evil_index(tmp_path: Path) -> Iterator[LocalIndex]:
    """An index on 127.0.0.1 that the attacker controls."""
    index = LocalIndex(tmp_path / "evil").start()
    try:
        yield index
    finally:
        index.stop()


def _advisory_database(tmp_path: Path) -> None:
    """An advisory database (one advisory, for another package), so that audit can pass."""
    folder = tmp_path / "advisories"
    folder.mkdir()
    advisory = {
        "id": "PYSEC-0000-1",
        "modified": "2024-01-01T00:00:00Z",
        "summary": "not about any fork here",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "unrelated"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1"}]}],
            }
        ],
    }
    (folder / "PYSEC-0000-1.json").write_text(json.dumps(advisory))
    res = run("db", "update", "--from", str(folder))
    assert res.exit_code == 0, res


@pytest.fixture
def base(
    cwd: Path, local_index: LocalIndex, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Path:
    """main: fork demo 1.0 committed; the CI secret is in the environment from now on."""
    _advisory_database(tmp_path)
    local_index.add_sdist("demo", "1.0")
    assert run("init").exit_code == 0
    assert run("fork", "demo==1.0").exit_code == 0
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "-m", "fork demo")
    git(cwd, "checkout", "-q", "-b", "pr")
    monkeypatch.setenv("CI_SECRET", SECRET)
    for var in ("GITHUB_BASE_REF", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME"):
        monkeypatch.delenv(var, raising=False)
    return cwd


def _edit_pyproject(root: Path, extra: str, replace: tuple[str, str] | None = None) -> None:
    path = root / "pyproject.toml"
    text = path.read_text()
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    path.write_text(text + extra)


def _sniffing_patch(root: Path) -> None:
    """The pull request's change to the fork, recorded as a patch so check and verify pass."""
    (root / "vendor/demo/tests/test_sniff.py").write_text(SNIFFER)
    res = run("patch", "demo", "-m", "Add a harmless looking test")
    assert res.exit_code == 0, res


def _commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def _everything_the_host_sees(root: Path, *outputs: str) -> str:
    """Every output of the run and every file of the project (git's own folder aside)."""
    texts = list(outputs)
    for path in root.rglob("*"):
        if ".git" in path.relative_to(root).parts or not path.is_file():
            continue
        texts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


def _stage(doc: dict, name: str) -> dict:  # type: ignore[type-arg]
    return next(s for s in doc["stages"] if s["name"] == name)


@pytest.mark.sandbox
def test_a_pull_request_cannot_let_the_ci_secret_into_the_sandbox(base: Path) -> None:
    _needs_namespaces()
    _edit_pyproject(base, '\n[tool.forkman.sandbox]\nenv-allow = ["CI_SECRET"]\n')
    _sniffing_patch(base)
    _commit(base, "pr: a test and a sandbox setting")
    # The attack, on the path that takes the checked-out settings (no base): the
    # pull request's env-allow lets the secret in, and the fork's test reads it.
    unprotected = run("ci", "--format", "json", "--output", "-")
    doc = json.loads(unprotected.stdout)
    assert doc["policy"] == "working tree"
    test = _stage(doc, "test")
    assert test["status"] == "failed", test  # the sniffer saw the secret
    assert "1 failed" in test["findings"][0]["message"]
    git(base, "checkout", "-q", "--", "forkman.lock")  # the run recorded its test result

    res = run("ci", "--base", "main", "--format", "json", "--output", "ci.json")
    report = json.loads((base / "ci.json").read_text())
    assert res.exit_code == 1 == report["exit_code"], res
    assert report["policy"].startswith("base main (")
    policy = _stage(report, "policy")
    assert policy["status"] == "failed"
    (finding,) = policy["findings"]
    assert finding["rule"] == "policy-changed" and finding["level"] == "error"
    assert finding["message"].startswith(
        '[tool.forkman] sandbox.env-allow: (unset) -> ["CI_SECRET"]: not applied in this run'
    )
    assert finding["path"] == "pyproject.toml"
    assert "policy: [tool.forkman] sandbox.env-allow" in res.stdout
    # the base's policy applied: the fork's tests ran and did not see the secret
    test = _stage(report, "test")
    assert test["status"] == "ok", test
    assert test["summary"] == "1/1 pass (1 changed fork(s))"
    assert load_lock(base / "forkman.lock").forks["demo"].sections["test"]["status"] == "passed"
    assert SECRET not in _everything_the_host_sees(base, res.stdout, res.stderr)
    # the pull request's settings are still what it committed: nothing was rewritten
    with (base / "pyproject.toml").open("rb") as fh:
        assert tomllib.load(fh)["tool"]["forkman"]["sandbox"]["env-allow"] == ["CI_SECRET"]


@pytest.mark.sandbox
def test_a_pull_request_cannot_change_the_test_command_or_the_index(
    base: Path, evil_index: LocalIndex, local_index: LocalIndex
) -> None:
    _needs_namespaces()
    evil_index.add_wheel("helper", "6.6.6")
    _edit_pyproject(
        base,
        "\n[tool.forkman.forks.demo.test]\n"
        'command = ["python", "-c", "import os; print(os.environ)"]\n'
        'requirements = ["helper==6.6.6"]\n',
        replace=(local_index.url, evil_index.url),
    )
    _sniffing_patch(base)
    _commit(base, "pr: another index and test command")
    res = run("ci", "--base", "main", "--format", "json", "--output", "ci.json")
    report = json.loads((base / "ci.json").read_text())
    assert res.exit_code == 1, res
    messages = {f["message"].split(":")[0]: f for f in _stage(report, "policy")["findings"]}
    assert set(messages) == {
        "[tool.forkman] index-url",
        "[tool.forkman] forks.demo.test.command",
        "[tool.forkman] forks.demo.test.requirements",
    }
    index_change = messages["[tool.forkman] index-url"]["message"]
    assert f'"{local_index.url}" -> "{evil_index.url}"' in index_change
    command = messages["[tool.forkman] forks.demo.test.command"]
    assert command["fork"] == "demo"
    assert '(unset) -> ["python", "-c", "import os; print(os.environ)"]' in command["message"]
    # what ran is the base's: the default command, from the base's index only
    assert evil_index.requests == []
    test = load_lock(base / "forkman.lock").forks["demo"].sections["test"]
    assert test["command"] == "pytest -q" and test["status"] == "passed", test
    assert SECRET not in _everything_the_host_sees(base, res.stdout, res.stderr)


def test_without_a_base_the_report_says_the_settings_are_the_working_trees(base: Path) -> None:
    res = run("ci", "--format", "json", "--output", "-")
    doc = json.loads(res.stdout)
    assert doc["policy"] == "working tree"
    policy = _stage(doc, "policy")
    assert policy["status"] == "ok" and policy["findings"] == []
    assert "no base revision: the checked-out settings apply" in policy["summary"]


def test_an_unchanged_policy_passes_and_names_the_base(base: Path) -> None:
    git(base, "commit", "-q", "--allow-empty", "-m", "pr: nothing")
    res = run("ci", "--base", "main", "--format", "json", "--output", "-")
    doc = json.loads(res.stdout)
    policy = _stage(doc, "policy")
    assert policy["status"] == "ok", policy
    assert res.exit_code == 0, res
    assert policy["summary"].startswith("security settings from the base main (")


def test_an_unreadable_announced_base_fails_closed_and_runs_no_test(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shallow clone, or a base the checkout lacks: the PR's own policy must not apply."""
    _edit_pyproject(base, '\n[tool.forkman.sandbox]\nenv-allow = ["CI_SECRET"]\n')
    _commit(base, "pr: a sandbox setting")
    monkeypatch.setenv("GITHUB_BASE_REF", "no-such-branch")
    res = run("ci", "--format", "json", "--output", "-")
    doc = json.loads(res.stdout)
    assert res.exit_code == 2 == doc["exit_code"]
    policy = _stage(doc, "policy")
    assert policy["status"] == "error"
    assert policy["findings"][0]["rule"] == "base-unreadable"
    assert "fetch-depth: 0" in policy["findings"][0]["hint"]
    test = _stage(doc, "test")
    assert test["status"] == "failed"
    assert [f["rule"] for f in test["findings"]] == ["not-tested"]
    assert (
        "demo: not tested: the base's security settings could not be read"
        in (test["findings"][0]["message"])
    )
    assert "test" not in load_lock(base / "forkman.lock").forks["demo"].sections


def test_a_base_whose_pyproject_is_broken_fails_closed(base: Path) -> None:
    git(base, "checkout", "-q", "main")
    (base / "pyproject.toml").write_text((base / "pyproject.toml").read_text() + "[[[\n")
    _commit(base, "main: broken")
    git(base, "checkout", "-q", "pr")
    res = run("ci", "--base", "main", "--format", "json", "--output", "-")
    doc = json.loads(res.stdout)
    assert res.exit_code == 2
    policy = _stage(doc, "policy")
    assert policy["status"] == "error"
    assert "pyproject.toml at main is not valid TOML" in policy["summary"]


def test_every_security_table_is_compared(base: Path, local_index: LocalIndex) -> None:
    """Audit ignores and database, protected files, patches-dir and a new fork's tests."""
    _edit_pyproject(
        base,
        "\n[tool.forkman.audit]\n"
        'database = "osv-of-my-own.sqlite"\n'
        "[[tool.forkman.audit.ignore]]\n"
        'id = "PYSEC-2024-1"\nreason = "trust me"\nexpires = 2099-01-01\n'
        "\n[tool.forkman.vendoring]\n"
        'protected-files = ["demo"]\n'
        "\n[tool.forkman.forks.newcomer.test]\n"
        'requirements = ["anything"]\n'
        # a table a later release may read: unknown keys come from the base too
        "\n[tool.forkman.network]\n"
        'max-bytes = "100G"\n'
        # settings that decide nothing in CI are the pull request's own
        "\n[tool.forkman.forks.demo]\n"
        "pinned = true\n"
        "\n[tool.forkman.licenses]\n"
        "deny-unknown = true\n",
        replace=(
            "[tool.forkman]\n",
            '[tool.forkman]\npatches-dir = "elsewhere"\nprefer = "wheel"\n',
        ),
    )
    _commit(base, "pr: policy")
    res = run("ci", "--base", "main", "--format", "json", "--output", "-")
    doc = json.loads(res.stdout)
    keys = {f["message"].split(":")[0] for f in _stage(doc, "policy")["findings"]}
    assert keys == {
        "[tool.forkman] patches-dir",
        "[tool.forkman] audit.database",
        "[tool.forkman] audit.ignore",
        "[tool.forkman] vendoring.protected-files",
        "[tool.forkman] forks.newcomer.test.requirements",
        "[tool.forkman] network.max-bytes",
    }
    assert res.exit_code == 1, res


def test_a_pull_request_that_claims_a_fix_or_drops_a_publisher_is_reported(base: Path) -> None:
    # the base records a publisher for demo (as `forkman provenance demo` would)
    git(base, "checkout", "-q", "main")
    lock_path = base / "forkman.lock"
    text = lock_path.read_text()
    provenance = (
        '\n[forks.demo.provenance]\nkind = "github"\nrepository = "demo/demo"\n'
        'workflow = "release.yml"\n'
    )
    lock_path.write_text(text + provenance)
    assert "provenance" in load_lock(lock_path).forks["demo"].sections
    _commit(base, "main: provenance")
    git(base, "checkout", "-q", "pr")
    git(base, "merge", "-q", "main")
    # the pull request swaps the publisher and hides an advisory behind a patch
    lock_path.write_text(lock_path.read_text().replace('"demo/demo"', '"mallory/demo"'))
    (base / "vendor/demo/README.md").write_text("# demo\n\nfixed\n")
    assert run("patch", "demo", "-m", "Fix it", "--fixes", "PYSEC-2024-1").exit_code == 0
    _commit(base, "pr: lock")
    res = run("ci", "--base", "main", "--format", "json", "--output", "-")
    doc = json.loads(res.stdout)
    rules = {f["rule"]: f for f in _stage(doc, "policy")["findings"]}
    assert set(rules) == {"publisher-changed", "fix-claimed"}
    assert "was github: demo/demo" in rules["publisher-changed"]["message"]
    assert "now github: mallory/demo" in rules["publisher-changed"]["message"]
    assert "declares it fixes PYSEC-2024-1" in rules["fix-claimed"]["message"]
    assert rules["fix-claimed"]["path"] == "forkman.lock"
    # dropping the publisher altogether is reported too
    lock_path.write_text(lock_path.read_text().split("\n[forks.demo.provenance]")[0] + "\n")
    res = run("ci", "--base", "main", "--format", "json", "--output", "-")
    names = {f["rule"] for f in _stage(json.loads(res.stdout), "policy")["findings"]}
    assert "provenance-dropped" in names


@pytest.mark.sandbox
def test_forks_whose_check_fails_are_not_tested_and_one_error_hides_no_other(
    cwd: Path, local_index: LocalIndex
) -> None:
    _needs_namespaces()
    local_index.add_sdist("good", "1.0")
    local_index.add_sdist("broken", "1.0")
    local_index.add_sdist("edited", "1.0")
    assert run("init").exit_code == 0
    for name in ("good", "broken", "edited"):
        assert run("fork", f"{name}==1.0").exit_code == 0
    _commit(cwd, "three forks")
    # one fork's test environment cannot be set up (its requirement is on no index),
    _edit_pyproject(cwd, '\n[tool.forkman.forks.broken.test]\nrequirements = ["nowhere==1"]\n')
    _commit(cwd, "a requirement")
    git(cwd, "checkout", "-q", "-b", "pr")
    # ...every fork changes, and one carries an unrecorded edit
    for name in ("good", "broken"):
        files = default_project_files(name, "1.0")
        (cwd / f"vendor/{name}/README.md").write_text(files["README.md"] + "more\n")
        assert run("patch", name, "-m", "Docs").exit_code == 0
    (cwd / "vendor/edited/README.md").write_text("edited by hand\n")
    res = run("ci", "--base", "main", "--format", "json", "--output", "-")
    doc = json.loads(res.stdout)
    assert set(doc["changed_forks"]) == {"good", "broken", "edited"}
    test = _stage(doc, "test")
    by_fork = {f["fork"]: f for f in test["findings"]}
    assert set(by_fork) == {"broken", "edited"}
    assert by_fork["broken"]["rule"] == "error"
    assert "cannot install the test requirements of broken" in by_fork["broken"]["message"]
    assert by_fork["edited"]["rule"] == "not-tested"
    assert by_fork["edited"]["message"] == "edited: not tested: check/verify failed"
    # the good fork's result is there in spite of its neighbour's error
    assert "1/3 pass" in test["summary"] and "1 not tested" in test["summary"]
    lock = load_lock(cwd / "forkman.lock")
    assert lock.forks["good"].sections["test"]["status"] == "passed"
    assert "test" not in lock.forks["edited"].sections
    assert test["status"] == "error"  # a fork whose tests could not run: fail closed
    assert res.exit_code == 2


def test_a_stand_in_test_command_cannot_take_the_base_policy(base: Path, tmp_path: Path) -> None:
    """`forkman test` in a subprocess would read the PR's settings: refused, not run."""
    from forkman.ci.pipeline import CiOptions, ForkTestStage, run_ci
    from forkman.model.project import Project

    _edit_pyproject(base, '\n[tool.forkman.sandbox]\nenv-allow = ["CI_SECRET"]\n')
    (base / "vendor/demo/README.md").write_text("changed\n")
    assert run("patch", "demo", "-m", "Docs").exit_code == 0
    _commit(base, "pr")
    marker = tmp_path / "ran"
    script = tmp_path / "stand_in.py"
    script.write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    report = run_ci(
        Project(base),
        CiOptions(base="main"),
        stages=[
            ForkTestStage(forks=["demo"], argv=[shutil.which("python3") or "python3", str(script)])
        ],
    )
    test = report.stages[-1]
    assert test.status.value == "error"
    assert test.findings[0].rule == "policy-not-passable"
    assert not marker.exists()
