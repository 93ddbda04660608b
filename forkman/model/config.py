"""`[tool.forkman]` in the consumer's pyproject.toml.

Reading uses :mod:`tomllib` (fast, strict); every edit goes through
:mod:`tomlkit` so the user's comments, ordering and formatting survive, and is
written atomically.

Subsystems keep their own tables (``[tool.forkman.sandbox]``,
``[tool.forkman.audit]``, ...) and read them from :attr:`Config.raw`.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

if TYPE_CHECKING:
    import tomlkit

from ..core.errors import BadInput, ConfigError
from ..core.fs import atomic_write_text
from ..core.paths import config_dirs, confine_config
from .lock import Layout as Layout

DEFAULT_INDEX_URL = "https://pypi.org/simple/"

_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@dataclass(frozen=True)
class NetworkLimits:
    """Bounds on every network read forkman makes (``[tool.forkman]`` network keys)."""

    timeout: float = 60.0
    """Total seconds one request may take, from connecting to its last byte
    (``network-timeout``); a redirect shares its request's deadline."""
    max_page_size: int = 64 * 1024**2
    """Largest index page, metadata or provenance document, in bytes (``max-page-size``)."""
    max_download_size: int = 512 * 1024**2
    """Largest release file, license file or advisory export, in bytes
    (``max-download-size``)."""


class DistPreference(enum.Enum):
    """Which kind of distribution a fork is made from."""

    SDIST = "sdist"
    WHEEL = "wheel"


@dataclass(frozen=True)
class ForkPolicy:
    """Per-fork settings from ``[tool.forkman.forks.NAME]``."""

    constraint: SpecifierSet | None = None
    """Versions sync may move to; None: any."""
    prereleases: bool = False
    """Whether pre-releases may be selected."""
    pinned: bool = False
    """Never sync this fork."""
    raw: Mapping[str, Any] = field(default_factory=dict)
    """The whole table, for subsystems' own keys (``test``, ``audit``, ...)."""


@dataclass(frozen=True)
class Config:
    """The parsed ``[tool.forkman]`` table."""

    vendor_dir: str = "vendor"
    """Where vendored trees live, relative to the project root."""
    patches_dir: str = "patches"
    """Where patch series live, relative to the project root."""
    index_urls: tuple[str, ...] = (DEFAULT_INDEX_URL,)
    """Simple-API index URLs, searched in order."""
    prefer: DistPreference = DistPreference.SDIST
    """sdist (default) or wheel; a wheel is used when no sdist exists."""
    prereleases: bool = False
    """Default for forks that do not say."""
    forks: Mapping[str, ForkPolicy] = field(default_factory=dict)
    """Per-fork policies by canonical name."""
    network: NetworkLimits = NetworkLimits()
    """The deadline and size caps of every network read."""
    raw: Mapping[str, Any] = field(default_factory=dict)
    """The whole table, for subsystems."""

    def policy(self, name: str) -> ForkPolicy:
        """The policy of fork `name` (defaults when it has no table)."""
        return self.forks.get(name) or ForkPolicy(prereleases=self.prereleases)

    def section(self, key: str) -> Mapping[str, Any]:
        """A subsystem's table, e.g. ``section("sandbox")``; empty when absent."""
        value = self.raw.get(key, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"[tool.forkman.{key}] must be a table")
        return value


def _bool(table: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key} must be true or false, not {value!r}")
    return value


def _str(table: Mapping[str, Any], key: str, default: str, where: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key} must be a non-empty string, not {value!r}")
    return value


