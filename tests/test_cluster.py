"""ragmem on a real local 3-node Ray cluster (``ray.cluster_utils.Cluster``, all on loopback).

* a 4-shard build run as Ray tasks equals the unsharded build query for query in bm25, dense,
  hybrid and the default mode, in process and over HTTP through Ray Serve;
* killing a node that holds shard replicas while a client keeps querying fails no request, and
  the replica count is back once a node joins again;
* a sharded build killed mid-way (kill -9 of ``ragmem index --shards``) publishes nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.serve")

from ray.cluster_utils import Cluster  # noqa: E402

from eval.generated_corpus import write_json_corpus  # noqa: E402
from eval.local_server import free_port, wait_until_serving  # noqa: E402
from indexing import publish  # noqa: E402
from indexing.builder import build_collection  # noqa: E402
from indexing.collection import open_collection  # noqa: E402
from indexing.settings import Settings  # noqa: E402
from service.engine import SearchParams, search  # noqa: E402

MODES = ("bm25", "dense", "hybrid", "hybrid+graph")
QUERIES = ["quantum computing chip", "量子 芯片 发展", "history of the river valley", "market growth 2020"]
RAGMEM = str(Path(sys.executable).with_name("ragmem"))
SHARD_REPLICA_PREFIX = "shard--four--"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head + 2 worker nodes, the test process connected as a driver; the corpus built both ways."""
    tmp = tmp_path_factory.mktemp("cluster")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
    cluster.wait_for_nodes()
    cluster.connect()
    data = tmp / "data"
    corpus = write_json_corpus(tmp / "c.json", n_docs=16, seed=7, paragraphs=5)
    # One data root: the sharded build reads the chunk vectors the unsharded one cached (the int8
    # embedder's vectors depend slightly on the batch a text is embedded in).
    build_collection(corpus, "one", Settings(data_dir=data), show_progress=False)
    build_collection(corpus, "four", Settings(data_dir=data, shards=4, ray_address=cluster.address),
                     show_progress=False)
    yield {"cluster": cluster, "workers": workers, "data": data, "tmp": tmp}
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def served(cluster):
    """``ragmem serve --ray-address ... --replicas 2`` on loopback, until the module ends."""
    port = free_port()
    log_path = cluster["tmp"] / "serve.log"
    log = open(log_path, "w")
    env = {**os.environ, "RAGMEM_DATA_DIR": str(cluster["data"]), "RAGMEM_WARM_UP": "false",
           "RAGMEM_RAY_RETIRE_AFTER_S": "1", "RAGMEM_RAY_PLACE_EVERY_S": "1"}
    proc = subprocess.Popen([RAGMEM, "serve", "--ray-address", cluster["cluster"].address, "--replicas", "2",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(f"{url}/collections", proc, log_path, 240)  # the app, not just Serve's proxy
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _hits(url: str, collection: str, query: str, mode: str) -> list[tuple[str, float]]:
    response = httpx.post(f"{url}/rag_search", json={"query": query, "collection": collection, "mode": mode},
                          timeout=60)
    assert response.status_code == 200, response.text
    return [(h["chunk_id"], h["score"]) for h in response.json()["results"]]


def test_shards_built_as_ray_tasks_answer_like_the_unsharded_build(cluster):
    four = open_collection(cluster["data"], "four")
    one = open_collection(cluster["data"], "one")
    assert four.manifest.shards["count"] == 4 and four.manifest.shards["ran_on"].startswith("Ray (")
    for mode in MODES:
        for query in QUERIES:
            a, b = search(one, query, SearchParams(mode=mode)), search(four, query, SearchParams(mode=mode))
            assert [h.record.chunk_id for h in b.hits] == [h.record.chunk_id for h in a.hits], (mode, query)
            assert np.allclose([h.score for h in b.hits], [h.score for h in a.hits], atol=1e-5)


def test_ray_serve_answers_like_single_node_serving(cluster, served):
    """Over HTTP through Serve, the sharded collection (fanned out to its shard replicas) and the
    unsharded one (one replica-held shard) against the single-node code path in this process with
    the serving query encoder: same chunks in order, scores within 1e-5."""
    from indexing.embedder import QueryEncoding

    settings = Settings(data_dir=cluster["data"])
    single = open_collection(cluster["data"], "one", query_encoding=QueryEncoding.for_serving(settings))
    for mode in MODES:
        for query in QUERIES:
            expected = search(single, query, SearchParams(mode=mode))
            for name in ("four", "one"):
                hits = _hits(served, name, query, mode)
                assert [c for c, _ in hits] == [h.record.chunk_id for h in expected.hits], (name, mode, query)
                assert np.allclose([s for _, s in hits], [h.score for h in expected.hits], atol=1e-5)
    text = httpx.post(f"{served}/rag_search", json={"query": QUERIES[0], "collection": "four", "format": "text"},
                      timeout=60)
    assert text.status_code == 200 and "Citation: [long_context:" in text.text


def test_mcp_over_http_through_ray_serve(served):
    """The agents' rag_search tool at /mcp of the Serve app answers from the shard replicas."""
    import anyio
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    expected = httpx.post(f"{served}/rag_search", json={"query": QUERIES[1], "collection": "four",
                                                        "format": "text"}, timeout=60).text

    async def run() -> str:
        async with streamable_http_client(f"{served}/mcp") as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                result = await session.call_tool("rag_search", {"query": QUERIES[1], "json_path": "",
                                                                "collection": "four"})
                assert not result.is_error, result
                return "\n".join(c.text for c in result.content if getattr(c, "text", None))

    text = anyio.run(run)
    cited = [line for line in text.splitlines() if line.startswith("Citation:")]
    assert cited and cited == [line for line in expected.splitlines() if line.startswith("Citation:")]


def test_a_collection_published_after_start_up_gets_replicas(cluster, served):
    """Indexed while the Serve app runs: the ingress places it on 2 nodes before any query, then
    answers from there; re-indexed, it moves to the new build's replicas and the old ones retire,
    again with no query sent."""
    from indexing.embedder import QueryEncoding

    settings = Settings(data_dir=cluster["data"])
    build_collection(write_json_corpus(cluster["tmp"] / "late.json", n_docs=3, seed=13), "late", settings,
                     show_progress=False)
    first_build = publish.current_build_dir(cluster["data"], "late").name
    placed = _wait_for_builds("late", {first_build})
    assert len(placed) == 2 and all(len(shards) == 1 for shards in placed.values()), placed
    single = open_collection(cluster["data"], "late", query_encoding=QueryEncoding.for_serving(settings))
    expected = search(single, QUERIES[0], SearchParams(mode="hybrid"))
    assert [c for c, _ in _hits(served, "late", QUERIES[0], "hybrid")] == [h.record.chunk_id for h in expected.hits]

    build_collection(write_json_corpus(cluster["tmp"] / "late.json", n_docs=4, seed=14), "late", settings,
                     show_progress=False)
    second_build = publish.current_build_dir(cluster["data"], "late").name
    placed = _wait_for_builds("late", {second_build})
    assert sum(map(len, placed.values())) == 2
    expected = search(open_collection(cluster["data"], "late", query_encoding=QueryEncoding.for_serving(settings)),
                      QUERIES[0], SearchParams(mode="hybrid"))
    assert [c for c, _ in _hits(served, "late", QUERIES[0], "hybrid")] == [h.record.chunk_id for h in expected.hits]


def _wait_for_builds(collection: str, builds: set[str], timeout: float = 60) -> dict[str, list[str]]:
    """The replicas of ``collection`` once exactly ``builds`` have replicas (2 of each shard)."""
    deadline = time.monotonic() + timeout
    while True:
        placed = _shard_replicas(f"shard--{collection}--")
        held = [s.split("--")[-2] for shards in placed.values() for s in shards]
        if set(held) == builds and len(held) == 2 * len(builds):
            return placed
        assert time.monotonic() < deadline, (builds, placed)
        time.sleep(0.5)


def _shard_replicas(prefix: str = SHARD_REPLICA_PREFIX) -> dict[str, list[str]]:
    """node id -> the shards (``<collection>--<build>--<shard>``) whose alive replica actors are on it."""
    from ray.util.state import list_actors

    out: dict[str, list[str]] = {}
    for actor in list_actors(filters=[("state", "=", "ALIVE")], detail=True, limit=1000):
        if (actor.name or "").startswith(prefix):
            out.setdefault(actor.node_id, []).append(actor.name.rsplit("--r", 1)[0])
    return out


def test_a_node_lost_while_querying_fails_no_request(cluster, served):
    placed = _shard_replicas()
    assert sum(map(len, placed.values())) == 8  # 4 shards x 2 replicas
    assert len(_shard_replicas("shard--one--")) == 2  # the small collection too: on 2 nodes
    for replicas in placed.values():  # at most one replica of a shard per node
        assert len(replicas) == len(set(replicas))
    victim = max((w for w in cluster["workers"] if w.node_id in placed), key=lambda w: len(placed[w.node_id]))
    failures, answered, killed_at = [], 0, None
    started = time.monotonic()
    with httpx.Client(timeout=60) as client:
        while time.monotonic() - started < 9:
            query = QUERIES[answered % len(QUERIES)]
            try:
                response = client.post(f"{served}/rag_search", json={"query": query, "collection": "four"})
                if response.status_code != 200 or not response.json()["results"]:
                    failures.append(response.status_code)
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
            answered += 1
            if killed_at is None and time.monotonic() - started > 2:
                cluster["cluster"].remove_node(victim, allow_graceful=False)
                killed_at = answered
    assert killed_at is not None and answered > killed_at + 5
    assert failures == []
    cluster["workers"].append(cluster["cluster"].add_node(num_cpus=2))  # capacity returns
    deadline = time.monotonic() + 120
    while sum(map(len, _shard_replicas().values())) < 8:
        assert time.monotonic() < deadline, f"replicas not restored: {_shard_replicas()}"
        time.sleep(1)


def test_a_sharded_build_killed_midway_publishes_nothing(cluster):
    data = cluster["data"]
    before = publish.current_build_dir(data, "four")
    corpus = write_json_corpus(cluster["tmp"] / "changed.json", n_docs=16, seed=11, paragraphs=5)
    env = {**os.environ, "RAGMEM_DATA_DIR": str(data)}
    proc = subprocess.Popen([RAGMEM, "index", str(corpus), "-c", "four", "--shards", "4", "--ray-address",
                             cluster["cluster"].address], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    root = publish.collection_root(data, "four")
    deadline = time.monotonic() + 180
    while not any(root.glob(".staging-*/shards/*")):  # the shards are being written
        assert proc.poll() is None, "the build finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert publish.current_build_dir(data, "four") == before
    four = open_collection(data, "four")
    assert search(four, QUERIES[0], SearchParams()).hits
