"""Files forkman renders into a consumer's repository: CI jobs, pre-commit config, FORK.md cards.

The templates live in the repository's top-level ``vendor-templates/``
folder, which is installed as the ``forkman.templates`` package (see
``setup.py``) and read with :mod:`importlib.resources`. A template's
placeholders are written ``[[name]]``; rendering fails on an unknown one, so
a template cannot ship half-filled.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, assert_never

from ..core.errors import BadInput, NotFound
from ..core.fs import atomic_write_text
from ..core.version import __version__
from ..model.lock import GitSource, IndexSource, LockEntry
from ..model.project import Project

REPOSITORY_URL = "https://github.com/forkman/forkman"
"""Where forkman's own repository (and its pre-commit hooks) lives."""
PYTHON_VERSION = "3.12"
"""The Python the rendered CI jobs run forkman with."""
CARD_NAME = "FORK.md"
"""The file name of a fork's provenance card (kept beside its patch series)."""

_PLACEHOLDER = re.compile(r"\[\[([a-z_]+)\]\]")


class CiProvider(enum.Enum):
    """The CI systems `forkman init --ci` renders a pipeline for."""

    GITHUB = "github"
    GITLAB = "gitlab"


class WriteAction(enum.Enum):
    """What rendering did to a file."""

    CREATED = "created"
    OVERWRITTEN = "overwritten"
    KEPT = "kept"
    """The file existed and was left alone (pass force to overwrite)."""


@dataclass(frozen=True)
class RenderedFile:
    """One file rendered into the project."""

    path: Path
    """Where it was written."""
    action: WriteAction
    """What happened to it."""


def _root() -> Traversable:
    try:
        return resources.files("forkman.templates")
    except ModuleNotFoundError:
        # A source checkout run without installing: the folder beside the package.
        checkout = Path(__file__).resolve().parents[2] / "vendor-templates"
        if checkout.is_dir():
            return checkout
        raise NotFound(
            "forkman's templates are not installed",
            hint="reinstall forkman (`pip install --force-reinstall forkman`)",
        ) from None


def template_names() -> list[str]:
    """Every template that ships with forkman."""
    return sorted(
        t.name for t in _root().iterdir() if t.is_file() and not t.name.endswith((".py", ".pyc"))
    )


def template_text(name: str) -> str:
    """The raw text of template `name`."""
    item = _root().joinpath(name)
    if not item.is_file():
        raise NotFound(f"no template named {name!r}", hint=f"templates: {template_names()}")
    return item.read_text(encoding="utf-8")


def render(name: str, values: Mapping[str, str]) -> str:
    """Template `name` with every ``[[key]]`` replaced by ``values[key]``."""
    text = template_text(name)
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise BadInput(f"template {name} needs values for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def default_values() -> dict[str, str]:
    """The values every CI template uses."""
    return {
        "forkman_version": __version__,
        "forkman_requirement": f"forkman=={__version__}",
        "forkman_repo_url": REPOSITORY_URL,
        "python_version": PYTHON_VERSION,
        "gitlab_job_path": ".gitlab/forkman.yml",
    }


def ci_files(provider: CiProvider) -> list[tuple[str, str]]:
    """(path in the consumer's repository, template) pairs for `provider`."""
    match provider:
        case CiProvider.GITHUB:
            files = [(".github/workflows/forkman.yml", "github-workflow.yml")]
        case CiProvider.GITLAB:
            files = [
                (".gitlab/forkman.yml", "gitlab-ci.yml"),
                (".gitlab-ci.yml", "gitlab-ci-root.yml"),
            ]
        case _:
            assert_never(provider)
    return [*files, (".pre-commit-config.yaml", "pre-commit-config.yaml")]


def _write(path: Path, text: str, force: bool) -> RenderedFile:
    if path.exists() or path.is_symlink():
        if not force:
            return RenderedFile(path, WriteAction.KEPT)
        if path.is_dir():
            raise BadInput(f"{path} is a directory")
        action = WriteAction.OVERWRITTEN
    else:
        action = WriteAction.CREATED
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return RenderedFile(path, action)


def render_ci(project: Project, provider: CiProvider, *, force: bool = False) -> list[RenderedFile]:
    """Render `provider`'s pipeline and the pre-commit config into `project`.

    Existing files are kept unless `force`; every write is atomic.
    """
    values = default_values()
    rendered = [(project.root / rel, render(tpl, values)) for rel, tpl in ci_files(provider)]
    return [_write(path, text, force) for path, text in rendered]


# -- FORK.md provenance cards ---------------------------------------------------------

_DEP3_FIELDS = ("Description", "Subject")


def patch_description(patch: Path) -> str:
    """The DEP-3 ``Description:`` (or ``Subject:``) of a patch file; empty when absent."""
    try:
        lines = patch.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    out: list[str] = []
    collecting = False
    for line in lines:
        if line.startswith(("---", "diff --git", "Index: ", "+++ ")):
            break
        if collecting:
            if line.startswith((" ", "\t")):
                text = line.strip()
                out.append("" if text == "." else text)
                continue
            break
        key, sep, value = line.partition(":")
        if sep and key.strip() in _DEP3_FIELDS:
            out.append(value.strip())
            collecting = True
    return "\n".join(out).strip()


def _scalar(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_scalar(v) for v in value) or "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_scalar(v)}" for k, v in sorted(value.items()))
    return str(value)


