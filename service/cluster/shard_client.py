"""A shard reached through its replica actors, with failover.

Each shard of a served build is held by R replica actors (``service.cluster.app``). A call goes
to one replica, round-robin; when its replica is lost (the node died, the actor is restarting)
the call fails with one of Ray's actor errors, that replica is set aside for
``SUSPECT_SECONDS`` and the call is sent to the next one, until ``RETRY_SECONDS`` have passed,
so the query that hit a dead replica is answered by a live one and the client never sees the
failure. Errors raised by the shard's own code are not retried.

Plain actor calls, not Ray Serve handles: on this project's 2-core machine a Serve handle call
took 6.0 ms p50 against 1.9 ms for an actor call, and a query makes five rounds of shard calls
(docs/BENCHMARKS.md, bench-cluster; with Serve deployments per shard a 4-shard query took 211 ms
p50 there, with actors 84 ms).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any, Sequence

log = logging.getLogger("ragmem.service.cluster.shard_client")

NAMESPACE = "ragmem"
"""Ray namespace of the replica actors (named, so every ingress process finds the same ones)."""
RETRY_SECONDS = 30.0
"""How long a shard call keeps being retried on other replicas before the request fails."""
SUSPECT_SECONDS = 5.0
"""How long a replica whose call failed is skipped (a restarted actor is tried again after it)."""
CALL_TIMEOUT_SECONDS = 60.0
RETRY_PAUSE_SECONDS = 0.05


def _replica_lost_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors that mean "this replica or its node is gone", not "the call itself failed"."""
    from ray import exceptions

    names = ("ActorDiedError", "ActorUnavailableError", "RayActorError", "NodeDiedError", "WorkerCrashedError",
             "ObjectLostError", "OwnerDiedError", "LocalRayletDiedError", "ActorUnschedulableError")
    return tuple(getattr(exceptions, name) for name in names if hasattr(exceptions, name))


class _Call:
    """One submitted shard call; ``result`` waits for it and resubmits while replicas are being lost."""

    def __init__(self, client: "RayShardClient", method: str, args: tuple) -> None:
        self.client, self.method, self.args = client, method, args
        self.replica, self.ref = client.send(method, args)

    def result(self) -> Any:
        import ray

        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                return ray.get(self.ref, timeout=CALL_TIMEOUT_SECONDS)
            except self.client.lost_errors as exc:
                self.client.suspect(self.replica)
                if time.monotonic() > deadline:
                    raise
                log.warning("shard %s: replica %d lost during %s (%s); retrying on another", self.client.name,
                            self.replica, self.method, type(exc).__name__)
                time.sleep(RETRY_PAUSE_SECONDS)
                self.replica, self.ref = self.client.send(self.method, self.args)


class RayShardClient:
    """:class:`indexing.sharded_collection.ShardClient` over a shard's named replica actors."""

    def __init__(self, name: str, actor_names: Sequence[str]) -> None:
        self.name = name
        self.actor_names = list(actor_names)
        self._actors: list[Any] = [None] * len(self.actor_names)
        self._suspect_until = [0.0] * len(self.actor_names)
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self.lost_errors = _replica_lost_errors()

    def _actor(self, replica: int) -> Any:
        import ray

        if self._actors[replica] is None:
            self._actors[replica] = ray.get_actor(self.actor_names[replica], namespace=NAMESPACE)
        return self._actors[replica]

    def suspect(self, replica: int) -> None:
        with self._lock:
            self._suspect_until[replica] = time.monotonic() + SUSPECT_SECONDS

    def _pick(self) -> int:
        """The next replica in turn that is not set aside (all set aside: the next in turn anyway)."""
        now = time.monotonic()
        with self._lock:
            start = next(self._turn)
            order = [(start + i) % len(self.actor_names) for i in range(len(self.actor_names))]
            healthy = [r for r in order if self._suspect_until[r] <= now]
            return (healthy or order)[0]

    def send(self, method: str, args: tuple) -> tuple[int, Any]:
        replica = self._pick()
        try:
            return replica, self._actor(replica).call.remote(method, *args)
        except ValueError:  # not (yet) registered under its name: try the next replica
            self.suspect(replica)
            replica = self._pick()
            return replica, self._actor(replica).call.remote(method, *args)

    def submit(self, method: str, *args: Any) -> _Call:
        return _Call(self, method, args)
