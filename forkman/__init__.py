"""forkman: own your dependencies as forks.

The public library surface; the CLI (:mod:`forkman.cli`) is a thin layer over it.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
