"""A shard reached through its Ray Serve replicas, with failover.

When the node holding a replica dies, calls on that replica fail with one of Ray's actor errors;
Serve notices and routes later calls to the surviving replicas (and its controller starts a
replacement when the cluster has room). A failed call is therefore submitted again, up to
``RETRY_SECONDS``, so the query that hit the dead replica is answered by a live one and the
client never sees the failure. Errors raised by the shard's own code are not retried.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("ragmem.service.cluster.shard_client")

RETRY_SECONDS = 30.0
"""How long a shard call keeps being retried on other replicas before the request fails (Serve
takes a few seconds to see a node's death; a replacement replica needs a model load)."""
RETRY_PAUSE_SECONDS = 0.05
CALL_TIMEOUT_SECONDS = 60.0


def _replica_lost_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors that mean "this replica or its node is gone", not "the call itself failed"."""
    from ray import exceptions

    names = ("ActorDiedError", "ActorUnavailableError", "RayActorError", "NodeDiedError", "WorkerCrashedError",
             "ObjectLostError", "OwnerDiedError", "LocalRayletDiedError", "ActorUnschedulableError")
    found = tuple(getattr(exceptions, name) for name in names if hasattr(exceptions, name))
    try:
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
        found += (BackPressureError, DeploymentUnavailableError)
    except ImportError:  # pragma: no cover - older Serve
        pass
    return found


class _Call:
    """One submitted shard call; ``result`` waits for it and resubmits while replicas are being lost."""

    def __init__(self, client: "RayShardClient", method: str, args: tuple) -> None:
        self.client, self.method, self.args = client, method, args
        self.response = client.send(method, args)

    def result(self) -> Any:
        deadline = time.monotonic() + RETRY_SECONDS
        lost = self.client.lost_errors
        while True:
            try:
                return self.response.result(timeout_s=CALL_TIMEOUT_SECONDS)
            except lost as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("shard %s: a replica was lost during %s (%s); retrying on another", self.client.name,
                            self.method, type(exc).__name__)
                time.sleep(RETRY_PAUSE_SECONDS)
                self.response = self.client.send(self.method, self.args)


class RayShardClient:
    """:class:`indexing.sharded_collection.ShardClient` over a Serve deployment's handle."""

    def __init__(self, name: str, handle: Any) -> None:
        self.name = name
        self.handle = handle
        self.lost_errors = _replica_lost_errors()

    def send(self, method: str, args: tuple) -> Any:
        return self.handle.call.remote(method, *args)

    def submit(self, method: str, *args: Any) -> _Call:
        return _Call(self, method, args)
