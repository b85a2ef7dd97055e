"""What a query asks for and what it gets back: the engine's public value types.

Plain dataclasses with no transport in them, so HTTP, MCP, the CLI and the eval harness all
speak the same objects and only their serialisations differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphmem.retrieve import GraphResult
from indexing.store import ChunkRecord
from service.engine.limits import DEFAULT_MODE, LIMITS


class InvalidQuery(ValueError):
    """A request the engine will not run (empty or too long query, unknown mode, out-of-range
    argument); the message says what to change. HTTP answers it with 422, MCP as a tool error."""


@dataclass
class SearchFilters:
    doc_ids: list[str] | None = None
    title_contains: str | None = None
    url_contains: str | None = None
    metadata: dict[str, object] | None = None

    def is_empty(self) -> bool:
        return not (self.doc_ids or self.title_contains or self.url_contains or self.metadata)


@dataclass
class SearchParams:
    top_k: int = LIMITS.top_k.default
    diverse: bool = True
    min_docs: int = LIMITS.min_docs.default
    max_per_doc: int = LIMITS.max_per_doc.default
    mode: str = DEFAULT_MODE
    filters: SearchFilters | None = None
    pool: int | None = None
    """Candidates taken from each leg before fusion; default max(100, 10 * top_k)."""
    max_query_chars: int = LIMITS.max_query_chars
    """Longer queries raise InvalidQuery; the transports pass ``settings.max_query_chars``."""


def citation(title: str, chunk_index: int) -> str:
    """The agents' citation form: the title's first 50 characters and the chunk index."""
    return f'[long_context: "{title[:50]}", chunk {chunk_index}]'


@dataclass
class Hit:
    rank: int
    record: ChunkRecord
    score: float
    scores: dict[str, float]

    @property
    def citation(self) -> str:
        return citation(self.record.title, self.record.chunk_index)


@dataclass
class SearchResult:
    query: str
    collection: str
    build_id: str
    mode: str
    hits: list[Hit]
    took_ms: float
    candidates: int = 0
    graph: GraphResult | None = None
    """The graph channel's linked triples and entities (graph modes only)."""
    requested_mode: str = ""
    """The mode asked for; ``mode`` differs while a leg it needs is still being built."""
    legs_used: tuple[str, ...] = ()
    """The legs that ranked these hits (``limits.MODE_LEGS`` of ``mode``)."""
