"""Agents maintain forks through two MCP tools: ``search`` the API, ``execute`` code against it.

``forkman mcp`` (:mod:`forkman.agent.server`) serves them; the code runs in
forkman's sandbox with ``fm``, a proxy whose every call the host validates
and performs through :class:`forkman.Project` (:mod:`forkman.agent._host`).
Writes are gated: recorded as plans in ``.forkman/agent.sqlite`` and applied
by ``forkman agent approve ID`` unless the server allows writes.

This package imports nothing heavy: the sandboxed side
(:mod:`forkman.agent._guest`) is imported from it inside the sandbox.
"""
