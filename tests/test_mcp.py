"""The MCP server as an agent sees it: a real client session over stdio (and a streamable-HTTP smoke test)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import anyio
import pytest

from eval.local_server import PARTIAL_NOTE, stop_process
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from eval.generated_corpus import write_json_corpus

TOOLS = {"rag_search", "rag_get_context", "rag_document_stats"}
QUERY = "量子计算 大熊猫 photosynthesis volcano jazz"
CALL_TIMEOUT = 120


def _server_env() -> dict[str, str]:
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONUNBUFFERED": "1"}
    for key in ("HF_HOME", "HF_HUB_CACHE", "SENTENCE_TRANSFORMERS_HOME", "TMPDIR", "LANG", "LC_ALL"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mcp")
    corpus = write_json_corpus(root / "corpus" / "long_context.json", n_docs=12)
    return {"root": root, "corpus": corpus, "corpus_dir": corpus.parent, "data": root / "data"}


def _text(result) -> str:
    assert result.content, result
    return "".join(block.text for block in result.content if getattr(block, "type", "") == "text")


def _server_args(ws: dict[str, Path], *extra: str) -> list[str]:
    return ["-m", "service.mcp_server", "--data-dir", str(ws["data"]), "--corpus-root", str(ws["corpus_dir"]), *extra]


async def _check_tools(session: ClientSession) -> None:
    listed = await session.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert TOOLS <= set(tools)
    schema = tools["rag_search"].input_schema
    props = schema["properties"]
    for name in ("query", "json_path", "top_k", "diverse", "min_docs", "max_per_doc"):
        assert name in props, name
    assert (props["top_k"]["default"], props["diverse"]["default"], props["min_docs"]["default"],
            props["max_per_doc"]["default"]) == (10, True, 5, 2)
    assert props["top_k"]["type"] == "integer" and props["diverse"]["type"] == "boolean"
    assert set(schema["required"]) == {"query", "json_path"}
    context_props = tools["rag_get_context"].input_schema["properties"]
    assert context_props["max_tokens"]["default"] == 4000 and context_props["top_k"]["default"] == 10
    assert set(tools["rag_document_stats"].input_schema["required"]) == {"json_path"}


def _check_search_text(text: str, json_path: str) -> None:
    assert text.startswith("=== RAG Search Results ===\n"), text[:200]
    assert f"Query: '{QUERY}'" in text and f"Source File: {json_path}" in text
    assert "Results Found: 10" in text
    assert text.count('Citation: [long_context: "') == 10
    docs = Counter(int(d) for d in re.findall(r"^Document Index: (\d+)$", text, flags=re.M))
    assert sum(docs.values()) == 10
    assert len(docs) >= 5, docs
    assert max(docs.values()) <= 2, docs
    assert "CITATION GUIDANCE" in text


async def _until_complete(session: ClientSession, json_path: str, timeout: float = 240) -> None:
    """Search until the answer no longer says legs are pending (the first answer comes from BM25)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await session.call_tool("rag_search", {"query": QUERY, "json_path": json_path})
        assert not result.is_error, _text(result)
        if PARTIAL_NOTE not in _text(result):
            return
        assert time.monotonic() < deadline, _text(result)
        await anyio.sleep(0.5)


