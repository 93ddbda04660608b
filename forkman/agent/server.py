"""``forkman mcp``: an MCP server with two tools, ``search`` over the API and ``execute`` of code.

``search`` ranks the public methods of :class:`forkman.Project` for a query;
``execute`` runs Python in forkman's sandbox with ``fm``, a proxy of the
project's API, in scope (see :mod:`forkman.agent._host`). Both answers stay
within a fixed budget of characters and say when something was cut.

Requires the official ``mcp`` SDK: ``pip install 'forkman[agent]'``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import ForkmanError
from . import _catalog

if TYPE_CHECKING:
    from ._host import Executor

SEARCH_BUDGET = 6000
"""Characters of one ``search`` answer."""
EXECUTE_BUDGET = 24_000
"""Characters of one ``execute`` answer (result, logs and notes together)."""


def require_sdk() -> None:
    """Raise a ForkmanError with what to install when the ``mcp`` SDK is missing."""
    try:
        import mcp.server.lowlevel  # noqa: F401
    except ImportError:
        raise ForkmanError(
            "`forkman mcp` needs the MCP SDK (the `mcp` package), which is not installed",
            hint="pip install 'forkman[agent]'",
        ) from None


def tool_definitions() -> list[dict[str, Any]]:
    """The two tools, as ``tools/list`` gives them (name, description, input schema)."""
    names = ", ".join(op.name for op in _catalog.operations())
    return [
        {
            "name": "search",
            "description": (
                "Search forkman's API (the `fm` object of `execute`) for what you want done, "
                "e.g. 'carry my patches to the new release'. Returns matching methods with "
                "signature, summary, return fields and an example."
            ),
            "inputSchema": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
        {
            "name": "execute",
            "description": (
                "Run Python as the body of a function with `fm` (this project's forkman API) "
                "in scope; `return` a JSON value. print() output comes back as logs; an error "
                "comes back with forkman's hint. Results are dicts whose keys read as "
                "attributes (f.name). Sandboxed: no network, project read-only. Calls that "
                "change the project become plans a person approves, unless the server allows "
                f"writes. fm methods: {names}."
            ),
            "inputSchema": {
                "type": "object",
                "properties": {"code": {"type": "string"}},
                "required": ["code"],
            },
        },
    ]


def render_execution(data: dict[str, Any], budget: int = EXECUTE_BUDGET) -> str:
    """The answer of ``execute`` as JSON text within `budget` characters, saying what was cut."""
    text = json.dumps(data, indent=1, default=str)
    if len(text) <= budget:
        return text
    data = dict(data)
    notes: list[str] = []
    logs = data.get("logs")
    if isinstance(logs, str) and len(logs) > budget // 4:
        data["logs"] = logs[: budget // 4]
        notes.append(f"logs cut at {budget // 4} of {len(logs)} characters: print less")
    key = "error" if "error" in data else "result"
    body = json.dumps(data.get(key), indent=1, default=str)
    room = max(1000, budget - len(json.dumps({**data, key: None}, indent=1)) - 400)
    if len(body) > room:
        data[key] = body[:room]
        notes.append(
            f"{key} cut at {room} of {len(body)} characters (shown as truncated JSON text): "
            "return less, e.g. select fields or slice lists"
        )
    data["notes"] = notes
    return json.dumps(data, indent=1, default=str)[: budget + 1000]


class AgentServer:
    """The two tools over one project; wrap with :func:`build_server` for MCP."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def search(self, query: str) -> tuple[str, bool]:
        """The ``search`` answer and whether it is an error."""
        if not isinstance(query, str):
            return "query must be a string", True
        return _catalog.search(query, budget=SEARCH_BUDGET).text, False

    def execute(self, code: str) -> tuple[str, bool]:
        """The ``execute`` answer and whether it is an error."""
        if not isinstance(code, str):
            return "code must be a string", True
        execution = self.executor.execute(code)
        return render_execution(execution.to_json()), execution.error is not None


def build_server(agent: AgentServer) -> Any:
    """The MCP low-level server answering ``tools/list`` and ``tools/call``."""
    import anyio.to_thread
    import mcp.types as types
    from mcp.server.lowlevel import Server

    from ..core.version import __version__

    tools = [types.Tool.model_validate(t) for t in tool_definitions()]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = params.arguments or {}
        if params.name == "search":
            text, failed = agent.search(arguments.get("query", ""))
        elif params.name == "execute":
            code = arguments.get("code", "")
            text, failed = await anyio.to_thread.run_sync(agent.execute, code)
        else:
            text, failed = f"no tool {params.name!r}: the tools are search and execute", True
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], is_error=failed
        )

    return Server(
        "forkman",
        version=__version__,
        instructions=(
            "forkman manages this project's forks. Use `search` to find API methods, then "
            "`execute` to run Python that calls them on `fm` and returns what you need."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def serve_stdio(agent: AgentServer) -> None:
    """Serve MCP over standard input and output until the client closes it."""
    import anyio
    from mcp.server.stdio import stdio_server

    server = build_server(agent)

    async def main() -> None:
        async with stdio_server() as (read, write):
            # started while fd 1 points at stderr: nothing it prints can reach the wire
            agent.executor.start()
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)


def serve_http(agent: AgentServer, port: int) -> None:
    """Serve MCP over streamable HTTP on 127.0.0.1:`port` (never another address)."""
    import uvicorn

    server = build_server(agent)
    agent.executor.start()
    app = server.streamable_http_app(host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def open_executor(root: Path, *, allow_writes: bool, timeout: float) -> Executor:
    """An executor for the project at `root` (its fork server starts on first use)."""
    from ._host import Executor

    return Executor(root, allow_writes=allow_writes, timeout=timeout)
