from __future__ import annotations

from pathlib import Path

import pytest
import tomlkit

from forkman.core.errors import ConfigError
from forkman.model.config import (
    Config,
    DistPreference,
    NetworkLimits,
    edit_pyproject,
    fork_table,
    init_table,
    load_config,
    parse_config,
    remove_fork_table,
)

COMMENTED = """\
# The consumer's own project file, full of comments.
[project]
name = "consumer"   # trailing comment
version = "1.0"
dependencies = [
    "attrs",  # we fork this one
    # "requests",
]

# tools follow
[tool.black]
line-length = 88    # keep

[tool.other]
x = { a = 1, b = [1, 2] }
"""


def test_defaults() -> None:
    config = parse_config({})
    assert config == Config()
    assert config.vendor_dir == "vendor"
    assert config.patches_dir == "patches"
    assert config.index_urls == ("https://pypi.org/simple/",)
    assert config.prefer is DistPreference.SDIST


def test_full_table() -> None:
    config = parse_config(
        {
            "vendor-dir": "third_party",
            "patches-dir": "fork-patches",
            "index-url": "http://127.0.0.1:1/simple/",
            "extra-index-urls": ["http://127.0.0.1:2/simple/"],
            "prefer": "wheel",
            "forks": {
                "attrs": {"constraint": ">=23,<24", "pinned": True, "test": {"command": "x"}}
            },
            "sandbox": {"min-tier": "namespaces"},
        }
    )
    assert config.index_urls == ("http://127.0.0.1:1/simple/", "http://127.0.0.1:2/simple/")
    assert config.prefer is DistPreference.WHEEL
    policy = config.policy("attrs")
    assert policy.pinned and str(policy.constraint) == "<24,>=23"
    assert policy.raw["test"] == {"command": "x"}
    assert config.section("sandbox") == {"min-tier": "namespaces"}
    assert config.policy("other").pinned is False


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"prefer": "egg"}, "prefer must be one of"),
        ({"vendor-dir": ""}, "vendor-dir"),
        ({"index-url": 3}, "index-url"),
        ({"forks": {"a": {"constraint": "not a spec"}}}, "not a version specifier"),
        ({"forks": {"a": {"pinned": "yes"}}}, "pinned must be true or false"),
        ({"sandbox": 3}, None),
    ],
)
def test_invalid(table: dict[str, object], message: str | None) -> None:
    if message is None:
        with pytest.raises(ConfigError):
            parse_config(table).section("sandbox")
        return
    with pytest.raises(ConfigError, match=message):
        parse_config(table)


def test_init_preserves_comments_and_formatting(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(COMMENTED)

    def init(doc: tomlkit.TOMLDocument, index_url: str | None = None) -> None:
        init_table(doc, index_url=index_url)

    edit_pyproject(path, lambda doc: init(doc, index_url="http://127.0.0.1:9/simple/"))
    text = path.read_text()
    assert text.startswith(COMMENTED)  # every byte the user wrote is still there
    assert "[tool.forkman]" in text
    assert load_config(path).index_urls == ("http://127.0.0.1:9/simple/",)

    def add(doc: object) -> None:
        table = fork_table(doc, "attrs")  # type: ignore[arg-type]
        assert table is not None
        table["constraint"] = ">=23"

    edit_pyproject(path, add)
    assert load_config(path).policy("attrs").constraint is not None
    edit_pyproject(path, lambda doc: remove_fork_table(doc, "attrs"))
    after = path.read_text()
    assert after.startswith(COMMENTED)
    assert "attrs]" not in after
    # init is idempotent
    edit_pyproject(path, init)
    assert path.read_text() == after


def test_invalid_edit_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(COMMENTED)

    def bad(doc: object) -> None:
        init_table(doc)  # type: ignore[arg-type]
        doc["tool"]["forkman"]["prefer"] = "egg"  # type: ignore[index]

    with pytest.raises(ConfigError):
        edit_pyproject(path, bad)
    assert path.read_text() == COMMENTED
    assert list(tmp_path.iterdir()) == [path]


def test_malformed_pyproject(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.forkman\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_edits_tables_that_are_not_contiguous(tmp_path: Path) -> None:
    """[tool.forkman] with a sub-table further down the file (tomlkit proxies it)."""
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[tool.forkman]\nindex-url = "http://127.0.0.1:1/simple/"\n\n'
        '[tool.uv.sources]\nx = { path = "vendor/x" }\n\n'
        '[tool.forkman.audit]\nblock-on = "critical"\n'
    )

    def add(doc: object) -> None:
        table = fork_table(doc, "attrs")  # type: ignore[arg-type]
        assert table is not None
        table["constraint"] = ">=23"

    edit_pyproject(path, add)
    config = load_config(path)
    assert str(config.policy("attrs").constraint) == ">=23"
    assert config.section("audit") == {"block-on": "critical"}
    edit_pyproject(path, lambda doc: remove_fork_table(doc, "attrs"))
    assert "attrs" not in load_config(path).forks


def test_network_limits() -> None:
    assert parse_config({}).network == NetworkLimits()
    limits = parse_config(
        {"network-timeout": 2.5, "max-page-size": "1MiB", "max-download-size": 4096}
    ).network
    assert limits == NetworkLimits(timeout=2.5, max_page_size=1 << 20, max_download_size=4096)
    assert parse_config({"max-download-size": "2G"}).network.max_download_size == 2 << 30
    for table in (
        {"network-timeout": 0},
        {"network-timeout": "60"},
        {"network-timeout": True},
        {"max-page-size": "lots"},
        {"max-download-size": -1},
    ):
        key = next(iter(table))
        with pytest.raises(ConfigError, match=key):
            parse_config(table)


def test_a_suite_gets_its_own_default_time_limit() -> None:
    from forkman.testing.run import (
        DEFAULT_SUITE_TIMEOUT,
        TestConfig,
        fork_policy,
        sandbox_policy,
    )

    # nothing set: a real suite (packaging's 26,000 tests) needs more than a command's 60 s
    bare = parse_config({})
    policy = fork_policy(sandbox_policy(bare), TestConfig(), bare)
    assert policy.timeout == DEFAULT_SUITE_TIMEOUT
    assert policy.cpu_seconds >= DEFAULT_SUITE_TIMEOUT
    # the sandbox's timeout, once set, is every suite's; a fork's own overrides it
    table = parse_config({"sandbox": {"timeout": 30}})
    assert fork_policy(sandbox_policy(table), TestConfig(), table).timeout == 30
    own = fork_policy(sandbox_policy(table), TestConfig(timeout=5.0), table)
    assert own.timeout == 5
