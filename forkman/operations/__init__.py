"""Layer 8, operations: each command's work on the project (fork, patch, sync, verify, ...).

Each takes a :class:`~forkman.model.project.Project` and an observer and
returns typed results; :mod:`forkman.api` is the public face of this layer."""
