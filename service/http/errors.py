"""How the HTTP transport answers the domain's errors: the status code table and the handlers.

``service.collections.errors`` and the engine know nothing of HTTP; this table is the one place a
``NotFound`` becomes a 404. MCP maps the same errors to tool-error text instead
(``service.mcp_server``). The request-limit middleware (``service.http.limits``) answers its own
413/408/503 before any of this runs.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.engine import InvalidQuery
from service.collections.errors import (BadCorpus, Building, Busy, CorpusTooLarge, Forbidden, NotFound, QuotaExceeded,
                            ServiceError, Unauthorized, Unprocessable)

STATUS: dict[type[ServiceError], int] = {
    BadCorpus: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    CorpusTooLarge: 413,
    Unprocessable: 422,
    Busy: 503,
    Building: 503,
    QuotaExceeded: 507,
}
"""Status of each error class; a subclass answers as its nearest listed ancestor, and an
unlisted ServiceError as 500."""


def status_of(exc: ServiceError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors with their status, engine refusals as 422, and pydantic errors as a plain list."""

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError):
        return JSONResponse({"detail": exc.message, **exc.extra}, status_code=status_of(exc), headers=exc.headers)

    @app.exception_handler(InvalidQuery)
    async def invalid_query(_: Request, exc: InvalidQuery):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)
