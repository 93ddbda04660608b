"""Where `forkman ci` takes its security policy from: the base, never the pull request.

A pull request can edit ``pyproject.toml`` and ``forkman.lock``. Any setting
there that decides what runs, where it is downloaded from, what is judged,
what is ignored or which secrets cross into the sandbox would otherwise be
chosen by the code under review. With a base revision (``--base REV`` or the
target branch CI announces), `forkman ci`:

- runs every stage with those settings as committed at the base (the tip of
  REV: the newest policy the project trusts), and the pull request's other
  settings;
- reports each setting the pull request changed against the merge base as a
  ``policy`` finding (the run fails: a change to review), with old and new
  value, without applying it;
- reports trust the pull request adds or drops in the lock: a fork's recorded
  publisher that changed or vanished, a patch that newly declares it fixes a
  vulnerability (which hides the advisory from the audit).

Without a base the working tree's settings apply, and the report says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import git
from ..core.errors import ForkmanError
from ..model.config import Config, load_config_at, parse_config
from ..model.lock import LOCK_NAME, Lock, parse_lock

PULL_REQUEST_KEYS: frozenset[str] = frozenset(
    {"prefer", "prereleases", "wire", "licenses", "watch", "ray", "forks"}
)
"""Keys of ``[tool.forkman]`` a CI run takes from the checked-out tree: they decide
nothing there (``forks`` is split by :data:`PULL_REQUEST_FORK_KEYS`). Every other key,
including any a later release adds, is a security setting taken from the base:
``vendor-dir``, ``patches-dir``, ``index-url``, ``extra-index-urls`` and the
``sandbox``, ``audit`` and ``vendoring`` tables today."""

PULL_REQUEST_FORK_KEYS: frozenset[str] = frozenset(
    {"constraint", "prereleases", "pinned", "layout", "license", "requirement"}
)
"""Keys of ``[tool.forkman.forks.NAME]`` taken from the checked-out tree; every other
(the ``test`` and ``audit`` tables today) is taken from the base."""

_UNSET = object()


@dataclass(frozen=True)
class PolicyChange:
    """A security setting the pull request changed against the merge base."""

    key: str
    """The dotted key below ``[tool.forkman]``, e.g. ``sandbox.env-allow``."""
    old: Any
    """Its value at the merge base (``None`` when unset)."""
    new: Any
    """Its value in the working tree (``None`` when unset)."""
    old_set: bool = True
    """Whether the merge base sets it."""
    new_set: bool = True
    """Whether the working tree sets it."""

    @property
    def fork(self) -> str | None:
        """The fork the key belongs to (``forks.NAME....``), if any."""
        parts = self.key.split(".")
        return parts[1] if parts[0] == "forks" and len(parts) > 2 else None

    def describe(self) -> str:
        """``KEY: OLD -> NEW``."""
        old = show_value(self.old) if self.old_set else "(unset)"
        new = show_value(self.new) if self.new_set else "(unset)"
        return f"{self.key}: {old} -> {new}"


@dataclass(frozen=True)
class LockTrustChange:
    """Trust the pull request's lock adds or drops against the merge base."""

    fork: str
    """The fork concerned."""
    rule: str
    """``publisher-changed``, ``provenance-dropped`` or ``fix-claimed``."""
    message: str
    """One line for humans."""


@dataclass(frozen=True)
class CiPolicy:
    """The settings a CI run uses, where they came from, and what the pull request changed."""

    config: Config
    """The effective configuration every stage reads."""
    source: str
    """``base REV (COMMIT)`` or ``working tree``."""
    changes: tuple[PolicyChange, ...] = ()
    """Security settings the pull request changed (not applied)."""
    lock_changes: tuple[LockTrustChange, ...] = ()
    """Trust the pull request's lock adds or drops."""
    error: str | None = None
    """Why the base's policy could not be read (the tests do not run)."""
    hint: str = ""
    """What to do about `error`."""

    @property
    def from_base(self) -> bool:
        """Whether the security settings come from a base revision."""
        return self.source != "working tree" and self.error is None


