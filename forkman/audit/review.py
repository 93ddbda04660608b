"""Risky upstream changes: what a new release adds that a release rarely should.

:func:`review_delta` compares two upstream trees and reports what the new one
adds or changes: code that runs at install or interpreter start, execution of
decoded or downloaded data, network access and process spawning in files that
had none, reads of credentials and of the whole environment, binaries and
obfuscated blobs, and new dependencies. Python files are read with :mod:`ast`
(so comments and strings that merely mention ``exec`` do not count); other text
files and unparsable Python fall back to patterns.

A finding present in the old version of the same file (same rule, same
detail) is not reported again: the review is about the delta.
"""

from __future__ import annotations

import ast
import datetime as dt
import math
import re
import subprocess
import tarfile
import tempfile
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..core.errors import BadInput, NotFound
from ..core.fs import remove_tree
from ._settings import Severity

__all__ = ["Finding", "ReviewReport", "Rule", "Severity", "review_delta", "review_fork"]


@dataclass(frozen=True)
class Rule:
    """A kind of risky change."""

    id: str
    """Stable identifier (used in reports and SARIF-like tooling)."""
    severity: Severity
    """Default severity."""
    why: str
    """Why it matters, for the reviewer."""


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "install-hook-pth",
            Severity.CRITICAL,
            "a .pth file with an import line runs code in every Python process of the "
            "environment, at interpreter start",
        ),
        Rule(
            "install-hook-pth-file",
            Severity.MEDIUM,
            ".pth files change sys.path for every process of the environment",
        ),
        Rule(
            "install-hook-sitecustomize",
            Severity.HIGH,
            "sitecustomize/usercustomize modules run at every interpreter start",
        ),
        Rule(
            "install-time-code",
            Severity.MEDIUM,
            "setup.py runs with the installing user's rights when the sdist is built",
        ),
        Rule(
            "build-backend-changed",
            Severity.HIGH,
            "the build backend runs arbitrary code at install; a changed or in-tree backend "
            "is a way to run it",
        ),
        Rule(
            "entry-point-added",
            Severity.MEDIUM,
            "entry points in plugin groups are imported automatically by other tools "
            "(pytest, setuptools, ...)",
        ),
        Rule(
            "exec-decoded",
            Severity.CRITICAL,
            "executing decoded, decompressed or downloaded data is how droppers hide payloads",
        ),
        Rule(
            "exec-dynamic",
            Severity.LOW,
            "exec/eval/compile of computed strings makes code review unreliable",
        ),
        Rule(
            "download-and-run",
            Severity.CRITICAL,
            "fetching a script and piping it to a shell runs whatever the server sends",
        ),
        Rule(
            "network-added",
            Severity.MEDIUM,
            "a file that had no network access now has some: a way to exfiltrate or to "
            "fetch a payload",
        ),
        Rule(
            "process-added",
            Severity.MEDIUM,
            "a file that spawned no processes now does: a way to run arbitrary commands",
        ),
        Rule(
            "credential-read",
            Severity.HIGH,
            "reading credential files or the whole environment is what stealers do",
        ),
        Rule(
            "binary-added",
            Severity.MEDIUM,
            "binary files cannot be reviewed as source and may carry compiled code",
        ),
        Rule(
            "obfuscated-blob",
            Severity.HIGH,
            "long high-entropy strings usually hide encoded payloads",
        ),
        Rule(
            "long-line",
            Severity.LOW,
            "very long lines in source hide code from reviewers and diff viewers",
        ),
        Rule(
            "new-dependency",
            Severity.MEDIUM,
            "a new dependency is new code from new people, installed with the fork",
        ),
    )
}


@dataclass(frozen=True)
class Finding:
    """One risky change."""

    rule: str
    """The rule id (see RULES)."""
    severity: Severity
    """How much it matters."""
    file: str
    """The file, relative to the tree root."""
    line: int
    """1-based line, 0 when it concerns the whole file."""
    message: str
    """What was found."""
    why: str
    """Why it matters."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON and the lock."""
        return {
            "rule": self.rule,
            "severity": self.severity.name.lower(),
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "why": self.why,
        }


@dataclass(frozen=True)
class _Hit:
    rule: str
    line: int
    detail: str
    severity: Severity | None = None


# -- tree walking -----------------------------------------------------------------------

_SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__"}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".ico", ".svg", ".webp", ".bmp", ".pdf"}
_CODE_BINARY_SUFFIXES = {".so", ".pyd", ".dll", ".dylib", ".exe", ".pyc", ".pyo", ".bin", ".a"}
_MAX_TEXT = 2 * 1024 * 1024


def _files(root: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS for part in rel.parts):
            continue
        if path.is_file() and not path.is_symlink():
            out[rel.as_posix()] = path
    return out


def _is_binary(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return True
    try:
        data[:65536].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(data[:65536]) - 4  # a cut multibyte char at the end is fine
    return False


# -- python analysis --------------------------------------------------------------------

_NETWORK_MODULES = {
    "socket",
    "urllib.request",
    "urllib2",
    "http.client",
    "httplib",
    "requests",
    "httpx",
    "aiohttp",
    "urllib3",
    "ftplib",
    "smtplib",
    "telnetlib",
    "paramiko",
    "websocket",
    "websockets",
}
_PROCESS_MODULES = {"subprocess", "pty", "pexpect", "commands"}
_PROCESS_CALLS = {
    "os.system",
    "os.popen",
    "os.execv",
    "os.execve",
    "os.execl",
    "os.execlp",
    "os.execvp",
    "os.spawnl",
    "os.spawnv",
    "os.spawnlp",
    "os.spawnvp",
    "os.posix_spawn",
    "os.startfile",
    "pty.spawn",
    "subprocess.Popen",
    "subprocess.run",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
    "subprocess.getoutput",
    "subprocess.getstatusoutput",
}
_NETWORK_CALLS = {
    "urllib.request.urlopen",
    "urlopen",
    "urllib.request.urlretrieve",
    "urlretrieve",
    "requests.get",
    "requests.post",
    "requests.request",
    "httpx.get",
    "httpx.post",
    "socket.socket",
    "socket.create_connection",
    "http.client.HTTPConnection",
    "http.client.HTTPSConnection",
}
_DECODERS = {
    "base64.b64decode",
    "b64decode",
    "base64.b32decode",
    "base64.b16decode",
    "base64.a85decode",
    "base64.b85decode",
    "base64.decodebytes",
    "base64.urlsafe_b64decode",
    "zlib.decompress",
    "gzip.decompress",
    "bz2.decompress",
    "lzma.decompress",
    "marshal.loads",
    "pickle.loads",
    "codecs.decode",
    "bytes.fromhex",
    "binascii.unhexlify",
    "binascii.a2b_base64",
    "decompress",
}
_EXEC_NAMES = {"exec", "eval", "compile", "execfile", "__import__"}
_CREDENTIAL_PATTERNS = re.compile(
    r"(\.ssh(/|\b)|id_rsa|id_ed25519|\.aws/credentials|\.aws\b|\.netrc|\.pypirc|"
    r"\.git-credentials|\.docker/config\.json|\.kube/config|\.gnupg|"
    r"Login Data|Local State|wallet\.dat|\.config/gcloud)"
)
_DOWNLOAD_RUN = re.compile(
    r"\b(curl|wget)\b[^\n|;]*(\||;|&&)\s*(ba|z|da)?sh\b|"
    r"\b(curl|wget)\b[^\n]*-O[^\n]*(&&|;)\s*(chmod|sh|bash|\./)|"
    r"\b(powershell|iwr|Invoke-WebRequest)\b[^\n]*\|\s*iex",
    re.IGNORECASE,
)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    return ""


class _PyScanner(ast.NodeVisitor):
    def __init__(self) -> None:
        self.hits: list[_Hit] = []
        self.aliases: dict[str, str] = {}

    def _resolve(self, name: str) -> str:
        head, _, rest = name.partition(".")
        full = self.aliases.get(head, head)
        return f"{full}.{rest}" if rest else full

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.aliases[(alias.asname or alias.name).split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )
            self._module(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
            self._module(f"{module}.{alias.name}", node.lineno)
        self._module(module, node.lineno)

    def _module(self, module: str, line: int) -> None:
        top = module.split(".")[0]
        for name in (module, ".".join(module.split(".")[:2]), top):
            if name in _NETWORK_MODULES:
                self.hits.append(_Hit("network-added", line, f"imports {name}"))
                return
            if name in _PROCESS_MODULES:
                self.hits.append(_Hit("process-added", line, f"imports {name}"))
                return
        if top == "keyring":
            self.hits.append(_Hit("credential-read", line, "imports keyring"))

    def visit_Call(self, node: ast.Call) -> None:
        name = self._resolve(_dotted(node.func))
        short = name.rsplit(".", 1)[-1]
        if name in _PROCESS_CALLS:
            self.hits.append(_Hit("process-added", node.lineno, f"calls {name}"))
        if name in _NETWORK_CALLS:
            self.hits.append(_Hit("network-added", node.lineno, f"calls {name}"))
        if name in _EXEC_NAMES or (short in {"exec", "eval"} and name.startswith("builtins")):
            self._exec(node, short)
        if name in {"dict", "json.dumps", "str", "repr"} and any(
            self._is_environ(a) for a in node.args
        ):
            self.hits.append(
                _Hit("credential-read", node.lineno, "copies the whole environment (os.environ)")
            )
        if name in {"os.environ.copy", "os.environ.items"} or name.endswith("environ.copy"):
            self.hits.append(
                _Hit("credential-read", node.lineno, "copies the whole environment (os.environ)")
            )
        self.generic_visit(node)

    def _is_environ(self, node: ast.AST) -> bool:
        return self._resolve(_dotted(node)) in {"os.environ", "environ"}

    def _exec(self, node: ast.Call, short: str) -> None:
        if not node.args:
            return
        arg = node.args[0]
        if isinstance(arg, ast.Constant):
            return
        for sub in ast.walk(arg):
            if isinstance(sub, ast.Call):
                inner = self._resolve(_dotted(sub.func))
                if inner in _DECODERS or inner.rsplit(".", 1)[-1] in {
                    "b64decode",
                    "decompress",
                    "unhexlify",
                    "fromhex",
                }:
                    self.hits.append(
                        _Hit("exec-decoded", node.lineno, f"{short}() of {inner}(...) output")
                    )
                    return
                if inner in _NETWORK_CALLS or "urlopen" in inner or inner.startswith("requests."):
                    self.hits.append(
                        _Hit("exec-decoded", node.lineno, f"{short}() of downloaded data")
                    )
                    return
        self.hits.append(_Hit("exec-dynamic", node.lineno, f"{short}() of a computed value"))

    def visit_For(self, node: ast.For) -> None:
        if self._is_environ(node.iter) or self._resolve(_dotted(node.iter)) in {
            "os.environ.items",
            "os.environ.keys",
            "os.environ.values",
        }:
            self.hits.append(
                _Hit("credential-read", node.lineno, "iterates over the whole environment")
            )
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            value = node.value
            match = _CREDENTIAL_PATTERNS.search(value)
            if match and len(value) < 300:
                self.hits.append(
                    _Hit("credential-read", node.lineno, f"refers to {match.group(0)!r}")
                )
            if _DOWNLOAD_RUN.search(value):
                self.hits.append(
                    _Hit("download-and-run", node.lineno, "a shell command that downloads and runs")
                )
            if _looks_encoded(value):
                self.hits.append(
                    _Hit(
                        "obfuscated-blob",
                        node.lineno,
                        f"a {len(value)}-character high-entropy string literal",
                    )
                )
        elif (
            isinstance(node.value, bytes)
            and len(node.value) >= 200
            and _entropy(node.value.decode("latin-1")) > 5.0
        ):
            self.hits.append(
                _Hit("obfuscated-blob", node.lineno, f"a {len(node.value)}-byte binary literal")
            )


def _entropy(text: str) -> float:
    if not text:
        return 0.0
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


_B64ISH = re.compile(r"^[A-Za-z0-9+/=_\-\s\\x]+$")


def _looks_encoded(value: str) -> bool:
    if len(value) < 200:
        return False
    compact = "".join(value.split())
    if len(compact) < 200:
        return False
    if " " in value.strip() and value.count(" ") > len(value) / 30:
        return False  # prose
    return bool(_B64ISH.match(compact)) and _entropy(compact) > 4.5


def _scan_python(text: str) -> list[_Hit]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return _scan_text(text, python=True)
    scanner = _PyScanner()
    scanner.visit(tree)
    return scanner.hits + _long_lines(text, limit=500)


def _scan_text(text: str, *, python: bool = False) -> list[_Hit]:
    hits: list[_Hit] = []
    for i, line in enumerate(text.splitlines(), 1):
        if _DOWNLOAD_RUN.search(line):
            hits.append(_Hit("download-and-run", i, "a shell command that downloads and runs"))
        match = _CREDENTIAL_PATTERNS.search(line)
        if match and (python or line.lstrip()[:1] not in {"#", ""}):
            hits.append(_Hit("credential-read", i, f"refers to {match.group(0)!r}"))
        if python and re.search(r"\b(exec|eval)\s*\(.*(b64decode|decompress|unhexlify)", line):
            hits.append(_Hit("exec-decoded", i, "exec/eval of decoded data"))
    return hits


def _long_lines(text: str, *, limit: int) -> list[_Hit]:
    for i, line in enumerate(text.splitlines(), 1):
        if len(line) > limit:
            return [_Hit("long-line", i, f"lines up to {len(line)} characters")]
    return []


# -- metadata analysis ------------------------------------------------------------------

_PLUGIN_GROUPS_HIGH = {
    "pytest11",
    "distutils.setup_keywords",
    "setuptools.finalize_distribution_options",
}


def _toml(text: str | None) -> Mapping[str, Any]:
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def _req_names(reqs: Iterable[Any]) -> set[str]:
    out: set[str] = set()
    for raw in reqs:
        if not isinstance(raw, str):
            continue
        try:
            out.add(canonicalize_name(Requirement(raw).name))
        except InvalidRequirement:
            out.add(raw.strip().split()[0] if raw.strip() else raw)
    return out


def _pyproject_deps(doc: Mapping[str, Any]) -> dict[str, set[str]]:
    project = doc.get("project", {}) if isinstance(doc.get("project"), Mapping) else {}
    build = doc.get("build-system", {}) if isinstance(doc.get("build-system"), Mapping) else {}
    out = {
        "dependencies": _req_names(project.get("dependencies", []) or []),
        "build-system.requires": _req_names(build.get("requires", []) or []),
    }
    optional = project.get("optional-dependencies", {})
    if isinstance(optional, Mapping):
        for extra, reqs in optional.items():
            out[f"optional-dependencies.{extra}"] = _req_names(reqs or [])
    return out


def _pyproject_entry_points(doc: Mapping[str, Any]) -> set[tuple[str, str]]:
    project = doc.get("project", {}) if isinstance(doc.get("project"), Mapping) else {}
    out: set[tuple[str, str]] = set()
    groups = project.get("entry-points", {})
    if isinstance(groups, Mapping):
        for group, eps in groups.items():
            if isinstance(eps, Mapping):
                out.update((group, str(k)) for k in eps)
    return out


def _find_line(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    return 0


def _review_pyproject(old: str | None, new: str) -> list[_Hit]:
    hits: list[_Hit] = []
    before, after = _toml(old), _toml(new)
    b_build = before.get("build-system", {}) if old is not None else {}
    a_build = after.get("build-system", {})
    if isinstance(a_build, Mapping) and isinstance(b_build, Mapping):
        if old is not None and a_build.get("build-backend") != b_build.get("build-backend"):
            hits.append(
                _Hit(
                    "build-backend-changed",
                    _find_line(new, "build-backend"),
                    f"build backend {b_build.get('build-backend')!r} -> "
                    f"{a_build.get('build-backend')!r}",
                )
            )
        if a_build.get("backend-path") and a_build.get("backend-path") != b_build.get(
            "backend-path"
        ):
            hits.append(
                _Hit(
                    "build-backend-changed",
                    _find_line(new, "backend-path"),
                    f"an in-tree build backend ({a_build.get('backend-path')!r})",
                )
            )
    # A name counts as new when no dependency list of the old release had it (moving a
    # dependency between extras is not new code); the project's own name is not a dependency.
    known = set().union(*_pyproject_deps(before).values()) if old is not None else set()
    project = after.get("project", {})
    own = project.get("name") if isinstance(project, Mapping) else None
    if isinstance(own, str):
        known.add(canonicalize_name(own))
    for key, names in _pyproject_deps(after).items():
        added = names - known if old is not None else set()
        known |= added
        for name in sorted(added):
            hits.append(_Hit("new-dependency", _find_line(new, name), f"{key} gains {name}"))
    if old is not None:
        for group, name in sorted(_pyproject_entry_points(after) - _pyproject_entry_points(before)):
            sev = Severity.HIGH if group in _PLUGIN_GROUPS_HIGH else None
            hits.append(
                _Hit("entry-point-added", _find_line(new, name), f"entry point {group}:{name}", sev)
            )
    return hits


def _setup_cfg_deps(text: str | None) -> tuple[set[str], set[str]]:
    import configparser

    if text is None:
        return set(), set()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return set(), set()
    deps: set[str] = set()
    if parser.has_option("options", "install_requires"):
        deps = _req_names(
            line.strip()
            for line in parser.get("options", "install_requires").splitlines()
            if line.strip()
        )
    eps: set[str] = set()
    if parser.has_section("options.entry_points"):
        for group, value in parser.items("options.entry_points"):
            for line in value.splitlines():
                if "=" in line:
                    eps.add(f"{group}:{line.split('=', 1)[0].strip()}")
    return deps, eps


def _review_setup_cfg(old: str | None, new: str) -> list[_Hit]:
    if old is None:
        return []
    old_deps, old_eps = _setup_cfg_deps(old)
    new_deps, new_eps = _setup_cfg_deps(new)
    hits = [
        _Hit("new-dependency", _find_line(new, name), f"install_requires gains {name}")
        for name in sorted(new_deps - old_deps)
    ]
    hits += [
        _Hit("entry-point-added", _find_line(new, ep.split(":", 1)[1]), f"entry point {ep}")
        for ep in sorted(new_eps - old_eps)
    ]
    return hits


def _setup_py_deps(text: str) -> set[str]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return set()
    out: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.keyword)
            and node.arg == "install_requires"
            and isinstance(node.value, ast.List | ast.Tuple)
        ):
            out |= _req_names(e.value for e in node.value.elts if isinstance(e, ast.Constant))
    return out


# -- the review -------------------------------------------------------------------------


def _hits_for(rel: str, data: bytes | None) -> list[_Hit]:
    if data is None:
        return []
    name = rel.rsplit("/", 1)[-1]
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    hits: list[_Hit] = []
    if _is_binary(data):
        if suffix in _IMAGE_SUFFIXES:
            return []
        sev = Severity.HIGH if suffix in _CODE_BINARY_SUFFIXES else None
        kind = "compiled code" if sev else "binary data"
        hits.append(_Hit("binary-added", 0, f"{kind}, {len(data)} bytes", sev))
        return hits
    if len(data) > _MAX_TEXT:
        return [_Hit("binary-added", 0, f"a {len(data)}-byte text file (too large to review)")]
    text = data.decode("utf-8", "replace")
    if suffix == ".pth":
        imports = [
            i
            for i, line in enumerate(text.splitlines(), 1)
            if line.startswith(("import ", "import\t"))
        ]
        if imports:
            hits.append(_Hit("install-hook-pth", imports[0], "a .pth file with import lines"))
        else:
            hits.append(_Hit("install-hook-pth-file", 0, "a .pth file"))
        hits += _scan_text(text)
        return hits
    if name in {"sitecustomize.py", "usercustomize.py"}:
        hits.append(_Hit("install-hook-sitecustomize", 0, f"a {name} module"))
    if suffix in {".py", ".pyw"}:
        hits += _scan_python(text)
    elif suffix in {".js", ".mjs", ".css"} or name.endswith(".min.js"):
        hits += _long_lines(text, limit=1000)
    elif suffix in _SCRIPT_SUFFIXES or name in {"Makefile", "Dockerfile"} or text.startswith("#!"):
        hits += _scan_text(text)
        hits += _long_lines(text, limit=2000)
    return hits


_SCRIPT_SUFFIXES = {
    ".sh",
    ".bash",
    ".zsh",
    ".ps1",
    ".bat",
    ".cmd",
    ".js",
    ".mjs",
    ".rb",
    ".pl",
    ".cfg",
    ".ini",
    ".toml",
    ".yml",
    ".yaml",
}
# Rules about capabilities: a file that already had the capability is not reported
# again for another call of the same kind.
_CAPABILITY_RULES = {"network-added", "process-added", "exec-dynamic", "long-line"}


def _key(hit: _Hit) -> tuple[str, str]:
    return (hit.rule, "" if hit.rule in _CAPABILITY_RULES else hit.detail)


def _counterparts(old_files: Mapping[str, Path]) -> Callable[[str], Path | None]:
    """Find a new file's old version, also across moves (``pkg/x.py`` -> ``src/pkg/x.py``)."""
    by_suffix: dict[str, list[str]] = {}
    for rel in old_files:
        parts = rel.split("/")
        for i in range(len(parts)):
            by_suffix.setdefault("/".join(parts[i:]), []).append(rel)

    def find(rel: str) -> Path | None:
        if rel in old_files:
            return old_files[rel]
        parts = rel.split("/")
        for i in range(1, len(parts)):
            candidates = by_suffix.get("/".join(parts[i:]), [])
            # a unique match on at least two path parts, or on a unique file name
            if len(candidates) == 1 and (len(parts) - i >= 2 or i == len(parts) - 1):
                return old_files[candidates[0]]
            if len(candidates) > 1:
                return None
        return None

    return find


def _install_time(rel: str) -> bool:
    return rel.rsplit("/", 1)[-1] in {"setup.py", "conftest.py"} or rel.endswith(".pth")


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


def review_delta(old: Path | None, new: Path) -> list[Finding]:
    """Risky additions and changes from tree `old` (None: nothing) to tree `new`."""
    if not new.is_dir():
        raise NotFound(f"{new} is not a directory")
    if old is not None and not old.is_dir():
        raise NotFound(f"{old} is not a directory")
    old_files = _files(old) if old is not None else {}
    new_files = _files(new)
    counterpart = _counterparts(old_files)
    findings: list[Finding] = []
    for rel in sorted(new_files):
        data = _read(new_files[rel])
        before = _read(counterpart(rel))
        if data is None or data == before:
            continue
        hits = _hits_for(rel, data)
        seen_before = {_key(h) for h in _hits_for(rel, before)}
        name = rel.rsplit("/", 1)[-1]
        old_text = before.decode("utf-8", "replace") if before is not None else None
        new_text = data.decode("utf-8", "replace")
        if name == "pyproject.toml" and rel.count("/") <= 1:
            hits += _review_pyproject(old_text, new_text)
        elif name == "setup.cfg" and rel.count("/") <= 1:
            hits += _review_setup_cfg(old_text, new_text)
        elif name == "setup.py" and rel.count("/") <= 1:
            hits.append(
                _Hit(
                    "install-time-code",
                    0,
                    "setup.py added" if before is None else "setup.py changed",
                )
            )
            if old_text is not None:
                for dep in sorted(_setup_py_deps(new_text) - _setup_py_deps(old_text)):
                    hits.append(
                        _Hit(
                            "new-dependency",
                            _find_line(new_text, dep),
                            f"install_requires gains {dep}",
                        )
                    )
        reported: set[tuple[str, str]] = set()
        for hit in hits:
            key = _key(hit)
            if key in seen_before or key in reported:
                continue
            reported.add(key)
            rule = RULES[hit.rule]
            severity = hit.severity or rule.severity
            if _install_time(rel) and hit.rule in {"network-added", "process-added"}:
                severity = max(severity, Severity.HIGH)
            findings.append(Finding(hit.rule, severity, rel, hit.line, hit.detail, rule.why))
    findings.sort(key=lambda f: (-f.severity, f.file, f.line, f.rule))
    return findings


# -- forks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewReport:
    """The review of one upstream delta of a fork."""

    name: str
    """The fork."""
    old: str | None
    """The older upstream version (None: the first import)."""
    new: str
    """The newer upstream version."""
    findings: tuple[Finding, ...]
    """What was found, most severe first."""
    block_on: Severity
    """The policy threshold."""

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """Findings at or above the threshold."""
        return tuple(f for f in self.findings if f.severity >= self.block_on)

    def lock_section(self) -> dict[str, Any]:
        """The ``review`` table stored in the lock."""
        counts = Counter(f.severity.name.lower() for f in self.findings)
        return {
            "when": dt.datetime.now(dt.UTC)
            .replace(microsecond=0)
            .isoformat()
            .replace("+00:00", "Z"),
            "upstream": f"{self.old or ''}..{self.new}",
            "blocked": bool(self.blocking),
            "block-on": self.block_on.name.lower(),
            "counts": dict(sorted(counts.items())),
            "findings": [
                f"{f.severity.name.lower()} {f.rule} {f.file}:{f.line}" for f in self.findings[:50]
            ],
        }


def _git(git_dir: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise BadInput(f"git {' '.join(args)} failed in {git_dir}: {out.stderr.strip()}")
    return out.stdout


def upstream_versions(git_dir: Path) -> list[str]:
    """The upstream versions imported into a fork's history, oldest first."""
    tags = _git(git_dir, "tag", "--list", "upstream/*").split()
    versions = [t.removeprefix("upstream/") for t in tags]

    def key(v: str) -> tuple[int, Any]:
        try:
            return (1, Version(v))
        except InvalidVersion:
            return (0, v)

    return sorted(versions, key=key)


def export_tree(git_dir: Path, version: str, dest: Path) -> Path:
    """Extract ``upstream/<version>`` of `git_dir` into `dest` (safely)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest.with_suffix(".tar")
    with archive.open("wb") as fh:
        proc = subprocess.run(
            ["git", f"--git-dir={git_dir}", "archive", "--format=tar", f"upstream/{version}"],
            stdout=fh,
            stderr=subprocess.PIPE,
            check=False,
        )
    if proc.returncode != 0:
        raise NotFound(
            f"no upstream version {version} in {git_dir}: {proc.stderr.decode().strip()}",
            hint="`forkman review NAME` without --upstream reviews the last two imports",
        )
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()
    return dest


def _parse_range(spec: str | None, versions: list[str]) -> tuple[str | None, str]:
    if spec is None:
        if not versions:
            raise NotFound("no upstream imports recorded for this fork")
        return (versions[-2] if len(versions) > 1 else None), versions[-1]
    if ".." not in spec:
        raise BadInput(
            f"--upstream takes A..B, not {spec!r}", hint="e.g. --upstream 23.1.0..23.2.0"
        )
    a, b = spec.split("..", 1)
    if not b:
        raise BadInput(f"--upstream {spec!r}: missing the newer version")
    return (a or None), b


def _fetched_tree(project: Any, entry: Any, version: str, dest: Path) -> Path:
    """Upstream `version` of a fork, not imported in its history: fetched as sync does."""
    from ..core.errors import ForkmanError
    from ..operations.sync import fetch_release_tree

    try:
        return fetch_release_tree(project, entry, version, dest)
    except ForkmanError as exc:
        raise NotFound(
            f"no upstream version {version} in {entry.name}'s history, and fetching it "
            f"failed: {exc.message}",
            hint=exc.hint or "--upstream A..B takes releases of the fork's own source",
        ) from None


def review_fork(
    project: Any,
    name: str,
    *,
    upstream: str | None = None,
    record: bool = False,
) -> ReviewReport:
    """Review the delta between two upstream releases of fork `name` (default: the last two).

    A release the fork's history has not imported (the one a refused sync or
    a dry run looked at) is fetched as ``sync`` would fetch it. With `record`
    the result is written to the fork's ``review`` table in the lock; by
    default nothing is written.
    """
    from ._settings import load_settings

    settings = load_settings(project)
    lock = project.load_lock()
    entry = lock.get(name) or lock.get(canonicalize_name(name))
    fork_name = entry.name if entry is not None else name
    git_dir = project.fork_git_dir(fork_name)
    if not git_dir.is_dir():
        raise NotFound(
            f"no history for fork {name!r} ({git_dir} is absent)",
            hint="`forkman status` lists the forks",
        )
    known = upstream_versions(git_dir)
    old_v, new_v = _parse_range(upstream, known)
    tmp = Path(tempfile.mkdtemp(prefix="forkman-review-"))
    try:

        def tree(version: str, dest: Path) -> Path:
            if version in known or entry is None:
                return export_tree(git_dir, version, dest)
            return _fetched_tree(project, entry, version, dest)

        old_dir = tree(old_v, tmp / "old") if old_v else None
        new_dir = tree(new_v, tmp / "new")
        findings = review_delta(old_dir, new_dir)
    finally:
        remove_tree(tmp)
    report = ReviewReport(fork_name, old_v, new_v, tuple(findings), settings.block_on)
    if record and entry is not None:
        from ..store.txn import update_lock

        section = report.lock_section()

        def record_review(lock: Any) -> Any:
            current = lock.get(fork_name)
            return (
                lock
                if current is None
                else lock.with_entry(current.with_section("review", section))
            )

        update_lock(project, record_review)
    return report
