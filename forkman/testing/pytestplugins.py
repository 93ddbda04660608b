"""The pytest plugins a suite's configuration implies: ``--cov`` needs pytest-cov,
``-n`` pytest-xdist, ``asyncio_mode`` pytest-asyncio, ``-p MODULE`` its distribution."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .treeread import safe

OPTION_PLUGINS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^--(?:no-)?cov(?:-[\w-]+)?(?:=.*)?$"), "pytest-cov"),
    (
        re.compile(r"^(?:-n.*|--numprocesses(?:=.*)?|--maxprocesses(?:=.*)?|--dist(?:=.*)?)$"),
        "pytest-xdist",
    ),
    (re.compile(r"^--timeout(?:[-_][\w-]+)?(?:=.*)?$"), "pytest-timeout"),
    (re.compile(r"^--benchmark-"), "pytest-benchmark"),
    (re.compile(r"^--(?:reruns|only-rerun)"), "pytest-rerunfailures"),
    (re.compile(r"^--asyncio-mode"), "pytest-asyncio"),
    (re.compile(r"^--randomly-"), "pytest-randomly"),
    (re.compile(r"^--hypothesis-"), "hypothesis"),
    (re.compile(r"^--forked$"), "pytest-forked"),
    (re.compile(r"^--(?:disable-socket|allow-hosts|allow-unix-socket)"), "pytest-socket"),
    (re.compile(r"^--(?:ds|dc)="), "pytest-django"),
    (re.compile(r"^--mypy$"), "pytest-mypy"),
    (re.compile(r"^--mpl"), "pytest-mpl"),
)
"""pytest command-line options -> the distribution that provides them."""

PLUGIN_MODULES = {
    "xdist": "pytest-xdist",
    "xdist.plugin": "pytest-xdist",
    "pytest_cov": "pytest-cov",
    "pytest_cov.plugin": "pytest-cov",
    "timeout": "pytest-timeout",
    "pytest_timeout": "pytest-timeout",
    "asyncio": "pytest-asyncio",
    "pytest_asyncio": "pytest-asyncio",
    "anyio": "anyio",
    "trio": "pytest-trio",
    "pytest_trio": "pytest-trio",
    "randomly": "pytest-randomly",
    "pytest_randomly": "pytest-randomly",
    "benchmark": "pytest-benchmark",
    "pytest_benchmark": "pytest-benchmark",
    "rerunfailures": "pytest-rerunfailures",
    "pytest_rerunfailures": "pytest-rerunfailures",
    "pytest_mock": "pytest-mock",
    "pytest_socket": "pytest-socket",
    "hypothesis": "hypothesis",
}
"""``-p MODULE`` -> the distribution that provides the plugin module."""

BUILTIN_PLUGINS = frozenset(
    (
        "pytester",
        "doctest",
        "cacheprovider",
        "faulthandler",
        "junitxml",
        "logging",
        "monkeypatch",
        "python",
        "terminal",
        "warnings",
        "capture",
        "debugging",
        "skipping",
        "tmpdir",
        "unittest",
        "legacypath",
        "stepwise",
        "setuponly",
        "setupplan",
        "pastebin",
        "nose",
    )
)

INI_PLUGINS = {
    "asyncio_mode": "pytest-asyncio",
    "asyncio_default_fixture_loop_scope": "pytest-asyncio",
    "asyncio_default_test_loop_scope": "pytest-asyncio",
    "timeout": "pytest-timeout",
    "timeout_method": "pytest-timeout",
    "timeout_func_only": "pytest-timeout",
    "env": "pytest-env",
    "mock_use_standalone_module": "pytest-mock",
    "django_settings_module": "pytest-django",
    "trio_mode": "pytest-trio",
    "qt_api": "pytest-qt",
}
"""pytest ini keys -> the distribution that reads them."""


def plugin_options(
    tokens: Sequence[str],
    where: str,
    add: Callable[[str, str], None],
    note: Callable[[str], None],
) -> None:
    """Add (``add(distribution, source)``) the plugins that pytest arguments `tokens` need."""
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "-p" or (tok.startswith("-p") and not tok.startswith("--")):
            module = tokens[i + 1] if tok == "-p" and i + 1 < len(tokens) else tok[2:]
            i += 2 if tok == "-p" else 1
            module = module.strip()
            if module.startswith("no:") or module in BUILTIN_PLUGINS or not module:
                continue
            dist = PLUGIN_MODULES.get(module)
            if dist is None:
                note(f"{where}: plugin -p {safe(module, 40)} is not known")
            else:
                add(dist, f"{where} -p {module} -> {dist}")
            continue
        i += 1
        for pattern, dist in OPTION_PLUGINS:
            if pattern.match(tok):
                add(dist, f"{where} {safe(tok, 40)} -> {dist}")
                break
