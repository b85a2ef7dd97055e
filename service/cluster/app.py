"""``ragmem serve --ray-address``: the HTTP API on Ray Serve over replica actors of every collection's shards.

Placement: each shard of each collection is held by ``replicas`` named replica actors
(:class:`service.cluster.deployments.ShardReplica`; an unsharded collection is one shard, so many
small collections spread over the nodes too), one per node through a STRICT_SPREAD placement
group per shard when the cluster has a node per replica (else Ray's best-effort ``SPREAD``).
Ray restarts a replica whose process or node dies (``max_restarts=-1``) in its bundle, moved to
a node that holds no other replica of that shard, which restores the replica count as soon as
capacity allows; meanwhile its calls go to the other replicas
(:mod:`service.cluster.shard_client`). The ingress (the FastAPI app, plus MCP at ``/mcp``) is a
Ray Serve deployment on the head node, beside Serve's controller and its HTTP proxy
(``proxy_location="HeadOnly"``): a worker node's loss never takes the request's entry point.
A complete build published after start-up (a re-index, a new json_path) gets its replicas when the
ingress next looks at the data root (every ``RAGMEM_RAY_PLACE_EVERY_S``) or when it is first
queried, whichever comes first (:func:`place_published_build`); the builds it replaced retire
``RAGMEM_RAY_RETIRE_AFTER_S`` later. A build whose tiers are still pending is read inside the
ingress itself until its last tier is published.

Requires a data root every node can read at the same path (one host, or shared storage).
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from indexing import publish
from indexing.build_format import read_manifest
from indexing.settings import Settings
from indexing.sharded_collection import WHOLE_BUILD
from service.cluster.deployments import Ingress, ShardReplica, shard_key
from service.cluster.shard_client import NAMESPACE

log = logging.getLogger("ragmem.service.cluster.app")

APP_NAME = "ragmem"
SHARD_REPLICA_CPUS = 0.25
"""Logical CPUs Ray reserves per shard replica: a shard answers a query's calls in about a
millisecond each, so many replicas share a core (raise it for shards past a few 100k chunks)."""
INGRESS_CPUS = 0.5
REPLICA_START_TIMEOUT_S = 300.0


def placed_builds(data_dir: Path) -> list[tuple[str, Path, Any]]:
    """(collection, current build directory, manifest) of every complete collection under ``data_dir``:
    sharded ones and unsharded ones alike (each of these is served as one shard)."""
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
    """(shard index, its FAISS info) of every shard a build is served as."""
    if manifest.shards is None:
        return [(WHOLE_BUILD, manifest.faiss)]
    infos = (manifest.faiss or {}).get("shards") or []
    return [(i, infos[i] if i < len(infos) else None) for i in range(int(manifest.shards["count"]))]


def replica_name(key: str, replica: int) -> str:
    return f"shard--{key}--r{replica}"


@dataclass
class Placed:
    """The replica actors of every placed shard, by :func:`shard_key`, and the placement groups that
    keep each shard's replicas on different nodes."""

    actors: dict[str, list[Any]] = field(default_factory=dict)
    groups: list[Any] = field(default_factory=list)


def _strategy(key: str, replicas: int, alive_nodes: int, placed: Placed) -> Callable[[int], Any]:
    """Where replica r of a shard goes: a bundle of a STRICT_SPREAD placement group when the cluster
    has a node per replica (Ray moves a dead node's bundle, and restarts its actor, to a node that
    holds no other replica of the shard, as soon as there is one), else Ray's best-effort SPREAD."""
    from ray.util.placement_group import get_placement_group, placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if not 1 < replicas <= alive_nodes:
        return lambda r: "SPREAD"
    try:  # left by a `ragmem serve` that was killed: its replicas are reused by name too
        group = get_placement_group(f"pg--{key}")
    except ValueError:
        group = placement_group([{"CPU": SHARD_REPLICA_CPUS}] * replicas, strategy="STRICT_SPREAD",
                                name=f"pg--{key}", lifetime="detached")
    placed.groups.append(group)
    return lambda r: PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=r)


def start_replicas(settings: Settings, replicas: int, alive_nodes: int) -> Placed:
    """Every placed shard's replica actors, started and open (reused when alive under the same name)."""
    import ray

    placed = Placed()
    for name, build_dir, manifest in placed_builds(Path(settings.data_dir)):
        parts = place_build(placed, build_dir, manifest, replicas, alive_nodes, settings.max_inflight_requests)
        log.info("collection %s: %d shard(s) x %d replicas", name, parts, replicas)
    ray.get([actor.ready.remote() for actors in placed.actors.values() for actor in actors],
            timeout=REPLICA_START_TIMEOUT_S)
    return placed


def place_build(placed: Placed, build_dir: Path, manifest: Any, replicas: int, alive_nodes: int,
                max_concurrency: int) -> int:
    """Start (or find, by name) the replica actors of every shard of one build into ``placed``;
    returns its shard count. The actors open their shard on start; ``ready`` answers once open."""
    import ray

    actor_class = ray.remote(ShardReplica)
    parts = shard_parts(manifest)
    for index, faiss_info in parts:
        key = shard_key(build_dir, index)
        where = _strategy(key, replicas, alive_nodes, placed)
        placed.actors[key] = [actor_class.options(
            name=replica_name(key, r), namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            max_restarts=-1, max_concurrency=max_concurrency, num_cpus=SHARD_REPLICA_CPUS,
            scheduling_strategy=where(r)).remote(str(build_dir), index, faiss_info) for r in range(replicas)]
    return len(parts)


