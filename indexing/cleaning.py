"""Text normalisation applied to every document before chunking.

Everything the index stores is derived from the cleaned text, so cleaning has to be
deterministic (same input, same doc_id across rebuilds), must never raise (one odd document
must not abort an ingest), and must undo the damage real corpora carry: mojibake (UTF-8 read
as cp1252/cp1254, sometimes with bytes lost), stray control and zero-width characters, and
inconsistent whitespace that would otherwise leak into chunks and BM25 tokens.
"""

from __future__ import annotations

import codecs
import logging
import re
import unicodedata

import ftfy

logger = logging.getLogger("ragmem.indexing.cleaning")

try:  # declared dependency; guarded so a broken install degrades to a narrower fallback
    import charset_normalizer
except ImportError:  # pragma: no cover - exercised only on incomplete installs
    charset_normalizer = None  # type: ignore[assignment]

__all__ = ["clean_text", "decode_bytes"]

# ftfy's defaults also fold full-width characters (Chinese "，" -> ",") and straighten curly
# quotes. Both rewrite correct CJK text, and straightening quotes destroys the cp1252 bytes
# 0x91-0x94 that the lossy repair below needs, so only the encoding-repair steps stay on.
_FTFY_CONFIG = ftfy.TextFixerConfig(
    uncurl_quotes=False,
    fix_character_width=False,
    normalization="NFC",
)

# --- lossy mojibake repair -------------------------------------------------------------------
# ftfy refuses to touch a segment when the mis-decoding lost bytes (cp1252/cp1254 have no
# character for 0x81, 0x8D, 0x8F, 0x90, 0x9D, so a converter drops them). Whole Chinese
# paragraphs then stay unreadable. For runs of "mojibake alphabet" characters we map each
# character back to its byte and decode UTF-8 with replacement: a character that lost a byte
# becomes U+FFFD, its neighbours come back intact.


def _build_byte_table() -> dict[str, int]:
    table: dict[str, int] = {}
    for encoding in ("cp1252", "cp1254"):  # cp1254 adds ğ/Ğ/İ/Ş/ı/ş (emoji lead byte 0xF0 -> ğ)
        for byte in range(0x80, 0x100):
            try:
                char = bytes([byte]).decode(encoding)
            except UnicodeDecodeError:
                continue
            table.setdefault(char, byte)
    for byte in range(0x80, 0x100):  # Latin-1 reading (C1 controls for undefined bytes)
        table.setdefault(chr(byte), byte)
    return table


_BYTE_OF: dict[str, int] = _build_byte_table()
_RUN_RE = re.compile("[" + "".join(re.escape(c) for c in sorted(_BYTE_OF)) + "]{2,}")
_LEAD_CHARS = "".join(re.escape(c) for c, b in _BYTE_OF.items() if 0xE0 <= b <= 0xF4)
_CONT_CHARS = "".join(re.escape(c) for c, b in _BYTE_OF.items() if 0x80 <= b <= 0xBF)
# Cheap pre-check: a 3/4-byte UTF-8 lead read as a single-byte char followed by a continuation.
_SUSPECT_RE = re.compile(f"[{_LEAD_CHARS}][{_CONT_CHARS}]")


def _utf8_shaped(raw: bytes) -> tuple[bool, int, int]:
    """Whether bytes are UTF-8 sequences, some cut short by lost bytes; how many; longest.

    Every sequence needs a lead and at least one continuation byte: a bare lead ("ää" is
    E4 E4) or a stray continuation byte means this is ordinary accented text, not mojibake.
    """
    sequences = 0
    longest = 0
    needed = 0  # continuation bytes the current sequence may still take
    seen = 0  # continuation bytes the current sequence has
    for byte in raw:
        if 0x80 <= byte <= 0xBF:
            if needed == 0:
                return False, sequences, longest
            needed -= 1
            seen += 1
            longest = max(longest, seen + 1)
        elif 0xC2 <= byte <= 0xF4:
            if sequences and seen == 0:
                return False, sequences, longest
            sequences += 1
            needed = 1 if byte < 0xE0 else 2 if byte < 0xF0 else 3
            seen = 0
        else:
            return False, sequences, longest
    return sequences > 0 and seen > 0, sequences, longest


