"""The shard replica actor and the HTTP ingress (a Ray Serve deployment).

``ShardReplica`` holds one shard of one build (:class:`indexing.sharded_collection.ShardService`,
the same object single-node serving uses) and answers its calls by name; it runs as a named Ray
actor that Ray restarts when it dies. ``Ingress`` is the unchanged FastAPI app of ``ragmem
serve``; in it, builds reach their shards through the replica actors
(:mod:`service.cluster.shard_client`), so the engine, fusion and every response are the
single-node ones.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("ragmem.service.cluster.deployments")


class ShardReplica:
    """One shard of one build, opened once per replica."""

    def __init__(self, build_dir: str, index: int, faiss_info: dict | None) -> None:
        from indexing.sharded_collection import ShardService

        self.service = ShardService(Path(build_dir), index, faiss_info)
        self.where = f"{Path(build_dir).parent.parent.name}/{Path(build_dir).name} shard {index}"

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.service, method)(*args)

    def ready(self) -> int:
        """Chunks held (the shard is open once this answers)."""
        return self.service.store.n_chunks


def shard_key(build_dir: Path | str, index: int) -> str:
    """How a shard deployment is named and found: ``<collection>--<build id>--<shard>`` (``whole``
    for an unsharded build served as one shard)."""
    build = Path(build_dir)
    return f"{build.parent.parent.name}--{build.name}--{'whole' if index < 0 else index}"


class Ingress:
    """The HTTP API, with the MCP tools at ``/mcp``; ``shards`` maps :func:`shard_key` to the names
    of the shard's replica actors."""

    def __init__(self, settings: dict, shards: dict[str, list[str]], replicas_per_shard: int = 1) -> None:
        self.settings_dict = settings
        self.shards = shards
        self.replicas_per_shard = replicas_per_shard

    def __serve_build_asgi_app__(self):
        from indexing.settings import Settings
        from indexing.sharded_collection import open_local_shard, use_shard_opener
        from service.cluster.shard_client import RayShardClient
        from service.collections.warmup import warm_up
        from service.http.app import create_app
        from service.mcp_server import mount_streamable_http

        from service.cluster.app import place_published_build, placed_builds, retire_replaced, shard_parts

        replicas = self.shards
        settings = Settings(**self.settings_dict)
        placing = threading.Lock()
        unplaced: set[str] = set()  # placements that failed and were reported; retried at each look

        def place_if_new(build_dir: Path, index: int, manifest) -> None:
            """Replicas for a complete build published after the app was deployed; one placement
            per build, however many requests (and the watcher) reach it at once."""
            key = shard_key(build_dir, index)
            with placing:
                if key in replicas or not manifest.complete:
                    return
                try:
                    replicas.update(place_published_build(build_dir, manifest, self.replicas_per_shard,
                                                          settings.max_inflight_requests))
                except Exception as exc:  # noqa: BLE001 - any Ray failure: the ingress still answers
                    if key not in unplaced:
                        log.warning("could not place %s on the cluster (%s); reading it in the ingress", key, exc)
                    unplaced.add(key)
                else:
                    unplaced.discard(key)
                    retire_later(build_dir)

        def opener(build_dir: Path, index: int, manifest):
            place_if_new(build_dir, index, manifest)  # queried before the watcher's next look
            key = shard_key(build_dir, index)
            names = replicas.get(key)
            if names is None:  # tiers still pending, or placement failed: read it here
                return open_local_shard(build_dir, index, manifest)
            return RayShardClient(key, names)

        def watch_published() -> None:
            """Place what was published since the last look, so a re-index moves to its new replicas
            (and the old ones retire) without waiting for a query, and its first query pays no placement."""
            while True:
                time.sleep(settings.ray_place_every_s)
                try:
                    for _, build_dir, manifest in placed_builds(Path(settings.data_dir)):
                        place_if_new(build_dir, shard_parts(manifest)[0][0], manifest)
                except Exception as exc:  # noqa: BLE001 - a data root mid-rename; the next look retries
                    log.warning("looking for newly published builds failed: %s", exc)

        def retire_later(build_dir: Path) -> None:
            """The builds this one replaced lose their replicas once queries already on them are done."""
            def retire() -> None:
                try:
                    for key in retire_replaced(build_dir.parent.parent.name, build_dir.name):
                        replicas.pop(key, None)  # a late reopen of a retired build reads it here
                except Exception as exc:  # noqa: BLE001 - the replicas then stay until shutdown
                    log.warning("could not retire the replaced builds of %s: %s", build_dir.parent.parent.name, exc)

            timer = threading.Timer(settings.ray_retire_after_s, retire)
            timer.daemon = True
            timer.start()

        use_shard_opener(opener)
        if settings.ray_place_every_s > 0:
            threading.Thread(target=watch_published, name="ragmem-place-published", daemon=True).start()
        app = create_app(settings)
        mount_streamable_http(app, app.state.registry, settings.host)
        warm_up(settings, app.state.registry)
        return app
