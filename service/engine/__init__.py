"""The query engine: retrieval, fusion, context packing and subgraphs, apart from any transport.

HTTP (``service.http.app``), MCP (``service.mcp_server``), the CLI and the eval harness call these
functions and only serialise what they return; no ranking logic lives in a transport, and
nothing here imports one.

Layout: ``limits`` (modes, default mode, request bounds), ``model`` (value types),
``requests`` (validation, SearchParams of a request), ``filters``, ``ranking`` (legs and
fusion), ``fusion`` (the fusion rules), ``graph`` (graph channel), ``diversity`` (which
candidates to return), ``retrieval`` (``search``), ``context``, ``subgraph`` and ``stages``
(the optional per-stage timer).
"""

from service.engine.context import ContextBlock, ContextResult, get_context
from service.engine.graph import graph_for_query
from service.engine.limits import DEFAULT_MODE, GRAPH_MODES, LIMITS, MODES, Bound, QueryLimits
from service.engine.model import Hit, InvalidQuery, SearchFilters, SearchParams, SearchResult, citation
from service.engine.requests import build_params, check_bound
from service.engine.retrieval import search
from service.engine.stages import StageLog, StageTimer
from service.engine.subgraph import subgraph_for

__all__ = [
    "DEFAULT_MODE", "GRAPH_MODES", "LIMITS", "MODES", "Bound", "ContextBlock", "ContextResult", "Hit",
    "InvalidQuery", "QueryLimits", "SearchFilters", "SearchParams", "SearchResult", "StageLog", "StageTimer",
    "build_params", "check_bound", "citation", "get_context", "graph_for_query", "search", "subgraph_for",
]
