"""``ragmem serve --ray-address``: the Serve application over every sharded collection of the data root.

Placement: each shard of each collection is one Serve deployment of ``replicas`` replica actors
(an unsharded collection is one shard, so many small collections spread over the nodes too); with at least as many alive nodes as replicas, at most one replica of a shard runs per
node (``max_replicas_per_node=1``), so losing a node never takes every copy of a shard. Shards of
different collections are separate deployments, so Ray spreads many small collections over the
nodes by its own scheduling. The ingress (the FastAPI app) runs on the head node, beside Serve's
controller and its HTTP proxy (``proxy_location="HeadOnly"``): a worker node's loss then never
takes the request's entry point with it. Builds published after the application was deployed
(a re-index, a new json_path) and builds whose tiers are still pending are read inside the
ingress itself until the next deploy.

Requires a data root every node can read at the same path (one host, or shared storage).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

from indexing import publish
from indexing.build_format import read_manifest
from indexing.settings import Settings
from indexing.sharded_collection import WHOLE_BUILD
from service.cluster.deployments import Ingress, ShardReplica, shard_key

log = logging.getLogger("ragmem.service.cluster.app")

APP_NAME = "ragmem"
SHARD_REPLICA_CPUS = 0.25
"""Logical CPUs Ray reserves per shard replica: a shard answers a query's calls in about a
millisecond each, so many replicas share a core (raise it for shards past a few 100k chunks)."""
INGRESS_CPUS = 0.5
HEALTH_CHECK_PERIOD_S = 2.0
HEALTH_CHECK_TIMEOUT_S = 10.0


def placed_builds(data_dir: Path) -> list[tuple[str, Path, Any]]:
    """(collection, current build directory, manifest) of every complete collection under ``data_dir``:
    sharded ones and unsharded ones alike (these become one-shard deployments)."""
    found = []
    for name in publish.list_collections(data_dir):
        build_dir = publish.current_build_dir(data_dir, name)
        if build_dir is None:
            continue
        manifest = read_manifest(build_dir)
        if manifest.complete:
            found.append((name, build_dir.resolve(), manifest))
    return found


def shard_parts(manifest: Any) -> list[tuple[int, dict | None]]:
    """(shard index, its FAISS info) of every deployment a build needs."""
    if manifest.shards is None:
        return [(WHOLE_BUILD, manifest.faiss)]
    infos = (manifest.faiss or {}).get("shards") or []
    return [(i, infos[i] if i < len(infos) else None) for i in range(int(manifest.shards["count"]))]


def cluster_application(settings: Settings, replicas: int, alive_nodes: int) -> Any:
    """The bound Serve application: the ingress, given one handle per shard deployment."""
    from ray import serve
    from ray._common.constants import HEAD_NODE_RESOURCE_NAME

    shard_apps: dict[str, Any] = {}
    for name, build_dir, manifest in placed_builds(Path(settings.data_dir)):
        parts = shard_parts(manifest)
        for index, faiss_info in parts:
            key = shard_key(build_dir, index)
            options: dict[str, Any] = dict(
                name=f"shard--{key}", num_replicas=replicas, ray_actor_options={"num_cpus": SHARD_REPLICA_CPUS},
                health_check_period_s=HEALTH_CHECK_PERIOD_S, health_check_timeout_s=HEALTH_CHECK_TIMEOUT_S,
                max_ongoing_requests=settings.max_inflight_requests)
            if 1 < replicas <= alive_nodes:
                options["max_replicas_per_node"] = 1
            shard_apps[key] = serve.deployment(ShardReplica).options(**options).bind(str(build_dir), index, faiss_info)
        log.info("collection %s: %d shard(s) x %d replicas", name, len(parts), replicas)
    ingress = serve.deployment(serve.ingress()(Ingress)).options(
        name="ingress", num_replicas=1, max_ongoing_requests=settings.max_inflight_requests,
        ray_actor_options={"num_cpus": INGRESS_CPUS, "resources": {HEAD_NODE_RESOURCE_NAME: 0.001}})
    settings_dict = settings.model_dump(mode="json", exclude={"ray_address"})
    settings_dict["data_dir"] = str(Path(settings.data_dir).resolve())
    settings_dict["corpus_roots"] = [str(Path(r).resolve()) for r in settings.corpus_roots]
    return ingress.bind(settings_dict, shard_apps)


def run_cluster(settings: Settings) -> None:
    """Deploy the application on the cluster at ``settings.ray_address`` and serve until SIGINT/SIGTERM,
    then delete the application (Serve itself stays up for the cluster's other applications)."""
    import ray
    from ray import serve

    ray.init(address=settings.ray_address, ignore_reinit_error=True, log_to_driver=False, configure_logging=False)
    alive = sum(1 for node in ray.nodes() if node.get("Alive"))
    serve.start(proxy_location="HeadOnly", http_options={"host": settings.host, "port": settings.port})
    app = cluster_application(settings, settings.ray_replicas, alive)
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
    log.warning("ragmem on Ray Serve at http://%s:%d (%d nodes, %d replicas per shard, data %s)", settings.host,
                settings.port, alive, settings.ray_replicas, Path(settings.data_dir).resolve())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.warning("stopping: deleting the Serve application %s", APP_NAME)
    serve.delete(APP_NAME)