def _is_cjk_or_lost(char: str) -> bool:
    return char == "\ufffd" or "\u2e80" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff" or "\uff00" <= char <= "\uffef"


def _repair_run(match: re.Match[str]) -> str:
    run = match.group(0)
    raw = bytes(_BYTE_OF[c] for c in run)
    decoded = raw.decode("utf-8", errors="replace")
    # Legit Latin text ("Größe", "naïve", "Olé…") essentially never forms a valid 3-byte UTF-8
    # sequence, so one such character is enough evidence of mojibake.
    if any(ord(c) >= 0x800 and c != "\ufffd" for c in decoded):
        return decoded
    # Runs where every character lost a byte ("å‘ç°" for 发现) decode to U+FFFD only; accept
    # them when they are shaped like cut UTF-8 and either long or sitting next to CJK text.
    # A cut 4-byte sequence ("ğŸ”", an emoji missing its last byte) is also unmistakable.
    shaped, sequences, longest = _utf8_shaped(raw)
    if shaped:
        text = match.string
        before = text[match.start() - 1] if match.start() > 0 else ""
        after = text[match.end()] if match.end() < len(text) else ""
        if sequences >= 2 or longest >= 3 or _is_cjk_or_lost(before) or _is_cjk_or_lost(after):
            return decoded
    return run


def _repair_lossy_mojibake(text: str) -> str:
    if not _SUSPECT_RE.search(text):
        return text
    return _RUN_RE.sub(_repair_run, text)


# --- normalisation -----------------------------------------------------------------------------
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_PAGE_BREAK_RE = re.compile("[\x0b\x0c\u2028\u2029\x85]")
# Cc except \t and \n, plus zero-width space/non-joiner/joiner, word joiner and BOM.
_INVISIBLE_RE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u200b-\u200d\u2060\ufeff]")
_UNICODE_SPACE_RE = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_HSPACE_RE = re.compile("[ \t]+")
_TRAILING_SPACE_RE = re.compile(" +\n")
_MANY_NEWLINES_RE = re.compile("\n{3,}")


def _normalise_layout(text: str) -> str:
    text = _SURROGATE_RE.sub("\ufffd", text)  # lone surrogates cannot be encoded as UTF-8
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _PAGE_BREAK_RE.sub("\n", text)
    text = _INVISIBLE_RE.sub("", text)
    text = _UNICODE_SPACE_RE.sub(" ", text)
    text = _HSPACE_RE.sub(" ", text)
    text = _TRAILING_SPACE_RE.sub("\n", text)
    text = _MANY_NEWLINES_RE.sub("\n\n", text)
    return text.strip()


