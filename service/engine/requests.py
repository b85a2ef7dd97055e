"""Checking a request against ``QUERY_LIMITS`` and turning it into SearchParams, in one place.

HTTP (after pydantic) and MCP (which has no schema bounds) both build their SearchParams here,
so an argument is accepted or refused, with the same message, whichever transport carried it.
"""

from __future__ import annotations

from service.engine.limits import LIMITS, MODES, Bound
from service.engine.model import InvalidQuery, SearchFilters, SearchParams


def check_query(query: str, max_chars: int) -> None:
    """Refuse empty, blank and over-long queries (``max_chars``: ``settings.max_query_chars``)."""
    if not query or not query.strip():
        raise InvalidQuery("query must not be empty")
    if len(query) > max_chars:
        raise InvalidQuery(f"query is too long ({len(query)} characters; the limit is {max_chars})")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise InvalidQuery(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")


def check_bound(name: str, value: int, bound: Bound) -> None:
    if not bound.holds(value):
        raise InvalidQuery(f"{name} must be between {bound.low} and {bound.high} (got {value})")


def build_params(query: str, *, top_k: int, diverse: bool, min_docs: int, max_per_doc: int, mode: str,
                 max_query_chars: int, filters: SearchFilters | None = None) -> SearchParams:
    """SearchParams of a transport request, or InvalidQuery naming the first argument out of bounds.

    Checked before the collection is resolved, so a bad request never waits for a json_path build.
    """
    check_query(query, max_query_chars)
    check_bound("top_k", top_k, LIMITS.top_k)
    check_bound("min_docs", min_docs, LIMITS.min_docs)
    check_bound("max_per_doc", max_per_doc, LIMITS.max_per_doc)
    check_mode(mode)
    return SearchParams(top_k=top_k, diverse=diverse, min_docs=min_docs, max_per_doc=max_per_doc, mode=mode,
                        filters=filters, max_query_chars=max_query_chars)
