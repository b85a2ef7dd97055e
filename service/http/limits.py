"""Per-request limits at the ASGI edge, so an anonymous client cannot exhaust memory or workers.

* 413 when a body is larger than ``max_request_bytes``: at once from ``Content-Length``, or while a
  chunked body streams in (bytes are counted as they are received, so nothing past the limit is
  ever buffered);
* 408 when the body has not fully arrived ``request_body_timeout_seconds`` after the request head;
* 503 + ``Retry-After`` as soon as ``max_inflight_requests`` requests are already being worked on,
  instead of queueing every client behind the busy ones (``/healthz`` is exempt, so a saturated
  process still reports itself alive).

Checks run cheapest first: a header scan, then a counter, and only admitted requests get their
``receive`` wrapped. Plain ASGI rather than ``BaseHTTPMiddleware`` (see ``service.http.metrics``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Awaitable, Callable, MutableMapping

log = logging.getLogger("ragmem.service.http.limits")

Message = MutableMapping[str, object]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping, Receive, Send], Awaitable[None]]

DISCONNECT: dict = {"type": "http.disconnect"}
EXEMPT_PATHS = frozenset({"/healthz"})


def detail_body(detail: str) -> bytes:
    """The JSON error body every ragmem error has, ``{"detail": ...}``."""
    return json.dumps({"detail": detail}).encode("utf-8")


async def send_error(send: Send, status: int, detail: str, *, close: bool = False,
                     headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """A complete JSON error response; ``close`` when the rest of the request will not be read."""
    body = detail_body(detail)
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    if close:
        head.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def declared_length(scope: MutableMapping) -> int | None:
    """The request's Content-Length, or None when absent (chunked) or unparsable (the parser rejects those)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _GuardedExchange:
    """One admitted request: counts and times its body, and answers 413/408 itself when it must.

    The 413/408 is sent from inside ``receive`` and the application then sees a disconnect; any
    later reply the application attempts (FastAPI turns the disconnect into a 400) is dropped, so
    the client and the metrics see exactly one response.
    """

    def __init__(self, receive: Receive, send: Send, max_bytes: int, timeout: float) -> None:
        self._receive, self._send = receive, send
        self.max_bytes = max_bytes
        self.deadline = asyncio.get_running_loop().time() + timeout
        self.received = 0
        self.body_done = False
        self.response_started = False
        self.answered = False

    async def receive(self) -> Message:
        if self.answered:
            return DISCONNECT
        if self.body_done:  # e.g. a streaming response waiting for the client to disconnect: no deadline
            return await self._receive()
        remaining = self.deadline - asyncio.get_running_loop().time()
        try:
            message = await asyncio.wait_for(self._receive(), timeout=max(remaining, 0.0))
        except asyncio.TimeoutError:
            return await self._refuse(408, "the request body did not arrive in time")
        if message["type"] != "http.request":
            self.body_done = True
            return message
        self.received += len(message.get("body", b""))
        if self.received > self.max_bytes:
            return await self._refuse(413, f"request body is larger than {self.max_bytes} bytes")
        self.body_done = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self.response_started = True
        await self._send(message)

    async def _refuse(self, status: int, detail: str) -> Message:
        log.info("refused a request with %d: %s", status, detail)
        if not self.response_started:
            self.answered = True
            await send_error(self._send, status, detail, close=True)
        return DISCONNECT


class RequestLimits:
    """ASGI middleware enforcing body size, body time and the in-flight cap of one process."""

    def __init__(self, app: ASGIApp, max_request_bytes: int, body_timeout_seconds: float,
                 max_inflight_requests: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.body_timeout_seconds = body_timeout_seconds
        self.max_inflight_requests = max_inflight_requests
        self.inflight = 0  # one event loop per process, so a plain counter is exact

    async def __call__(self, scope: MutableMapping, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = declared_length(scope)
        if length is not None and length > self.max_request_bytes:
            await send_error(send, 413, f"request body is larger than {self.max_request_bytes} bytes", close=True)
            return
        if scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.max_inflight_requests:
            await send_error(send, 503, f"server busy ({self.max_inflight_requests} requests in flight); retry",
                             headers=((b"retry-after", b"1"),))
            return
        self.inflight += 1
        try:
            await self._guarded(scope, receive, send)
        finally:
            self.inflight -= 1

    async def _guarded(self, scope: MutableMapping, receive: Receive, send: Send) -> None:
        exchange = _GuardedExchange(receive, send, self.max_request_bytes, self.body_timeout_seconds)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception:
            if not exchange.answered:
                raise
            log.debug("ignored the application's error on a request already answered", exc_info=True)
