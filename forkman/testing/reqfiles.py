"""Requirements collected from a fork's files: each checked as PEP 508 for this
interpreter, one per distribution (first found wins), the fork's own extras expanded in
place, requirement files followed (``-r``, ``-c``) inside the tree only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .metadata import MetadataReader
from .treeread import logical_lines, safe

MAX_FILES = 64
"""At most this many requirement files are read (includes count)."""

_WORDS = "test|tests|testing|dev|develop|development"
_ROOT_FILE = re.compile(
    rf"^(?:(?P<a>{_WORDS})[-_.]?requirements?|requirements?[-_.](?P<b>{_WORDS}))"
    r"\.(?:txt|in|pip)$",
    re.IGNORECASE,
)
_TESTS_DIR_FILE = re.compile(
    rf"^(?:requirements?|requires)(?:[-_.](?P<a>{_WORDS}))?\.(?:txt|in|pip)$", re.IGNORECASE
)
_REQS_DIR_FILE = re.compile(
    rf"^(?:(?P<a>{_WORDS})(?:[-_.]requirements?)?|requirements?[-_.](?P<b>{_WORDS}))"
    r"\.(?:txt|in|pip)$",
    re.IGNORECASE,
)
_TESTS_DIRS = ("tests", "test", "testing")
_REQS_DIRS = ("requirements", "requirement", "reqs")

_CLEAN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-\[\],<>=!~*+]*$")
"""What a returned requirement may look like: no spaces, quotes, options or markers."""
_SELF_PATH = re.compile(r"^(?:\.|\./|file:\.|file:\./)(?:\[(?P<extras>[^\]]*)\])?$")
_FACTOR = re.compile(r"^[A-Za-z0-9_{},.!\- ]+:(?:\s|$)")
_OPTION = re.compile(r"^(?P<opt>--[A-Za-z][\w-]*|-[A-Za-z])(?:\s*=\s*|\s*)(?P<arg>.*)$")
_INLINE_OPTION = re.compile(r"\s--?[A-Za-z]")


@dataclass(frozen=True)
class Found:
    """One requirement of a test environment and where it was found."""

    requirement: str
    """A PEP 508 requirement with no marker, URL or option (``hypothesis``, ``pytest>=7``)."""
    source: str
    """Where it came from, e.g. ``tests/requirements.txt`` or ``extra [tests]``."""


class RequirementSet(MetadataReader):
    """Accumulates requirements and constraints found in a fork's tree, in order."""

    def __init__(self, tree: Path, name: str) -> None:
        self.found: list[Found] = []
        self.by_name: dict[str, Found] = {}
        self.constraints: list[Found] = []
        self.constraint_names: set[str] = set()
        self.files_read: set[Path] = set()
        self._expanding: list[str] = []
        self._expanded: set[str] = set()
        super().__init__(tree, name)

    def _parse(self, raw: str, source: str, *, allow_url: bool = False) -> Requirement | None:
        """`raw` as a requirement that holds here, or None with a note saying why not."""
        text = raw.strip()
        shown = repr(safe(text, 80))
        if any(c in text for c in "$\\\n\r\0") or not text.isprintable():
            self.note(f"{source}: {shown} is refused (variables, escapes or control characters)")
            return None
        try:
            req = Requirement(text)
        except InvalidRequirement:
            self.note(f"{source}: {shown} is not a PEP 508 requirement; not used")
            return None
        if req.url and not allow_url:
            self.note(
                f"{source}: {shown} is a direct URL reference; not used "
                "(test requirements come from the configured index)"
            )
            return None
        if req.marker is not None:
            try:
                holds = req.marker.evaluate()
            except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName) as exc:
                self.note(f"{source}: {shown}: its marker cannot be evaluated ({exc}); not used")
                return None
            if not holds:
                self.note(f"{source}: {shown}: its marker does not hold here; not used")
                return None
            req.marker = None
        return req

    def add(self, raw: str, source: str, *, allow_url: bool = False) -> None:
        req = self._parse(raw, source, allow_url=allow_url)
        if req is None:
            return
        canon = canonicalize_name(req.name)
        if canon in self.self_names:
            if req.extras:
                for extra in sorted(req.extras):
                    self.expand_extra(extra, f"{source} -> [{safe(extra, 40)}]")
            else:
                self.note(f"{source}: {req.name} is the fork itself (installed from its tree)")
            return
        text = str(req)
        if not allow_url and not _CLEAN.match(text):
            self.note(f"{source}: {safe(text, 80)!r} has unexpected characters; not used")
            return
        first = self.by_name.get(canon)
        if first is not None:
            # a bare name adds nothing to what came first; anything more is worth a note
            if first.requirement != text and (req.specifier or req.extras):
                self.note(
                    f"{source}: {safe(text, 80)} not used: {first.requirement} "
                    f"({first.source}) comes first"
                )
            return
        found = Found(text, source)
        self.by_name[canon] = found
        self.found.append(found)

    def add_constraint(self, raw: str, source: str) -> None:
        req = self._parse(raw, source)
        if req is None:
            return
        canon = canonicalize_name(req.name)
        text = str(req)
        if canon in self.self_names or canon in self.constraint_names or not _CLEAN.match(text):
            return
        self.constraint_names.add(canon)
        self.constraints.append(Found(text, source))

    def expand_extra(self, extra: str, source: str) -> bool:
        """Add the contents of the fork's extra `extra`; False when it has none such."""
        key = canonicalize_name(extra)
        if key in self._expanding:
            self.note(f"{source}: the extra [{safe(key, 40)}] includes itself; cycle cut")
            return True
        entry = self.extras.get(key)
        if entry is None:
            self.note(f"{source}: the fork declares no extra [{safe(key, 40)}]")
            return False
        if key in self._expanded:  # its requirements are in already
            return True
        self._expanding.append(key)
        try:
            for raw in entry[1]:
                self.add(raw, source)
        finally:
            self._expanding.pop()
        self._expanded.add(key)
        return True

    def requirement_files(self) -> None:
        test_files: list[Path] = []
        dev_files: list[Path] = []

        def listing(folder: Path) -> list[Path]:
            if not folder.is_dir() or folder.is_symlink():
                return []
            try:
                return sorted(p for p in folder.iterdir() if p.is_file())
            except OSError:
                return []

        for d in _TESTS_DIRS:
            for p in listing(self.tree / d):
                m = _TESTS_DIR_FILE.match(p.name)
                if m:
                    (dev_files if (m["a"] or "test").startswith("dev") else test_files).append(p)
        for d in _REQS_DIRS:
            for p in listing(self.tree / d):
                m = _REQS_DIR_FILE.match(p.name)
                if m:
                    word = (m["a"] or m["b"]).lower()
                    (test_files if word.startswith("test") else dev_files).append(p)
        for p in listing(self.tree):
            m = _ROOT_FILE.match(p.name)
            if m:
                word = (m["a"] or m["b"]).lower()
                (test_files if word.startswith("test") else dev_files).append(p)
        if test_files and dev_files:
            shown = ", ".join(self.rel(p) for p in dev_files)
            self.note(f"{shown}: not used, test requirement files are declared")
        for p in test_files or dev_files:
            if p.suffix == ".in" and p.with_suffix(".txt") in test_files + dev_files:
                self.note(f"{self.rel(p)}: not used, its compiled {p.with_suffix('.txt').name} is")
                continue
            self.requirement_file(p, "", ())

    def requirement_file(
        self, path: Path, origin: str, stack: tuple[Path, ...], *, constraints: bool = False
    ) -> None:
        label = self.rel(path) if not origin else f"{origin} -> {safe(self.rel(path), 80)}"
        try:
            real = path.resolve()
        except (OSError, RuntimeError):  # a symbolic link loop
            self.note(f"{label}: cannot be resolved; not read")
            return
        if real in stack:
            self.note(f"{label}: includes itself; cycle cut")
            return
        if real in self.files_read:  # its requirements are in already
            return
        if len(self.files_read) >= MAX_FILES:
            self.note(f"{label}: more than {MAX_FILES} requirement files; not read")
            return
        text = self.read(path)
        if text is None:
            return
        self.files_read.add(real)
        for line in logical_lines(text):
            self.requirement_line(line, path.parent, label, (*stack, real), constraints=constraints)

    def requirement_line(
        self,
        line: str,
        base: Path,
        label: str,
        stack: tuple[Path, ...],
        *,
        constraints: bool = False,
    ) -> None:
        """One line of a requirement file (or a tox deps / nox install argument)."""
        if line.startswith("-"):
            m = _OPTION.match(line)
            opt, arg = (m["opt"], m["arg"].strip()) if m else (line.split()[0], "")
            if opt in ("-r", "--requirement", "-c", "--constraint"):
                self.include(
                    arg,
                    base,
                    label,
                    stack,
                    constraints=constraints or opt in ("-c", "--constraint"),
                )
            elif opt in ("-e", "--editable"):
                if not self.self_path(arg, label):
                    self.note(f"{label}: editable {safe(arg, 60)!r} not used")
            else:
                self.note(
                    f"{label}: option {safe(opt, 40)} ignored (options never reach the installer)"
                )
            return
        if self.self_path(line, label):
            return
        head = line
        inline = _INLINE_OPTION.search(line)
        if inline is not None:
            head = line[: inline.start()]
            self.note(f"{label}: options after {safe(head, 60)!r} ignored")
        if constraints:
            self.add_constraint(head, label)
        else:
            self.add(head, label)

    def self_path(self, arg: str, label: str) -> bool:
        """`arg` is the fork's own tree (``.``, ``.[tests]``): expand its extras."""
        m = _SELF_PATH.match(arg.strip())
        if m is None:
            return False
        extras = [e.strip() for e in (m["extras"] or "").split(",") if e.strip()]
        for extra in extras:
            self.expand_extra(extra, f"{label} -> [{safe(extra, 40)}]")
        if not extras:
            self.note(f"{label}: {safe(arg, 40)!r} is the fork itself (installed from its tree)")
        return True

    def include(
        self,
        arg: str,
        base: Path,
        label: str,
        stack: tuple[Path, ...],
        *,
        constraints: bool,
    ) -> None:
        arg = arg.strip().strip("\"'")
        kind = "constraints" if constraints else "requirements"
        if not arg:
            self.note(f"{label}: an include without a file name")
            return
        if "://" in arg or arg.startswith(("git+", "hg+", "svn+", "bzr+")):
            self.note(f"{label}: {kind} from {safe(arg, 60)!r} refused (only files in the tree)")
            return
        if "$" in arg or "{" in arg or "~" in arg:
            self.note(f"{label}: {kind} file {safe(arg, 60)!r} refused (substitutions)")
            return
        target = base / arg
        try:
            outside = not target.resolve().is_relative_to(self.tree)
        except (OSError, RuntimeError):  # a symbolic link loop
            self.note(f"{label}: {kind} file {safe(arg, 60)!r} cannot be resolved; refused")
            return
        if outside:
            self.note(
                f"{label}: {kind} file {safe(arg, 60)!r} lies outside the fork's tree; refused"
            )
            return
        self.requirement_file(target, label, stack, constraints=constraints)
