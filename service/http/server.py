"""Running the API under uvicorn with every connection bounded in time.

uvicorn closes a keep-alive connection that stays idle after a response (``timeout_keep_alive``),
but a connection that sends nothing, or only part of a request head, is kept open forever: a
handful of such clients holds sockets and file descriptors indefinitely (slowloris).
``HeaderTimeoutProtocol`` closes those after ``request_header_timeout_seconds``; the body phase is
bounded by ``service.http.limits`` and the idle phase by ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from indexing.settings import Settings
from service.http.limits import detail_body

log = logging.getLogger("ragmem.service.http.server")

WORKER_APP_FACTORY = "service.http.app:app_from_environment"


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a deadline on each request head.

    The timer starts when the connection opens, when bytes arrive on a connection with no request
    in progress, and when a new request begins; it stops once the head is complete.
    """

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Bytes that begin no request (stray CRLFs, the unread rest of a body already answered) still
        # cancel uvicorn's keep-alive timer, so they must not keep the connection open for free.
        if self._header_timer is None and self._idle() and self.parser is not None:
            self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout_expired)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:  # closed, or now a websocket
            return
        log.info("closing a connection from %s: no complete request head within %.1fs", self.client,
                 self.header_timeout)
        if not self._idle():  # a pipelined head stalled behind a response: finish that response, then close
            self.cycle.keep_alive = False
            return
        self.transport.write(self._timeout_response())
        self.transport.close()

    def _timeout_response(self) -> bytes:
        body = detail_body(f"no complete request head within {self.header_timeout:g}s")
        lines = [STATUS_LINE[408]]
        lines += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        lines += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body),
                  b"connection: close\r\n", b"\r\n", body]
        return b"".join(lines)


def protocol_for(settings: Settings) -> functools.partial:
    """The protocol uvicorn should build per connection; a partial pickles, so ``--workers`` gets it too."""
    return functools.partial(HeaderTimeoutProtocol, header_timeout=settings.request_header_timeout_seconds)


def run_http(settings: Settings, log_level: str) -> None:
    """Serve the API on ``settings.host:port`` until interrupted.

    ``limit_concurrency`` stays None: uvicorn's own limit answers a bare 503 and counts connections,
    whereas ``service.http.limits`` counts requests and answers a JSON 503 with ``Retry-After``.
    """
    import uvicorn

    options: dict[str, Any] = dict(host=settings.host, port=settings.port, log_level=log_level,
                                   http=protocol_for(settings), timeout_keep_alive=settings.keep_alive_seconds,
                                   limit_concurrency=None)
    if settings.workers == 1:
        from service.http.app import create_app
        from service.collections.warmup import warm_up

        app = create_app(settings)
        warm_up(settings, app.state.registry)
        uvicorn.run(app, **options)
        return
    # Worker processes rebuild the app from the environment, so hand them the effective settings.
    os.environ["RAGMEM_DATA_DIR"] = str(Path(settings.data_dir).resolve())
    os.environ["RAGMEM_CORPUS_ROOTS"] = ":".join(str(Path(r).resolve()) for r in settings.corpus_roots)
    uvicorn.run(WORKER_APP_FACTORY, factory=True, workers=settings.workers, **options)
