"""Serving over a Ray cluster: the same HTTP API through Ray Serve, each shard held by replica actors.

``deployments`` (the shard replica and the ingress as Ray Serve deployments), ``shard_client``
(reaching a shard's replicas, with retries when one dies), ``app`` (building and running the
Serve application for ``ragmem serve --ray-address``). Only this package imports Ray Serve.
"""
