"""Errors a caller can act on, raised by the registry, the corpus gate and the write paths.

Plain domain errors: no transport's codes in them. HTTP maps each class to a status code
(``service.http.errors.STATUS``); MCP turns them into tool-error text (``service.mcp_server``).
``headers`` carries transport-neutral hints such as ``Retry-After``, ``extra`` structured detail.
"""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, message: str, headers: dict[str, str] | None = None, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


class BadCorpus(ServiceError):
    """The corpus or request body cannot be used as given (empty, malformed, too many documents)."""


class Unauthorized(ServiceError):
    """No valid credentials for the operation."""


class Forbidden(ServiceError):
    """A json_path the server will not read: outside the allowed roots, into the data root, or disabled."""


class NotFound(ServiceError):
    """No such collection, corpus file, document or running build."""


class CorpusTooLarge(ServiceError):
    """A corpus over the operator's byte or document limits."""


class Unprocessable(ServiceError):
    """Well-formed but refused content (e.g. every document of a write batch invalid)."""


class Busy(ServiceError):
    """Too much work in flight: try again after ``Retry-After``."""


class Building(ServiceError):
    """The collection is being built; try again after ``Retry-After``."""


class QuotaExceeded(ServiceError):
    """json_path builds may not create more collections or use more disk than the operator allows."""
