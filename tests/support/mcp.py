"""Talk to a real `forkman mcp` server over stdio with the official MCP client."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Answer:
    """One tool call's answer: its text, whether it is an error, the JSON it holds."""

    text: str
    is_error: bool

    @property
    def data(self) -> Any:
        return json.loads(self.text)


class Agent:
    """An MCP client session with `forkman mcp`."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def tools(self) -> list[dict[str, Any]]:
        listed = await self.session.list_tools()
        return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in listed.tools]

    async def call(self, tool: str, **arguments: Any) -> Answer:
        res = await self.session.call_tool(tool, arguments)
        text = "".join(getattr(c, "text", "") for c in res.content)
        return Answer(text, bool(res.is_error))

    async def execute(self, code: str) -> Answer:
        return await self.call("execute", code=code)

    async def search(self, query: str) -> Answer:
        return await self.call("search", query=query)


@asynccontextmanager
async def agent(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[Agent]:
    """`forkman --project PROJECT mcp ARGS` as a subprocess, and a client session with it."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "forkman", "--project", str(project), "mcp", *args],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        cwd=str(project),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield Agent(session)
