"""``[tool.forkman.forks.NAME.test]`` and ``[tool.forkman.sandbox]``: a fork's test
settings and the sandbox policy its suite runs under."""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..model.config import Config, parse_size
from ..sandbox import SandboxPolicy, Tier
from .wheels import parse_requirements


@dataclass(frozen=True)
class TestConfig:
    """``[tool.forkman.forks.NAME.test]``."""

    command: tuple[str, ...] = ("pytest", "-q")
    """The test command, run in the scratch copy by the test environment's interpreter."""
    requirements: tuple[str, ...] = ()
    """Extra requirements installed into the test environment."""
    extras: tuple[str, ...] = ()
    """Extras of the fork whose dependencies are installed too."""
    include: tuple[str, ...] = ()
    """Files or folders of the project (relative paths) copied into the scratch tree."""
    discover: bool = True
    """Find the suite's test dependencies in the fork's tree (see :mod:`forkman.testing.deps`)."""
    timeout: float | None = None
    """Wall-clock seconds for this fork's suite (None: ``[tool.forkman.sandbox] timeout``)."""
    loopback: bool | None = None
    """A private loopback in the sandbox (None: ``[tool.forkman.sandbox] loopback``)."""

    __test__ = False


def _str_list(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key} must be a list of strings")
    return tuple(value)


def load_test_config(config: Config, name: str) -> TestConfig:
    """The test settings of fork `name`."""
    raw = config.policy(name).raw.get("test", {})
    where = f"[tool.forkman.forks.{name}.test]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table")
    command: Any = raw.get("command", "pytest -q")
    if isinstance(command, str):
        argv = tuple(shlex.split(command))
    elif isinstance(command, list) and all(isinstance(c, str) for c in command):
        argv = tuple(command)
    else:
        raise ConfigError(f"{where}.command must be a string or a list of strings")
    if not argv:
        raise ConfigError(f"{where}.command is empty")
    requirements = _str_list(raw, "requirements", where)
    parse_requirements(requirements, f"{where}.requirements")
    extras = _str_list(raw, "extras", where)
    for extra in extras:
        if not _EXTRA.fullmatch(extra):
            raise ConfigError(f"{where}.extras: {extra!r} is not an extra's name")
    include = _str_list(raw, "include", where)
    for inc in include:
        if not inc or os.path.isabs(inc) or ".." in Path(inc).parts:
            raise ConfigError(f"{where}.include: {inc!r} is not a relative path inside the project")
    discover = raw.get("discover", True)
    if not isinstance(discover, bool):
        raise ConfigError(f"{where}.discover must be true or false")
    timeout = raw.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise ConfigError(
            f"{where}.timeout must be a positive number of seconds", hint="e.g. timeout = 600"
        )
    loopback = raw.get("loopback")
    if loopback is not None and not isinstance(loopback, bool):
        raise ConfigError(f"{where}.loopback must be true or false")
    return TestConfig(
        command=argv,
        requirements=requirements,
        extras=extras,
        include=include,
        discover=discover,
        timeout=float(timeout) if timeout is not None else None,
        loopback=loopback,
    )


_EXTRA = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


def sandbox_policy(config: Config | None, **overrides: Any) -> SandboxPolicy:
    """The policy from ``[tool.forkman.sandbox]``, with overrides."""
    table = config.section("sandbox") if config is not None else {}
    kw: dict[str, Any] = {}
    try:
        if "min-tier" in table:
            kw["min_tier"] = Tier.parse(str(table["min-tier"]))
        for key, attr in (
            ("timeout", "timeout"),
            ("cpu-seconds", "cpu_seconds"),
            ("max-processes", "max_processes"),
            ("max-open-files", "max_open_files"),
        ):
            if key in table:
                kw[attr] = type(getattr(SandboxPolicy(), attr))(table[key])
        for key, attr in (
            ("memory", "memory"),
            ("max-file-size", "max_file_size"),
            ("tmpfs-size", "tmpfs_size"),
        ):
            if key in table:
                kw[attr] = parse_size(table[key])
        if "loopback" in table:
            if not isinstance(table["loopback"], bool):
                raise ValueError("loopback must be true or false")
            kw["loopback"] = table["loopback"]
        if "env-allow" in table:
            kw["env_allow"] = SandboxPolicy().env_allow + _str_list(
                table, "env-allow", "[tool.forkman.sandbox]"
            )
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[tool.forkman.sandbox]: {exc}") from None
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return SandboxPolicy(**kw)


def timeout_setting(config: Config, name: str, cfg: TestConfig) -> str:
    """The setting that decided this fork's time limit, as the user would edit it."""
    if cfg.timeout is not None:
        return f"[tool.forkman.forks.{name}.test] timeout"
    if "timeout" in config.section("sandbox"):
        return (
            f"[tool.forkman.sandbox] timeout (or [tool.forkman.forks.{name}.test] timeout "
            "for this fork alone)"
        )
    return (
        f"the default for a suite ({DEFAULT_SUITE_TIMEOUT:g} s); set "
        f"[tool.forkman.forks.{name}.test] timeout (seconds)"
    )


DEFAULT_SUITE_TIMEOUT = 900.0
"""Wall-clock seconds a fork's build and suite get when neither ``[tool.forkman.forks.
NAME.test] timeout`` nor ``[tool.forkman.sandbox] timeout`` is set: real suites take
minutes (packaging's 26,000 tests, urllib3's servers), far over a sandboxed command's 60."""


def fork_policy(
    policy: SandboxPolicy, cfg: TestConfig, config: Config | None = None
) -> SandboxPolicy:
    """`policy` with the fork's own ``timeout`` and ``loopback``; a longer timeout raises
    the per-process CPU limit with it (a suite is one busy process). With `config`
    (the project's) and no timeout set anywhere, the suite gets DEFAULT_SUITE_TIMEOUT."""
    timeout = cfg.timeout
    if timeout is None and config is not None and "timeout" not in config.section("sandbox"):
        timeout = DEFAULT_SUITE_TIMEOUT
    if timeout is not None:
        policy = replace(
            policy, timeout=timeout, cpu_seconds=max(policy.cpu_seconds, math.ceil(timeout))
        )
    if cfg.loopback is not None:
        policy = replace(policy, loopback=cfg.loopback)
    return policy
