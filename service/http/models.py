"""Request and response models of the HTTP API (the only place pydantic models live).

Modes, the default mode and every bound come from ``service.engine.limits``, the table MCP
validates against too. The query's ``max_length`` is the static default: the configured
``settings.max_query_chars`` is checked by the engine on each request.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, Field, field_validator, model_validator

from service.engine.limits import DEFAULT_MODE, LIMITS, MODES

MAX_QUERY_CHARS = LIMITS.max_query_chars
Mode = Literal[MODES]  # type: ignore[valid-type]  # Literal of the tuple's values


class Filters(BaseModel):
    doc_ids: Optional[list[str]] = Field(None, max_length=10_000, description="Only these document ids.")
    title_contains: Optional[str] = Field(None, max_length=500, description="Case-insensitive title substring.")
    url_contains: Optional[str] = Field(None, max_length=2000, description="Case-insensitive URL substring.")
    metadata: Optional[dict[str, Union[str, int, float, bool, None]]] = Field(
        None, description="Metadata fields that must be equal.")


class SearchRequest(BaseModel):
    query: str = Field(..., min_length=1, max_length=MAX_QUERY_CHARS,
                       description=f"The question; 1-{MAX_QUERY_CHARS} characters, not only whitespace.")
    collection: Optional[str] = Field(None, max_length=128, description="A published collection name.")
    json_path: Optional[str] = Field(None, max_length=4096,
                                     description="Path to a JSON corpus or legacy .chunks.db inside an allowed root; "
                                                 "indexed on first use.")
    top_k: int = Field(LIMITS.top_k.default, ge=LIMITS.top_k.low, le=LIMITS.top_k.high)
    diverse: bool = True
    min_docs: int = Field(LIMITS.min_docs.default, ge=LIMITS.min_docs.low, le=LIMITS.min_docs.high)
    max_per_doc: int = Field(LIMITS.max_per_doc.default, ge=LIMITS.max_per_doc.low, le=LIMITS.max_per_doc.high)
    mode: Mode = DEFAULT_MODE
    filters: Optional[Filters] = None
    format: Literal["json", "text"] = "json"
    include_content: bool = True
    include_subgraph: bool = Field(False, description="Add the evidence subgraph: the triples linked to the query, "
                                                      "each with the chunks (citations) supporting it.")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query must contain non-whitespace characters")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "SearchRequest":
        if bool(self.collection) == bool(self.json_path):
            raise ValueError("give exactly one of 'collection' or 'json_path'")
        return self


class ContextRequest(SearchRequest):
    max_tokens: int = Field(LIMITS.max_tokens.default, ge=LIMITS.max_tokens.low, le=LIMITS.max_tokens.high,
                            description="Token budget for the packed context.")


class SearchHit(BaseModel):
    rank: int
    citation: str
    doc_index: int
    chunk_index: int
    doc_id: str
    chunk_id: str
    title: str
    url: str
    start_char: int
    end_char: int
    content: Optional[str]
    score: float = Field(..., description="Fused score in [0, 1] (hybrid: logistic of the mean per-leg z-score "
                                          "over this query's candidates; 0.5 = an average candidate, 0.88 = two "
                                          "standard deviations above). Comparable within one query only.")
    scores: dict[str, float] = Field(..., description="Per-leg components: raw BM25, cosine and graph mass, their "
                                                      "z-scores, and the weights used.")


class SubgraphTriple(BaseModel):
    head: str
    relation: str
    tail: str
    score: float = Field(..., description="Cosine between the query and the triple's text embedding.")
    chunk_ids: list[str]
    citations: list[str]


class SubgraphEntity(BaseModel):
    name: str
    key: str
    kind: str
    score: float = Field(..., description="PageRank seed weight (linked-triple score / mentions), sums to 1.")


class Subgraph(BaseModel):
    triples: list[SubgraphTriple]
    entities: list[SubgraphEntity]


class PendingLeg(BaseModel):
    state: Literal["building", "queued", "failed", "stopped"] = Field(
        ..., description="building/queued: a build is adding this leg; failed: that build failed (see error); "
                         "stopped: no build is running (the next json_path request or `ragmem index` resumes it).")
    progress: float = Field(..., ge=0, le=1, description="Share of the leg's build done.")
    eta_seconds: Optional[float] = Field(..., description="Seconds until the leg is published; null: not "
                                                          "estimated yet.")
    error: Optional[str] = None


_MODE_DESCRIPTION = ("The mode answered: the requested one once its legs are published, before that the best "
                     "mode the published legs allow (hybrid+graph, hybrid, bm25).")
_LEGS_DESCRIPTION = "The legs that produced these results (bm25, dense, graph)."
_PENDING_DESCRIPTION = ("Legs of this collection still being built, with progress and ETA; empty once the "
                        "collection is complete. While it is not empty, results may be keyword-only.")


class SearchResponse(BaseModel):
    query: str
    collection: str
    build_id: str
    mode: str = Field(..., description=_MODE_DESCRIPTION)
    requested_mode: str
    legs_used: list[str] = Field(..., description=_LEGS_DESCRIPTION)
    pending: dict[str, PendingLeg] = Field(default_factory=dict, description=_PENDING_DESCRIPTION)
    took_ms: float
    results: list[SearchHit]
    subgraph: Optional[Subgraph] = None


class ContextBlockOut(BaseModel):
    citation: str
    doc_index: int
    doc_id: str
    title: str
    url: str
    first_chunk: int
    last_chunk: int
    start_char: int
    end_char: int
    tokens: int
    score: float
    text: str


class ContextResponse(BaseModel):
    query: str
    collection: str
    mode: str = Field(..., description=_MODE_DESCRIPTION)
    legs_used: list[str] = Field(..., description=_LEGS_DESCRIPTION)
    pending: dict[str, PendingLeg] = Field(default_factory=dict, description=_PENDING_DESCRIPTION)
    took_ms: float
    total_tokens: int
    max_tokens: int
    blocks: list[ContextBlockOut]


class AddDocumentsRequest(BaseModel):
    documents: list[Any] = Field(
        ..., min_length=1, max_length=10_000,
        description="Documents with the fields the corpus loaders read: 'doc_id' (required; an existing id is "
                    "replaced), 'title', 'content' (or 'page_body' / 'text'), 'url'; other fields are kept as "
                    "metadata. Each is checked on its own: bad ones are listed in 'rejected', the rest are added.")


class DeleteDocumentsRequest(BaseModel):
    doc_ids: list[str] = Field(..., min_length=1, max_length=10_000,
                               description="Documents to delete, in one atomic batch. Works for any doc_id, "
                                           "also those with '/', '?', '#' or '%' in them.")


class RejectedDocument(BaseModel):
    index: int
    doc_id: Optional[str] = None
    error: str


class AddedDocument(BaseModel):
    index: int
    doc_id: str
    chunks: int
    replaced: bool


class WriteResponse(BaseModel):
    collection: str
    build_id: str = Field(description="The build plus '+seq' of the live journal after this write.")
    seq: int
    added: list[AddedDocument] = []
    rejected: list[RejectedDocument] = []
    deleted: list[str] = []
    not_found: list[str] = Field(default=[], description="doc_ids of a batch delete that were not in the collection.")
    took_ms: float


class CompactResponse(BaseModel):
    collection: str
    build_id: str
    previous_build_id: str
    previous_seq: int
    documents: int
    chunks: int
    took_ms: float
