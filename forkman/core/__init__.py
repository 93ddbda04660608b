"""Layer 0, the foundation: errors with hints, observers, text, files, paths, the git runner.

Imports nothing else from forkman. The layers, bottom to top, are listed in
``docs/architecture.md`` and enforced by ``tests/test_architecture.py``."""
