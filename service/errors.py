"""Errors a caller can act on, each with the HTTP status the transports answer it with."""

from __future__ import annotations


class ServiceError(Exception):
    status = 500

    def __init__(self, message: str, headers: dict[str, str] | None = None, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


class BadCorpus(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class CorpusTooLarge(ServiceError):
    status = 413


class Unprocessable(ServiceError):
    status = 422


class Busy(ServiceError):
    """Too much work in flight: try again after ``Retry-After``."""

    status = 503


class Building(ServiceError):
    status = 503


class QuotaExceeded(ServiceError):
    """json_path builds may not create more collections or use more disk than the operator allows."""

    status = 507