def place_published_build(build_dir: Path, manifest: Any, replicas: int, max_concurrency: int) -> dict[str, list[str]]:
    """From inside the ingress: replicas for a complete build published after start-up (a re-index, a
    new json_path), placed like the others; returns the replica names of each of its shards."""
    import ray

    placed = Placed()
    alive = sum(1 for node in ray.nodes() if node.get("Alive"))
    place_build(placed, build_dir, manifest, replicas, alive, max_concurrency)
    ray.get([actor.ready.remote() for actors in placed.actors.values() for actor in actors],
            timeout=REPLICA_START_TIMEOUT_S)
    log.info("placed %s: %d shard(s) x %d replicas", build_dir, len(placed.actors), replicas)
    return {key: [replica_name(key, r) for r in range(len(actors))] for key, actors in placed.actors.items()}


def _collection_and_build(key: str) -> tuple[str, str] | None:
    """(collection, build id) of a :func:`service.cluster.deployments.shard_key`; build ids and shard
    indices never contain ``--``, so the split is from the right (collection names may)."""
    parts = key.rsplit("--", 2)
    return (parts[0], parts[1]) if len(parts) == 3 else None


def retire_replaced(collection: str, build_id: str) -> list[str]:
    """Remove the replicas and placement groups of ``collection``'s builds older than ``build_id``
    (build ids sort by creation time, ``publish.new_build_id``: a newer build placed meanwhile
    keeps its replicas); returns the shard keys retired."""
    import ray
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

    def replaced(key: str) -> bool:
        owner = _collection_and_build(key)
        return owner is not None and owner[0] == collection and owner[1] < build_id

    retired = set()
    for name in ray.util.list_named_actors():
        if name.startswith("shard--") and replaced(key := name[len("shard--"):].rsplit("--r", 1)[0]):
            try:
                ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
            except ValueError:  # gone meanwhile
                pass
            retired.add(key)
    for group_id, info in placement_group_table().items():
        name = info.get("name") or ""
        if name.startswith("pg--") and replaced(name[len("pg--"):]) and info.get("state") != "REMOVED":
            remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group_id))))
    if retired:
        log.info("retired the replicas of %d shard(s) of %s's replaced builds", len(retired), collection)
    return sorted(retired)


def remove_replicas() -> None:
    """Kill every shard replica actor of the namespace and remove their placement groups: those placed
    at start-up and those the ingress placed for builds published later."""
    import ray
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

    for name in ray.util.list_named_actors():
        if name.startswith("shard--"):
            try:
                ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
            except ValueError:  # gone meanwhile
                pass
    for group_id, info in placement_group_table().items():
        if (info.get("name") or "").startswith("pg--") and info.get("state") != "REMOVED":
            remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group_id))))


def cluster_application(settings: Settings, replicas: dict[str, list[Any]]) -> Any:
    """The bound Serve application: the ingress, given every shard's replica actor names."""
    from ray import serve
    from ray._common.constants import HEAD_NODE_RESOURCE_NAME

    names = {key: [replica_name(key, r) for r in range(len(actors))] for key, actors in replicas.items()}
    ingress = serve.deployment(serve.ingress()(Ingress)).options(
        name="ingress", num_replicas=1, max_ongoing_requests=settings.max_inflight_requests,
        ray_actor_options={"num_cpus": INGRESS_CPUS, "resources": {HEAD_NODE_RESOURCE_NAME: 0.001}})
    settings_dict = settings.model_dump(mode="json", exclude={"ray_address"})
    settings_dict["data_dir"] = str(Path(settings.data_dir).resolve())
    settings_dict["corpus_roots"] = [str(Path(r).resolve()) for r in settings.corpus_roots]
    return ingress.bind(settings_dict, names, settings.ray_replicas)


def serving_address(settings: Settings) -> tuple[str, int]:
    """Where Serve's proxy listens. Its HTTP options belong to the cluster: when Serve was already
    running with others, those stay in force, and the operator is told so rather than left
    polling a port nothing listens on."""
    from ray.serve.context import _get_global_client

    config = _get_global_client().http_config
    if (config.host, config.port) != (settings.host, settings.port):
        log.warning("Ray Serve already runs on this cluster at %s:%d; --host/--port %s:%d are ignored "
                    "(Serve's HTTP options are cluster-wide)", config.host, config.port, settings.host, settings.port)
    return config.host, config.port


def run_cluster(settings: Settings) -> None:
    """Start the shard replicas and the Serve application on the cluster at ``settings.ray_address``
    and serve until SIGINT/SIGTERM, then remove both (Serve itself stays up for the cluster's
    other applications)."""
    import ray
    from ray import serve

    ray.init(address=settings.ray_address, namespace=NAMESPACE, ignore_reinit_error=True, log_to_driver=False,
             configure_logging=False)
    alive = sum(1 for node in ray.nodes() if node.get("Alive"))
    serve.start(proxy_location="HeadOnly", http_options={"host": settings.host, "port": settings.port})
    host, port = serving_address(settings)
    placed = start_replicas(settings, settings.ray_replicas, alive)
    serve.run(cluster_application(settings, placed.actors), name=APP_NAME, route_prefix="/", blocking=False)
    log.warning("ragmem on Ray Serve at http://%s:%d (%d nodes, %d replicas per shard, data %s)", host, port,
                alive, settings.ray_replicas, Path(settings.data_dir).resolve())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.warning("stopping: deleting the Serve application %s and its shard replicas", APP_NAME)
    serve.delete(APP_NAME)
    remove_replicas()
