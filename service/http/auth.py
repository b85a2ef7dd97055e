"""Bearer-token checks: writes need ``RAGMEM_API_KEY`` when it is set; reads need a key only
when ``RAGMEM_READ_API_KEY`` is set (the write key is accepted for reads too); ``/metrics`` needs
the read key too unless ``RAGMEM_METRICS_AUTH=none``.

Tokens are compared as bytes: ``hmac.compare_digest`` raises on non-ASCII ``str``, which turned a
non-ASCII header (or any request to a server with a non-ASCII key) into a 500.
"""

from __future__ import annotations

import hmac
from typing import Callable

from fastapi import Request

from indexing.settings import Settings
from service.collections.errors import Unauthorized


def _header_bytes(value: str) -> bytes:
    """The bytes the client sent: Starlette decodes header values as latin-1, which this undoes."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # built in-process with characters latin-1 cannot hold
        return value.encode("utf-8")


def presents(request: Request, keys: list[str]) -> bool:
    """Whether the request carries one of ``keys`` as its bearer token."""
    scheme, _, token = _header_bytes(request.headers.get("authorization", "")).partition(b" ")
    token = token.strip()
    return scheme.lower() == b"bearer" and any(hmac.compare_digest(token, key.encode("utf-8")) for key in keys)


def _check(request: Request, keys: list[str], what: str) -> None:
    if presents(request, keys):
        return
    header = request.headers.get("authorization", "")
    raise Unauthorized(f"{what} need 'Authorization: Bearer <key>'" + (" (the key given is wrong)" if header else ""),
                       {"WWW-Authenticate": 'Bearer realm="ragmem"'})


def require_writer(settings: Settings) -> Callable[[Request], None]:
    def dependency(request: Request) -> None:
        if settings.api_key:
            _check(request, [settings.api_key], "writes")

    return dependency


def require_reader(settings: Settings) -> Callable[[Request], None]:
    def dependency(request: Request) -> None:
        if settings.read_api_key:
            _check(request, [k for k in (settings.read_api_key, settings.api_key) if k], "reads")

    return dependency


def may_build(settings: Settings, request: Request) -> bool:
    """Whether this request may start a json_path build (``RAGMEM_PATH_BUILD_AUTH``).

    With ``read``, the read key or the write key opens builds; with ``write``, only the write key.
    It fails closed: a level none of whose keys is configured lets no request build.
    """
    if settings.path_build_auth == "none":
        return True
    keys = [settings.api_key] if settings.path_build_auth == "write" else [settings.read_api_key, settings.api_key]
    keys = [key for key in keys if key]
    return bool(keys) and presents(request, keys)


def require_metrics_reader(settings: Settings) -> Callable[[Request], None]:
    """``/metrics`` reveals collection names and traffic, so by default it is guarded like a read."""
    if settings.metrics_auth == "read":
        return require_reader(settings)

    def open_to_all(_: Request) -> None:
        return None

    return open_to_all
