"""Layer 5, layouts: how a fork sits in the consumer (the namespace and project layouts).

See docs/wiring.md. The core calls :func:`transform_tree` (namespace layout)
and :func:`wire` / :func:`unwire` (project layout).
"""

from __future__ import annotations