def parse_size(text: str | int) -> int:
    """``512M``, ``1GiB``, ``4096`` -> bytes; :class:`BadInput` when it is not a size."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if isinstance(text, str):
        t = text.strip().lower().removesuffix("b").removesuffix("i")
        unit = t[-1:] if t[-1:] in _SIZE_UNITS else ""
        try:
            return int(float(t[: len(t) - len(unit)]) * _SIZE_UNITS[unit])
        except ValueError:
            pass
    raise BadInput(f"not a size: {text!r}", hint="use a number with K, M or G, e.g. 1G")


def _size(table: Mapping[str, Any], key: str, default: int, where: str) -> int:
    """A size in bytes: an integer, or a string such as ``"64M"``, ``"1GiB"``, ``"512K"``."""
    value = table.get(key, default)
    try:
        size: int | None = parse_size(value)
    except BadInput:
        size = None
    if size is None or size <= 0:
        raise ConfigError(
            f"{where}.{key} must be a positive size, not {value!r}",
            hint='give bytes or a number with K, M or G, e.g. "64M"',
        )
    return size


def _seconds(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{where}.{key} must be a positive number of seconds, not {value!r}")
    return float(value)


def parse_network(table: Mapping[str, Any], where: str = "[tool.forkman]") -> NetworkLimits:
    """The network limits of a ``[tool.forkman]`` table (defaults for absent keys)."""
    default = NetworkLimits()
    return NetworkLimits(
        timeout=_seconds(table, "network-timeout", default.timeout, where),
        max_page_size=_size(table, "max-page-size", default.max_page_size, where),
        max_download_size=_size(table, "max-download-size", default.max_download_size, where),
    )


def parse_config(table: Mapping[str, Any]) -> Config:
    """Validate a ``[tool.forkman]`` table."""
    where = "[tool.forkman]"
    index_urls: tuple[str, ...]
    raw_index = table.get("index-url", DEFAULT_INDEX_URL)
    if isinstance(raw_index, str):
        index_urls = (raw_index,)
    else:
        raise ConfigError(f"{where}.index-url must be a string")
    extra = table.get("extra-index-urls", [])
    if not isinstance(extra, list) or not all(isinstance(u, str) for u in extra):
        raise ConfigError(f"{where}.extra-index-urls must be a list of strings")
    index_urls += tuple(extra)
    try:
        prefer = DistPreference(table.get("prefer", "sdist"))
    except ValueError:
        raise ConfigError(
            f"{where}.prefer must be one of: " + ", ".join(p.value for p in DistPreference)
        ) from None
    prereleases = _bool(table, "prereleases", False, where)
    forks_raw = table.get("forks", {})
    if not isinstance(forks_raw, Mapping):
        raise ConfigError(f"{where}.forks must be a table")
    forks: dict[str, ForkPolicy] = {}
    for name, ftable in forks_raw.items():
        fwhere = f"[tool.forkman.forks.{name}]"
        if not isinstance(ftable, Mapping):
            raise ConfigError(f"{fwhere} must be a table")
        canonical = _canonical(name)
        if canonical != name:
            raise ConfigError(
                f"{fwhere}: fork names are written in their canonical form (PEP 503)",
                hint=f"rename the table to [tool.forkman.forks.{canonical}]",
            )
        constraint = None
        if "constraint" in ftable:
            try:
                constraint = SpecifierSet(str(ftable["constraint"]))
            except InvalidSpecifier:
                raise ConfigError(
                    f"{fwhere}.constraint is not a version specifier: {ftable['constraint']!r}"
                ) from None
        forks[name] = ForkPolicy(
            constraint=constraint,
            prereleases=_bool(ftable, "prereleases", prereleases, fwhere),
            pinned=_bool(ftable, "pinned", False, fwhere),
            raw=dict(ftable),
        )
    vendor_dir, patches_dir = config_dirs(table)
    return Config(
        vendor_dir=vendor_dir,
        patches_dir=patches_dir,
        index_urls=index_urls,
        prefer=prefer,
        prereleases=prereleases,
        forks=forks,
        network=parse_network(table, where),
        raw=dict(table),
    )


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def load_config(pyproject: Path) -> Config:
    """Read ``[tool.forkman]`` from `pyproject` (defaults when the table is absent)."""
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{pyproject} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject} is not valid TOML: {exc}") from None
    table = data.get("tool", {}).get("forkman", {})
    if not isinstance(table, Mapping):
        raise ConfigError("[tool.forkman] must be a table")
    config = parse_config(table)
    confine_config(pyproject.parent, table)
    return config


def config_from_text(text: str, where: str) -> Config:
    """Parse ``[tool.forkman]`` from the text of a pyproject.toml read from `where`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from None
    tool = data.get("tool", {})
    table = tool.get("forkman", {}) if isinstance(tool, Mapping) else {}
    if not isinstance(table, Mapping):
        raise ConfigError(f"[tool.forkman] of {where} must be a table")
    return parse_config(table)


def load_config_at(root: Path, revision: str) -> Config:
    """``[tool.forkman]`` of the pyproject.toml in `root` as committed at git `revision`.

    The file is read as git stores it (``git cat-file blob REV:./pyproject.toml``:
    no textconv or filter the checked-out tree could name; the project may be a
    folder of the repository) and parsed by the same code as the working tree's.
    A revision that has no pyproject.toml there has no forkman settings: the
    defaults. A revision git does not know is a :class:`ConfigError`.
    """
    from ..core.git import run

    commit = run(
        "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", cwd=root, check=False
    )
    if commit.returncode != 0:
        raise ConfigError(
            f"cannot read the configuration of {revision!r}: not a commit of this repository",
            hint="fetch it first (e.g. `git fetch origin main`) or name a commit",
        )
    where = f"pyproject.toml at {revision}"
    blob = f"{commit.stdout.decode().strip()}:./pyproject.toml"
    if run("cat-file", "-e", blob, cwd=root, check=False).returncode != 0:
        return parse_config({})
    shown = run("cat-file", "blob", blob, cwd=root, check=False)  # no filters
    if shown.returncode != 0:
        raise ConfigError(f"cannot read {where}: {shown.stderr.decode(errors='replace').strip()}")
    try:
        text = shown.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {where}: it is not UTF-8") from None
    return config_from_text(text, where)


