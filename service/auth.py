"""Bearer-token checks: writes need ``RAGMEM_API_KEY`` when it is set; reads need a key only
when ``RAGMEM_READ_API_KEY`` is set (the write key is accepted for reads too)."""

from __future__ import annotations

import hmac
from typing import Callable

from fastapi import Request

from indexing.settings import Settings
from service.registry import ServiceError


class Unauthorized(ServiceError):
    status = 401


def _check(request: Request, keys: list[str], what: str) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and any(hmac.compare_digest(token.strip(), key) for key in keys):
        return
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