def test_stdio_session(workspace, tmp_path) -> None:
    json_path = str(workspace["corpus"].resolve())
    errlog_path = tmp_path / "server-stderr.log"
    params = StdioServerParameters(command=sys.executable, args=_server_args(workspace), env=_server_env(),
                                   cwd=str(tmp_path))

    transport_faults: list[Exception] = []

    async def on_message(message) -> None:  # a non-JSON line on the server's stdout arrives here
        if isinstance(message, Exception):
            transport_faults.append(message)

    async def run() -> None:
        with open(errlog_path, "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT,
                                         message_handler=on_message) as session:
                    await session.initialize()
                    await _check_tools(session)

                    # The agents' exact call (the first one indexes the corpus and waits for it).
                    started = time.perf_counter()
                    result = await session.call_tool("rag_search", {
                        "query": QUERY, "json_path": json_path, "top_k": 10, "diverse": True,
                        "min_docs": 5, "max_per_doc": 2})
                    assert not result.is_error, _text(result)
                    _check_search_text(_text(result), json_path)
                    assert time.perf_counter() - started < CALL_TIMEOUT
                    await _until_complete(session, json_path)  # the rest checks the complete collection

                    # The legacy cache path the agents pass resolves to the JSON beside it.
                    legacy = json_path + ".chunks.db"
                    result = await session.call_tool("rag_search", {"query": QUERY, "json_path": legacy})
                    assert not result.is_error, _text(result)
                    assert f"Source File: {legacy}" in _text(result)
                    assert "=== Evidence Graph ===" not in _text(result)
                    result = await session.call_tool("rag_search", {"query": QUERY, "json_path": json_path,
                                                                    "include_subgraph": True})
                    assert not result.is_error, _text(result)
                    assert "=== Evidence Graph ===" in _text(result) and '[long_context: "' in _text(result)

                    result = await session.call_tool("rag_get_context", {
                        "query": "volcano magma lava", "json_path": json_path, "max_tokens": 800})
                    assert not result.is_error, _text(result)
                    text = _text(result)
                    assert text.startswith("=== RAG Context ===\n")
                    tokens = re.search(r"^Context Blocks: (\d+) \((\d+) tokens of 800\)$", text, flags=re.M)
                    assert tokens and int(tokens.group(1)) >= 1 and int(tokens.group(2)) <= 800
                    assert '[long_context: "Volcanoes' in text

                    result = await session.call_tool("rag_document_stats", {"json_path": json_path})
                    assert not result.is_error, _text(result)
                    text = _text(result)
                    assert text.startswith("=== Document Statistics ===\n")
                    assert "Status: ready" in text and "Total Documents: 12" in text
                    assert "Embedding Model: " in text and "[11] Compilers 11 (" in text
                    name = re.search(r"^Collection: (\S+)$", text, flags=re.M).group(1)

                    # By collection name instead of a path, with another mode.
                    result = await session.call_tool("rag_search", {
                        "query": QUERY, "json_path": "", "collection": name, "mode": "bm25", "top_k": 3})
                    assert not result.is_error, _text(result)
                    assert "Results Found: 3" in _text(result)

                    # Caller mistakes are tool errors, and the server keeps serving.
                    result = await session.call_tool("rag_search", {
                        "query": QUERY, "json_path": "/etc/passwd", "top_k": 10, "diverse": True,
                        "min_docs": 5, "max_per_doc": 2})
                    assert result.is_error
                    assert "allowed roots" in _text(result)
                    for arguments in ({"query": "   ", "json_path": json_path},
                                      {"query": QUERY, "json_path": json_path, "top_k": 0},
                                      {"query": QUERY, "json_path": json_path, "mode": "magic"},
                                      {"query": QUERY, "json_path": str(workspace["corpus_dir"] / "missing.json")},
                                      {"query": QUERY, "json_path": "", "collection": "no-such-collection"}):
                        result = await session.call_tool("rag_search", arguments)
                        assert result.is_error, arguments
                        assert _text(result).startswith("Error executing tool rag_search: "), _text(result)
                    result = await session.call_tool("rag_document_stats", {"json_path": "/etc/passwd"})
                    assert result.is_error and "allowed roots" in _text(result)

                    result = await session.call_tool("rag_search", {"query": QUERY, "json_path": json_path})
                    assert not result.is_error
                    _check_search_text(_text(result), json_path)

    anyio.run(run)
    assert not transport_faults, transport_faults
    log = errlog_path.read_text()
    assert "Traceback" not in log, log


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not start listening")


def test_streamable_http_smoke(workspace, tmp_path) -> None:
    port = _free_port()
    json_path = str(workspace["corpus"].resolve())
    errlog_path = tmp_path / "server-stderr.log"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAGMEM_")}, **_server_env()}
    with open(errlog_path, "w") as errlog:
        proc = subprocess.Popen([sys.executable, *_server_args(workspace, "--transport", "http", "--host",
                                                              "127.0.0.1", "--port", str(port))],
                                stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog, env=env, cwd=str(tmp_path))
    try:
        _wait_for_port(port, proc)

        async def run() -> None:
            async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT) as session:
                    await session.initialize()
                    await _check_tools(session)
                    result = await session.call_tool("rag_search", {
                        "query": QUERY, "json_path": json_path, "top_k": 10, "diverse": True,
                        "min_docs": 5, "max_per_doc": 2})
                    assert not result.is_error, _text(result)
                    _check_search_text(_text(result), json_path)
                    result = await session.call_tool("rag_search", {"query": QUERY, "json_path": "/etc/passwd"})
                    assert result.is_error and "allowed roots" in _text(result)

        anyio.run(run)
    finally:
        stop_process(proc, timeout=10)
    log = errlog_path.read_text()
    assert "Traceback" not in log, log