def has_config(pyproject: Path) -> bool:
    """Whether `pyproject` has a ``[tool.forkman]`` table."""
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return "forkman" in data.get("tool", {})


def render_pyproject_edit(pyproject: Path, change: Callable[[tomlkit.TOMLDocument], None]) -> str:
    """The text of `pyproject` after `change`, validated, without writing it."""
    import tomlkit

    try:
        original = pyproject.read_text(encoding="utf-8")
        doc = tomlkit.parse(original)
    except FileNotFoundError:
        raise ConfigError(f"{pyproject} does not exist") from None
    except Exception as exc:  # tomlkit raises several parse error types
        raise ConfigError(f"{pyproject} is not valid TOML: {exc}") from None
    change(doc)
    text = tomlkit.dumps(doc)
    # Keep the file's own ending: tables tomlkit removes can leave blank lines behind.
    ending = original[len(original.rstrip("\n")) :]
    text = text.rstrip("\n") + (ending or "\n")
    parse_config(tomllib.loads(text).get("tool", {}).get("forkman", {}))
    return text


def edit_pyproject(pyproject: Path, change: Callable[[tomlkit.TOMLDocument], None]) -> None:
    """Apply `change` to the pyproject document and write it back atomically.

    The document is re-validated before it is written, so an edit never
    leaves an invalid configuration behind.
    """
    atomic_write_text(pyproject, render_pyproject_edit(pyproject, change))


def forkman_table(doc: tomlkit.TOMLDocument) -> Any:
    """``[tool.forkman]`` of `doc`, created (as a super-table chain) when absent."""
    import tomlkit

    tool = doc.get("tool")
    if tool is None:
        tool = tomlkit.table(is_super_table=True)
        doc["tool"] = tool
    table = tool.get("forkman")
    if table is None:
        table = tomlkit.table()
        tool["forkman"] = table
    require_table(table, "[tool.forkman]")
    return table


def fork_table(doc: tomlkit.TOMLDocument, name: str, *, create: bool = True) -> Any:
    """``[tool.forkman.forks.NAME]`` of `doc`."""
    import tomlkit

    table = forkman_table(doc)
    forks = table.get("forks")
    if forks is None:
        if not create:
            return None
        forks = tomlkit.table(is_super_table=True)
        table["forks"] = forks
    ftable = forks.get(name)
    if ftable is None:
        if not create:
            return None
        ftable = tomlkit.table()
        forks[name] = ftable
    require_table(ftable, f"[tool.forkman.forks.{name}]")
    return ftable


def require_table(value: object, where: str) -> None:
    """`value` is a TOML table (tomlkit gives a proxy when its sub-tables are not contiguous)."""
    from tomlkit.container import OutOfOrderTableProxy
    from tomlkit.items import InlineTable, Table

    if not isinstance(value, Table | OutOfOrderTableProxy | InlineTable):
        raise ConfigError(f"{where} must be a table")


def remove_fork_table(doc: tomlkit.TOMLDocument, name: str) -> None:
    """Delete ``[tool.forkman.forks.NAME]`` if present."""
    table = forkman_table(doc)
    forks = table.get("forks")
    if forks is not None and name in forks:
        del forks[name]
        if not forks:
            del table["forks"]


def init_table(doc: tomlkit.TOMLDocument, *, index_url: str | None = None) -> bool:
    """Add a commented default ``[tool.forkman]`` table; False when one exists already."""
    import tomlkit

    tool = doc.get("tool")
    if tool is not None and "forkman" in tool:
        return False
    table = forkman_table(doc)
    table.add(tomlkit.comment("Where vendored forks live, and their patch series."))
    table.add("vendor-dir", "vendor")
    table.add("patches-dir", "patches")
    table.add(tomlkit.comment("The package index (simple API) forks are fetched from."))
    table.add("index-url", index_url or DEFAULT_INDEX_URL)
    table.add(tomlkit.comment('Make forks from "sdist" (default) or "wheel".'))
    table.add("prefer", "sdist")
    return True