def _section(entry: LockEntry, key: str, empty: str) -> str:
    table = entry.sections.get(key)
    if not isinstance(table, Mapping) or not table:
        return empty
    return "\n".join(f"- **{k}**: {_scalar(v)}" for k, v in sorted(table.items()))


def _source(entry: LockEntry) -> str:
    source = entry.source
    if isinstance(source, IndexSource):
        rows = [
            ("type", "package index"),
            ("requirement", f"`{source.requirement}`"),
            ("index", source.index_url),
            ("file", f"[{source.filename}]({source.url})"),
            ("sha256", f"`{source.sha256}`"),
        ]
    elif isinstance(source, GitSource):
        rows = [
            ("type", "git"),
            ("repository", source.url),
            ("ref", f"`{source.ref}`"),
            ("commit", f"`{source.commit}`"),
        ]
        if source.subdirectory:
            rows.append(("subdirectory", f"`{source.subdirectory}`"))
    else:
        assert_never(source)
    return "\n".join(f"- **{k}**: {v}" for k, v in rows)


def _provenance(entry: LockEntry) -> str:
    table = entry.sections.get("provenance")
    if not isinstance(table, Mapping) or not table:
        return (
            "No publisher attestation recorded "
            "(`forkman provenance NAME` verifies PEP 740 provenance)."
        )
    lines = []
    publisher = table.get("publisher")
    if publisher is not None:
        lines.append(f"- **publisher**: {_scalar(publisher)}")
    lines += [f"- **{k}**: {_scalar(v)}" for k, v in sorted(table.items()) if k != "publisher"]
    return "\n".join(lines)


def _patches(project: Project, entry: LockEntry) -> str:
    if not entry.patches:
        return "None: the vendored tree is upstream as released."
    blocks = []
    for i, patch in enumerate(entry.patches, 1):
        why = patch_description(project.root / patch.file) or "(no DEP-3 Description)"
        first, _, rest = why.partition("\n")
        block = [f"{i}. **{first}** (`{patch.file}`, sha256 `{patch.sha256[:16]}…`)"]
        if patch.fixes:
            block.append(f"   fixes: {', '.join(patch.fixes)}")
        block += [f"   {line}" if line else "" for line in rest.strip().splitlines()]
        blocks.append("\n".join(block).rstrip())
    return "\n".join(blocks)


def render_card(project: Project, entry: LockEntry) -> str:
    """The FORK.md provenance card of fork `entry`."""
    return render(
        CARD_NAME,
        {
            "name": entry.name,
            "version": entry.version,
            "path": entry.path,
            "source": _source(entry),
            "upstream_tree": entry.upstream_tree,
            "vendored_tree": entry.vendored_tree,
            "fetched": entry.fetched,
            "provenance": _provenance(entry),
            "patches": _patches(project, entry),
            "audit": _section(entry, "audit", "Not audited yet: run `forkman audit`."),
            "test": _section(entry, "test", f"Not tested yet: run `forkman test {entry.name}`."),
        },
    )


def card_path(project: Project, name: str) -> Path:
    """Where fork `name`'s card is written: beside its patch series, outside the vendored tree."""
    return project.patches_path(name) / CARD_NAME


def write_cards(project: Project, names: Sequence[str] = ()) -> list[RenderedFile]:
    """Render the cards of `names` (default: every fork); cards are derived, so always rewritten."""
    lock = project.load_lock()
    entries = [lock.require(n) for n in names] if names else list(lock)
    return [
        _write(card_path(project, entry.name), render_card(project, entry), force=True)
        for entry in entries
    ]
