"""Token-budgeted chunking whose chunks are exact slices of the document text.

The budget is counted in the embedder's own tokens because the model silently truncates
anything past ``max_seq_length``: a 1,500-character chunk of Chinese is ~1,500 MiniLM tokens,
so 80% of it would never be embedded. Cut points prefer paragraph breaks, then line
breaks, then sentence ends (Latin ``.!?`` and CJK ``。！？；``), and only then token boundaries.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Callable

TokenSpans = Callable[[str], list[tuple[int, int]]]

PARAGRAPH, LINE, SENTENCE = 3, 2, 1
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_LINE_BREAK = re.compile(r"\n\s*")
_SENTENCE_END = re.compile(r"(?:[.!?]+[\"'”’)\]]*\s+|[。！？；!?;]+[”’」』）)\]]*\s*|…+\s*)")
MIN_FILL = 0.5
"""A higher-priority cut is taken only if the chunk is at least this full; avoids tiny chunks."""


@dataclass(frozen=True)
class ChunkSpan:
    start: int
    end: int
    n_tokens: int


def _boundaries(text: str) -> tuple[list[int], list[int]]:
    """Candidate cut positions (sorted) with the priority of each."""
    best: dict[int, int] = {}
    for priority, pattern in ((SENTENCE, _SENTENCE_END), (LINE, _LINE_BREAK), (PARAGRAPH, _PARAGRAPH_BREAK)):
        for match in pattern.finditer(text):
            position = match.end()
            if 0 < position < len(text) and best.get(position, 0) < priority:
                best[position] = priority
    positions = sorted(best)
    return positions, [best[p] for p in positions]


def chunk_text(text: str, token_spans: TokenSpans, budget: int, overlap: int) -> list[ChunkSpan]:
    """Split ``text`` into chunks of at most ``budget`` tokens, consecutive chunks sharing ~``overlap``.

    Every returned span satisfies ``text[start:end] == text[start:end].strip()`` and is non-empty.
    """
    if budget < 1:
        raise ValueError("chunk budget must be at least one token")
    overlap = max(0, min(overlap, budget // 2))
    spans = token_spans(text)
    if not spans:
        stripped = text.strip()
        if not stripped:
            return []
        start = text.index(stripped[0])
        return [ChunkSpan(start, start + len(stripped), 0)]
    starts = [s for s, _ in spans]
    positions, priorities = _boundaries(text)
    n_tokens = len(starts)

    def token_index(position: int) -> int:
        """Index of the first token starting at or after ``position``."""
        return bisect.bisect_left(starts, position)

    chunks: list[ChunkSpan] = []
    cursor = 0  # character position where the next chunk starts
    while True:
        first = token_index(cursor)
        if first >= n_tokens:
            break
        limit_token = first + budget
        hard_end = len(text) if limit_token >= n_tokens else starts[limit_token]
        if hard_end <= starts[first]:
            # Several tokens share one start (a character split into pieces): a cut cannot fall
            # inside a character, so this chunk takes the whole character even if over budget.
            limit_token = bisect.bisect_right(starts, starts[first])
            hard_end = len(text) if limit_token >= n_tokens else starts[limit_token]
        end = hard_end
        if limit_token < n_tokens:
            end = _best_cut(positions, priorities, cursor, hard_end, starts, first, budget, token_index) or hard_end
        chunk = _trimmed(text, cursor, end, token_index)
        if chunk is not None and chunks and chunk.start == chunks[-1].start:
            # Two cursors inside one whitespace run trim to the same start (tokenizers whose
            # pieces own the space before a word, like e5's '▁'): keep the longer chunk only.
            if chunk.end > chunks[-1].end:
                chunks[-1] = chunk
        elif chunk is not None:
            chunks.append(chunk)
        if end >= len(text) or token_index(end) >= n_tokens:
            break
        cursor = _next_start(positions, cursor, end, overlap, starts, token_index)
    return chunks


def _best_cut(positions, priorities, cursor, hard_end, starts, first, budget, token_index) -> int | None:
    """Latest boundary of the highest priority in the window that leaves the chunk at least MIN_FILL full."""
    lo = bisect.bisect_right(positions, cursor)
    hi = bisect.bisect_right(positions, hard_end)
    min_tokens = max(1, int(budget * MIN_FILL))
    best_position, best_priority = None, 0
    for i in range(lo, hi):
        position = positions[i]
        if token_index(position) - first < min_tokens:
            continue
        if priorities[i] >= best_priority:
            best_position, best_priority = position, priorities[i]
    return best_position


def _next_start(positions, cursor, end, overlap, starts, token_index) -> int:
    """Start of the next chunk: the earliest boundary within ``overlap`` tokens before ``end``,
    else exactly ``overlap`` tokens back; always strictly after ``cursor`` so chunking progresses."""
    end_token = token_index(end)
    if overlap == 0:
        return end
    earliest_token = max(token_index(cursor) + 1, end_token - overlap)
    earliest_position = starts[earliest_token] if earliest_token < len(starts) else end
    i = bisect.bisect_left(positions, earliest_position)
    if i < len(positions) and cursor < positions[i] < end:
        return positions[i]
    return earliest_position if cursor < earliest_position < end else end


def _trimmed(text: str, start: int, end: int, token_index) -> ChunkSpan | None:
    piece = text[start:end]
    stripped_left = piece.lstrip()
    start += len(piece) - len(stripped_left)
    end = start + len(stripped_left.rstrip())
    if end <= start:
        return None
    return ChunkSpan(start, end, token_index(end) - token_index(start))
