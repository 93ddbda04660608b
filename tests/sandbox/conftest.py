"""Fixtures for the sandbox tests: one warm fork server per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from forkman.sandbox import ForkServer, Tier, detect


@pytest.fixture(scope="session")
def server() -> Iterator[ForkServer]:
    """The real fork server; the test is skipped only when the host lacks user namespaces."""
    support = detect()
    if support.best_tier is not Tier.NAMESPACES:
        pytest.skip(f"this host offers no user namespaces: {support.namespaces.detail}")
    srv = ForkServer().start()
    try:
        yield srv
    finally:
        srv.stop()
