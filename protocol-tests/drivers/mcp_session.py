"""One MCP session with the official Python SDK client against Airlock.

Usage:
  mcp_session.py http URL TOKEN CALLS_JSON
  mcp_session.py stdio AIRLOCK_BINARY CONFIG TOKEN CALLS_JSON

CALLS_JSON is a list of {"tool": name, "args": {...}}. With MCP_ELICIT set
(accept, decline or cancel) the client supports elicitation and answers
every request so; what it was asked is printed under "elicitations". Prints one JSON
document: {"protocol": negotiated version, "tools": [{name, annotations,
inputSchema}], "calls": [{"is_error", "structured", "text", "progress"}]}.
A session the server refuses (bad token) prints {"refused": "<error>"}.
"""

import asyncio
import json
import os
import sys

from mcp import types

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def run(session, calls):
    init = await session.initialize()
    listed = await session.list_tools()
    # The SDK's models name fields in snake_case; their wire names are
    # the MCP ones (inputSchema, structuredContent, isError).
    tools = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in listed.tools]
    results = []
    for call in calls:
        progress = []

        async def on_progress(value, total, message, progress=progress):
            progress.append(message)

        result = await session.call_tool(
            call["tool"], call.get("args", {}), progress_callback=on_progress
        )
        wire = result.model_dump(mode="json", by_alias=True)
        text = " ".join(c.get("text", "") for c in (wire.get("content") or []))
        results.append(
            {
                "is_error": bool(wire.get("isError")),
                "structured": wire.get("structuredContent"),
                "text": text,
                "progress": progress,
            }
        )
    init_wire = init.model_dump(mode="json", by_alias=True)
    return {
        "protocol": init_wire.get("protocolVersion"),
        "tools": tools,
        "calls": results,
    }


ELICITED = []


async def on_elicit(context, params):
    ELICITED.append(params.model_dump(mode="json", by_alias=True, exclude_none=True))
    return types.ElicitResult(action=os.environ["MCP_ELICIT"])


def session_options():
    return {"elicitation_callback": on_elicit} if os.environ.get("MCP_ELICIT") else {}


async def over_http(url, token, calls):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = create_mcp_http_client(headers=headers)
    async with client:
        async with streamable_http_client(url, http_client=client) as (read, write, *_):
            async with ClientSession(read, write, **session_options()) as session:
                out = await run(session, calls)
                out["elicitations"] = ELICITED
                return out


async def over_stdio(binary, config, token, calls):
    params = StdioServerParameters(
        command=binary,
        args=["mcp", "--stdio", "--config", config],
        env={"AIRLOCK_MCP_TOKEN": token},
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            return await run(session, calls)


def main():
    mode = sys.argv[1]
    try:
        if mode == "http":
            out = asyncio.run(over_http(sys.argv[2], sys.argv[3], json.loads(sys.argv[4])))
        else:
            out = asyncio.run(
                over_stdio(sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5]))
            )
    except BaseException as e:  # the SDK wraps transport errors in groups
        out = {"refused": repr(e)}
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
