"""Drives Quarry's MCP server with the official MCP Python SDK.

MCP_TRANSPORT=http: streamable HTTP at $QUARRY_URL/mcp, with the keys the
test configured (READER_KEY reads `guide`, WRITER_KEY writes, OTHER_KEY
reads another tenant's collections). MCP_TRANSPORT=stdio: `quarry mcp`
started by the SDK as a child process.

Asserts as it goes, prints a transcript, and prints one JSON summary last.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

TRANSPORT = os.environ["MCP_TRANSPORT"]
URL = os.environ.get("QUARRY_URL", "")
QUERY = "liveness and readiness probes for the load balancer"
TOOLS = {"search", "context", "list_collections", "get_document", "sync_source"}


def say(*parts):
    print(*parts, flush=True)


def structured(result):
    if result.structuredContent is not None:
        return result.structuredContent
    return json.loads(result.content[0].text)


def error_code(result):
    assert result.isError, f"expected a tool error, got {result}"
    body = json.loads(result.content[0].text)
    assert body["error"]["message"], body
    return body["error"]["code"], body["error"]["message"]


def http_session(key):
    from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return streamable_http_client(f"{URL}/mcp", http_client=create_mcp_http_client(headers=headers))


def stdio_session():
    params = StdioServerParameters(
        command=os.environ["QUARRY_BIN"],
        args=["mcp", "--config", os.environ["QUARRY_CONFIG"], "--data-dir", os.environ["QUARRY_DATA"]],
        env={"QUARRY_HOME": os.environ["QUARRY_HOME"], "PATH": os.environ.get("PATH", "")},
    )
    return stdio_client(params)


async def with_session(opener, body):
    async with opener as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await body(session)


async def main_tools(session, report, can_write):
    tools = (await session.list_tools()).tools
    names = {t.name for t in tools}
    assert names == TOOLS, names
    report["tools"] = sorted(names)
    say("> tools/list")
    for t in tools:
        say(f"  {t.name}: {t.description}")
        assert t.inputSchema["type"] == "object", t.inputSchema
    search_schema = next(t for t in tools if t.name == "search").inputSchema
    for field in ["collection", "query", "top_k", "mode", "filter"]:
        assert field in search_schema["properties"], search_schema

    listed = structured(await session.call_tool("list_collections", {}))
    assert [c["name"] for c in listed["collections"]] == ["guide"], listed

    found = structured(await session.call_tool("search", {"collection": "guide", "query": QUERY, "top_k": 3, "mode": "hybrid"}))
    report["search_top"] = found["hits"][0]["doc_id"]

    say(f'> tools/call context {{"collection": "guide", "query": "{QUERY}", "max_tokens": 500}}')
    ctx = await session.call_tool("context", {"collection": "guide", "query": QUERY, "max_tokens": 500})
    assert not ctx.isError, ctx
    text = ctx.content[0].text
    say("\n".join("  " + line for line in text.splitlines()))
    body = structured(ctx)
    assert "[1]" in body["text"] and body["tokens"] <= 500, body
    assert body["passages"][0]["doc_id"] == "health-checks.md", body["passages"][0]
    assert body["passages"][0]["uri"] in text, text
    assert "Sources:" in text, text

    doc = await session.call_tool("get_document", {"collection": "guide", "id": report["search_top"]})
    assert not doc.isError, doc
    assert "/healthz" in doc.content[0].text, doc.content[0].text[:200]

    bad = await session.call_tool("search", {"collection": "guide", "query": QUERY, "top_k": "ten"})
    report["bad_argument"], bad_message = error_code(bad)
    report["bad_argument_message"] = bad_message
    unknown = await session.call_tool("search", {"collection": "guide", "query": QUERY, "colour": "red"})
    assert error_code(unknown)[0] == "bad_request"

    if can_write:
        synced = await session.call_tool("sync_source", {"source": "guide"})
        assert not synced.isError, synced
        job = structured(synced)
        assert job["state"] == "succeeded" and job["error"] is None, job
        assert job["report"]["added"] == 1, job
        after = structured(await session.call_tool("search", {"collection": "guide", "query": "narwhal rotation on-call pager", "mode": "bm25", "top_k": 1}))
        report["synced_doc_found"] = after["hits"][0]["doc_id"]


async def main():
    report = {}
    if TRANSPORT == "stdio":
        await with_session(stdio_session(), lambda s: main_tools(s, report, can_write=True))
    else:
        import httpx

        # The reader: every tool but sync_source.
        async def reader(session):
            await main_tools(session, report, can_write=False)
            sync = await session.call_tool("sync_source", {"source": "guide"})
            report["read_key_sync"], message = error_code(sync)
            assert "write scope" in message, message

        await with_session(http_session(os.environ["READER_KEY"]), reader)

        # Same error code and message as the HTTP API for the same body.
        resp = httpx.post(
            f"{URL}/v1/collections/guide/search",
            json={"query": QUERY, "top_k": "ten"},
            headers={"Authorization": f"Bearer {os.environ['READER_KEY']}"},
        )
        assert resp.status_code == 400, resp.text
        # The same message, but for where in the body it points (the two
        # clients lay the JSON out differently).
        http_message = resp.json()["error"]["message"].split(" at line ")[0]
        assert http_message == report["bad_argument_message"].split(" at line ")[0], (resp.text, report)

        # Another tenant's key: `guide` does not exist for it.
        async def other(session):
            listed = structured(await session.call_tool("list_collections", {}))
            assert listed["collections"] == [], listed
            result = await session.call_tool("search", {"collection": "guide", "query": QUERY})
            report["other_tenant_search"], _ = error_code(result)

        await with_session(http_session(os.environ["OTHER_KEY"]), other)

        # The writer syncs.
        async def writer(session):
            synced = await session.call_tool("sync_source", {"source": "guide"})
            assert not synced.isError, synced
            say("> tools/call sync_source {\"source\": \"guide\"}\n  " + synced.content[0].text)
            after = structured(await session.call_tool("search", {"collection": "guide", "query": "narwhal rotation on-call pager", "mode": "bm25", "top_k": 1}))
            report["synced_doc_found"] = after["hits"][0]["doc_id"]

        await with_session(http_session(os.environ["WRITER_KEY"]), writer)

        # No key: the SDK's connection is refused with a 401.
        try:
            await with_session(http_session(None), lambda s: s.list_tools())
            raise AssertionError("a session without a key was accepted")
        except AssertionError:
            raise
        except BaseException as e:  # the SDK raises through a task group
            assert "401" in repr(e) or "Unauthorized" in repr(e), repr(e)
        raw = httpx.post(
            f"{URL}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
        assert raw.json()["error"]["code"] == "unauthorized", raw.text
        report["missing_key_status"] = raw.status_code
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