def clean_text(text: str) -> str:
    """Repair encoding damage and normalise whitespace; never raises.

    Stable on its own output for real text (re-cleaning stored text keeps doc ids); ftfy makes
    no such promise for arbitrary symbol soup.
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if not text:
        return ""
    try:
        fixed = _ftfy_lines(text)
    except Exception:  # ftfy bugs must not cost us the document
        logger.warning("ftfy failed; keeping text without mojibake repair", exc_info=True)
        fixed = text
    try:
        repaired = _repair_lossy_mojibake(fixed)
        if repaired != fixed:
            # Lines ftfy gave up on are now mostly decoded; what is left in them (e.g. a
            # cp1252 character next to a space that was a no-break space) ftfy can now judge.
            # Without this second look, cleaning the output again would change it.
            repaired = ftfy.fix_text(repaired, _FTFY_CONFIG)
        fixed = repaired
    except Exception:
        logger.warning("lossy mojibake repair failed; skipping it", exc_info=True)
    return _normalise_layout(fixed)


# --- ftfy, only where it can change something ---------------------------------------------------
# Characters no step of ftfy (with _FTFY_CONFIG) changes and no mojibake starts with: printable
# ASCII except '&' (HTML entities) and '<' (which turns entity decoding off for the lines after
# it), tab, CJK ideographs, CJK and full-width punctuation, and the curly quotes, dash and ellipsis
# common in Chinese text. ftfy fixes text line by line, so a line made only of these comes back
# unchanged and can skip it: about half of the agents' corpora's text, whose cleaning was most of
# a corpus load (tests/test_cleaning.py checks the equality on real and adversarial text).
_UNTOUCHED_LINE = re.compile("[\t\x20-\x25\x27-\x3b\x3d-\x7e\u2014\u2018-\u201d\u2026\u3000-\u303f"
                             "\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff5e]*\n?")
_LINE_RE = re.compile("[^\n]*\n|[^\n]+")
_FTFY_NO_HTML = _FTFY_CONFIG._replace(unescape_html=False)


def _ftfy_lines(text: str) -> str:
    """``ftfy.fix_text(text, _FTFY_CONFIG)``, passing over the lines it would leave unchanged."""
    if len(text) > _FTFY_CONFIG.max_decode_length:  # ftfy would cut such lines itself: let it
        return ftfy.fix_text(text, _FTFY_CONFIG)
    out: list[str] = []
    waiting: list[str] = []
    config = _FTFY_CONFIG

    def flush() -> None:
        nonlocal config
        block = "".join(waiting)
        out.append(ftfy.fix_text(block, config))
        if "<" in block:  # what ftfy's own loop does for the rest of the text
            config = _FTFY_NO_HTML
        waiting.clear()

    for line in _LINE_RE.findall(text):
        if _UNTOUCHED_LINE.fullmatch(line):
            if waiting:
                flush()
            out.append(line)
        else:
            waiting.append(line)
    if waiting:
        flush()
    return "".join(out)


# --- byte decoding -----------------------------------------------------------------------------
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: its BOM starts with FF FE too
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CONTROL_RE = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_REPLACEMENT = "\ufffd"
_C1_RE = re.compile("[\x80-\x9f]")
_MAX_JUNK_SHARE = 0.05


def _looks_textual(text: str, *, guessed: bool) -> bool:
    """Reject decodings dominated by control characters (binary) or, for a guessed encoding,
    by U+FFFD (wrong guess). Strict UTF-8 keeps its U+FFFD: they are in the file itself."""
    if not text:
        return True
    junk = len(_CONTROL_RE.findall(text))
    if guessed:
        junk += text.count(_REPLACEMENT) + len(_C1_RE.findall(text))
    return junk <= _MAX_JUNK_SHARE * len(text)


def decode_bytes(data: bytes, source: str) -> str | None:
    """Bytes of a text file -> str, or None when the content is binary or undecodable.

    Strict UTF-8 first because it is by far the most common and a false positive is
    practically impossible; charset_normalizer then covers legacy encodings (GB18030/GBK,
    Big5, Shift-JIS, cp1252...). ``source`` only labels log messages.
    """
    if not data:
        return ""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom):].decode(encoding)
            except UnicodeDecodeError:
                logger.info("%s: %s BOM but invalid %s content", source, encoding, encoding)
                return None
            return text if _looks_textual(text, guessed=False) else None
    if b"\x00" in data:  # NUL never appears in 8-bit or UTF-8 text; BOM-less UTF-16 is not supported
        logger.info("%s: NUL bytes, treating as binary", source)
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return text if _looks_textual(text, guessed=False) else None

    guess: str | None = None
    encoding: str | None = None
    if charset_normalizer is not None:
        try:
            best = charset_normalizer.from_bytes(data).best()
        except Exception:
            logger.warning("%s: charset detection failed", source, exc_info=True)
            best = None
        if best is not None:
            guess, encoding = str(best), best.encoding
    else:  # pragma: no cover - see import guard
        try:
            guess, encoding = data.decode("gb18030"), "gb18030"
        except UnicodeDecodeError:
            guess = None
    if guess is None or not _looks_textual(guess, guessed=True):
        logger.info("%s: no plausible text encoding found", source)
        return None
    logger.info("%s: not UTF-8, decoded as %s", source, encoding)
    return guess
