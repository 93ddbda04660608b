"""What the risk review finds in one file: Python read with :mod:`ast`, other text by pattern.

:func:`hits_for` classifies a file (binary, ``.pth``, Python, script, minified
asset) and scans it; :func:`tree_files` lists the files of a tree the review reads.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from pathlib import Path

from ..core.pysource import parse_source
from ._review_rules import Hit
from ._settings import Severity

# -- tree walking -----------------------------------------------------------------------

_SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__"}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".ico", ".svg", ".webp", ".bmp", ".pdf"}
_CODE_BINARY_SUFFIXES = {".so", ".pyd", ".dll", ".dylib", ".exe", ".pyc", ".pyo", ".bin", ".a"}
_MAX_TEXT = 2 * 1024 * 1024


def tree_files(root: Path) -> dict[str, Path]:
    """The regular files of `root` by relative POSIX path (VCS folders and caches left out)."""
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
        self.hits: list[Hit] = []
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
                self.hits.append(Hit("network-added", line, f"imports {name}"))
                return
            if name in _PROCESS_MODULES:
                self.hits.append(Hit("process-added", line, f"imports {name}"))
                return
        if top == "keyring":
            self.hits.append(Hit("credential-read", line, "imports keyring"))

    def visit_Call(self, node: ast.Call) -> None:
        name = self._resolve(_dotted(node.func))
        short = name.rsplit(".", 1)[-1]
        if name in _PROCESS_CALLS:
            self.hits.append(Hit("process-added", node.lineno, f"calls {name}"))
        if name in _NETWORK_CALLS:
            self.hits.append(Hit("network-added", node.lineno, f"calls {name}"))
        if name in _EXEC_NAMES or (short in {"exec", "eval"} and name.startswith("builtins")):
            self._exec(node, short)
        if name in {"dict", "json.dumps", "str", "repr"} and any(
            self._is_environ(a) for a in node.args
        ):
            self.hits.append(
                Hit("credential-read", node.lineno, "copies the whole environment (os.environ)")
            )
        if name in {"os.environ.copy", "os.environ.items"} or name.endswith("environ.copy"):
            self.hits.append(
                Hit("credential-read", node.lineno, "copies the whole environment (os.environ)")
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
                        Hit("exec-decoded", node.lineno, f"{short}() of {inner}(...) output")
                    )
                    return
                if inner in _NETWORK_CALLS or "urlopen" in inner or inner.startswith("requests."):
                    self.hits.append(
                        Hit("exec-decoded", node.lineno, f"{short}() of downloaded data")
                    )
                    return
        self.hits.append(Hit("exec-dynamic", node.lineno, f"{short}() of a computed value"))

    def visit_For(self, node: ast.For) -> None:
        if self._is_environ(node.iter) or self._resolve(_dotted(node.iter)) in {
            "os.environ.items",
            "os.environ.keys",
            "os.environ.values",
        }:
            self.hits.append(
                Hit("credential-read", node.lineno, "iterates over the whole environment")
            )
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            value = node.value
            match = _CREDENTIAL_PATTERNS.search(value)
            if match and len(value) < 300:
                self.hits.append(
                    Hit("credential-read", node.lineno, f"refers to {match.group(0)!r}")
                )
            if _DOWNLOAD_RUN.search(value):
                self.hits.append(
                    Hit("download-and-run", node.lineno, "a shell command that downloads and runs")
                )
            if _looks_encoded(value):
                self.hits.append(
                    Hit(
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
                Hit("obfuscated-blob", node.lineno, f"a {len(node.value)}-byte binary literal")
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


def _scan_python(text: str) -> list[Hit]:
    try:
        tree = parse_source(text)
    except SyntaxError:
        return _scan_text(text, python=True)
    scanner = _PyScanner()
    scanner.visit(tree)
    return scanner.hits + _long_lines(text, limit=500)


def _scan_text(text: str, *, python: bool = False) -> list[Hit]:
    hits: list[Hit] = []
    for i, line in enumerate(text.splitlines(), 1):
        if _DOWNLOAD_RUN.search(line):
            hits.append(Hit("download-and-run", i, "a shell command that downloads and runs"))
        match = _CREDENTIAL_PATTERNS.search(line)
        if match and (python or line.lstrip()[:1] not in {"#", ""}):
            hits.append(Hit("credential-read", i, f"refers to {match.group(0)!r}"))
        if python and re.search(r"\b(exec|eval)\s*\(.*(b64decode|decompress|unhexlify)", line):
            hits.append(Hit("exec-decoded", i, "exec/eval of decoded data"))
    return hits


def _long_lines(text: str, *, limit: int) -> list[Hit]:
    for i, line in enumerate(text.splitlines(), 1):
        if len(line) > limit:
            return [Hit("long-line", i, f"lines up to {len(line)} characters")]
    return []


def hits_for(rel: str, data: bytes | None) -> list[Hit]:
    """What the rules find in file `rel` with content `data` (None: no such file)."""
    if data is None:
        return []
    name = rel.rsplit("/", 1)[-1]
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    hits: list[Hit] = []
    if _is_binary(data):
        if suffix in _IMAGE_SUFFIXES:
            return []
        sev = Severity.HIGH if suffix in _CODE_BINARY_SUFFIXES else None
        kind = "compiled code" if sev else "binary data"
        hits.append(Hit("binary-added", 0, f"{kind}, {len(data)} bytes", sev))
        return hits
    if len(data) > _MAX_TEXT:
        return [Hit("binary-added", 0, f"a {len(data)}-byte text file (too large to review)")]
    text = data.decode("utf-8", "replace")
    if suffix == ".pth":
        imports = [
            i
            for i, line in enumerate(text.splitlines(), 1)
            if line.startswith(("import ", "import\t"))
        ]
        if imports:
            hits.append(Hit("install-hook-pth", imports[0], "a .pth file with import lines"))
        else:
            hits.append(Hit("install-hook-pth-file", 0, "a .pth file"))
        hits += _scan_text(text)
        return hits
    if name in {"sitecustomize.py", "usercustomize.py"}:
        hits.append(Hit("install-hook-sitecustomize", 0, f"a {name} module"))
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