def show_value(value: Any, limit: int = 120) -> str:
    """A setting's value on one line (JSON, cut at `limit` characters)."""
    text = json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    """Dotted key -> value of every non-table value under `prefix` (an empty table has none)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_leaves(sub, f"{prefix}.{key}"))
        return out
    return {prefix: value}


def _forks_table(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    forks = raw.get("forks", {})
    return forks if isinstance(forks, Mapping) else {}


def security_settings(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every security-relevant setting of a ``[tool.forkman]`` table, by dotted key."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in PULL_REQUEST_KEYS:
            out.update(_leaves(value, key))
    for name, table in _forks_table(raw).items():
        if not isinstance(table, Mapping):
            continue
        for key, value in table.items():
            if key not in PULL_REQUEST_FORK_KEYS:
                out.update(_leaves(value, f"forks.{name}.{key}"))
    return out


def policy_changes(base: Mapping[str, Any], head: Mapping[str, Any]) -> list[PolicyChange]:
    """The security settings that differ between two ``[tool.forkman]`` tables."""
    old, new = security_settings(base), security_settings(head)
    changes = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key, _UNSET), new.get(key, _UNSET)
        if before is _UNSET or after is _UNSET or before != after:
            changes.append(
                PolicyChange(
                    key,
                    None if before is _UNSET else before,
                    None if after is _UNSET else after,
                    old_set=before is not _UNSET,
                    new_set=after is not _UNSET,
                )
            )
    return changes


def effective_table(base: Mapping[str, Any], head: Mapping[str, Any]) -> dict[str, Any]:
    """`head` with every security setting replaced by `base`'s (removed where `base` has none).

    A fork `base` does not know gets no ``test`` or ``audit`` table: it runs
    with the defaults under the base's project-wide policy.
    """
    raw = {k: v for k, v in head.items() if k in PULL_REQUEST_KEYS}
    raw.update({k: v for k, v in base.items() if k not in PULL_REQUEST_KEYS})
    head_forks = head.get("forks", {})
    if not isinstance(head_forks, Mapping):
        return raw  # parse_config refuses it with a message
    base_forks = _forks_table(base)
    forks: dict[str, Any] = {}
    for name in [*head_forks, *(n for n in base_forks if n not in head_forks)]:
        table = head_forks.get(name, {})
        if not isinstance(table, Mapping):
            forks[name] = table  # parse_config refuses it
            continue
        merged = {k: v for k, v in table.items() if k in PULL_REQUEST_FORK_KEYS}
        base_table = base_forks.get(name, {})
        if isinstance(base_table, Mapping):
            merged.update({k: v for k, v in base_table.items() if k not in PULL_REQUEST_FORK_KEYS})
        if merged or name in head_forks:
            forks[name] = merged
    if forks or "forks" in head:
        raw["forks"] = forks
    return raw


# -- the lock's trust ---------------------------------------------------------------------


def _lock_at(root: Path, revision: str) -> Lock:
    """The lock as committed at `revision` (empty when it had none or it does not parse)."""
    shown = git.run("cat-file", "blob", f"{revision}:./{LOCK_NAME}", cwd=root, check=False)
    if shown.returncode != 0:
        return Lock()
    try:
        return parse_lock(shown.stdout.decode("utf-8", "surrogateescape"))
    except ForkmanError:
        return Lock()


def lock_trust_changes(before: Lock, after: Lock) -> list[LockTrustChange]:
    """Publishers changed or dropped, and new claims that a patch fixes a vulnerability."""
    from ..audit.provenance import Publisher

    out: list[LockTrustChange] = []
    for entry in after:
        old = before.get(entry.name)
        old_claims = {fix.upper() for p in old.patches for fix in p.fixes} if old else set()
        for patch in entry.patches:
            new = sorted({fix for fix in patch.fixes if fix.upper() not in old_claims})
            if new:
                out.append(
                    LockTrustChange(
                        entry.name,
                        "fix-claimed",
                        f"{entry.name}: {patch.file} declares it fixes {', '.join(new)}, "
                        "which the audit then no longer reports",
                    )
                )
        if old is None:
            continue
        was, now = old.sections.get("provenance"), entry.sections.get("provenance")
        if isinstance(was, Mapping) and was:
            try:
                previous = Publisher.from_lock(was)
            except ForkmanError:
                previous = None
            if not isinstance(now, Mapping) or not now:
                if previous is not None:
                    out.append(
                        LockTrustChange(
                            entry.name,
                            "provenance-dropped",
                            f"{entry.name}: the lock no longer records a publisher "
                            f"(the base recorded {previous.describe()})",
                        )
                    )
            elif previous is not None:
                try:
                    current = Publisher.from_lock(now)
                except ForkmanError as exc:
                    out.append(
                        LockTrustChange(
                            entry.name,
                            "publisher-changed",
                            f"{entry.name}: the recorded publisher cannot be read: {exc.message}",
                        )
                    )
                else:
                    if not previous.same_identity(current):
                        out.append(
                            LockTrustChange(
                                entry.name,
                                "publisher-changed",
                                f"{entry.name}: the recorded publisher changed: was "
                                f"{previous.describe()}, now {current.describe()}",
                            )
                        )
    return out


# -- the policy of a run ---------------------------------------------------------------------


def working_tree_policy(config: Config) -> CiPolicy:
    """The policy of a run without a base: the working tree's own settings."""
    return CiPolicy(config, "working tree")


def base_policy(root: Path, config: Config, lock: Lock, base: str, merge_base: str) -> CiPolicy:
    """The policy of a run against `base`: its security settings over `config`'s others.

    The settings applied are those of `base` itself (its newest trusted
    policy); the changes reported are the working tree's against `merge_base`
    (only what the pull request itself changed).
    """
    tip = load_config_at(root, base)
    forked_from = tip if _same_commit(root, base, merge_base) else load_config_at(root, merge_base)
    effective = parse_config(effective_table(tip.raw, config.raw))
    changes = policy_changes(forked_from.raw, config.raw)
    forks_now = {name for name in _forks_table(config.raw)} | set(lock.forks)
    # a fork removed entirely (lock entry and settings) changes nobody's policy
    changes = [c for c in changes if c.fork is None or c.fork in forks_now]
    lock_changes = lock_trust_changes(_lock_at(root, merge_base), lock)
    short = _commit(root, base)[:12]
    return CiPolicy(
        effective,
        f"base {base} ({short})",
        tuple(changes),
        tuple(lock_changes),
    )


def _commit(root: Path, revision: str) -> str:
    proc = git.run(
        "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", cwd=root, check=False
    )
    return proc.stdout.decode("utf-8", "replace").strip()


def _same_commit(root: Path, a: str, b: str) -> bool:
    return _commit(root, a) == _commit(root, b) != ""


def base_commit(root: Path, base: str) -> str | None:
    """The revision `base` names here (tried as given and as ``origin/<base>``)."""
    for candidate in (base, f"origin/{base}"):
        if _commit(root, candidate):
            return candidate
    return None
