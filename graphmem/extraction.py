"""Offline entity and relation-triple extraction for the per-chunk knowledge-graph memory.

HippoRAG / LatentGraphMem build their graph with an LLM doing open information extraction.
This module is the no-model substitute: rules plus ``jieba.posseg`` only, so it runs on
~10^5 chunks without a GPU, a network or a download, and always gives the same answer.
It aims for *useful graph nodes* (names, places, organisations, titles, dates, numbers that
anchor facts) and *cheap, readable edges* (the words between two mentions in a clause),
not for linguistically exact relations.

Rules, in short:

* Entities are found by several passes whose overlaps are resolved by priority: the
  document title where it literally occurs, then dates / numbers and 《book titles》, then
  English capitalised-word sequences and Chinese jieba proper nouns (these two never
  compete: one is Latin script, the other Han).
* Triples relate mentions inside one sentence/clause: each mention to the next, the
  document title to every mention (title-keyed corpora such as Wikipedia), and the first
  mention to the later ones while the budget lasts. The relation is the text between the
  two mentions, reduced to a short phrase; ``related to`` / ``相关`` when nothing is left.

Every mention satisfies ``text[m.start:m.end] == m.surface``; offsets always refer to the
original (un-normalised) chunk text.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from collections.abc import Iterable
from functools import lru_cache

import jieba
from jieba import finalseg as _finalseg

__all__ = [
    "Extraction",
    "ExtractionLimits",
    "Mention",
    "Triple",
    "extract",
    "normalise_entity",
]


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class Mention:
    """One occurrence of an entity in a chunk.

    ``key`` is the graph node id, so two spellings of the same name ("The Beatles",
    "the beatles") land on one node; ``surface``/``start``/``end`` keep the exact evidence.
    """

    key: str
    """Normalised entity name (see :func:`normalise_entity`); the graph node id."""
    surface: str
    """Text exactly as in the chunk: ``text[start:end] == surface``."""
    kind: str
    """One of "person", "place", "org", "proper", "title", "number", "date"."""
    start: int
    end: int


@dataclass(frozen=True)
class Triple:
    """A (head, relation, tail) edge between two entity keys with its evidence span.

    The span is the whole sentence/clause, not just the relation words, because that is
    what a reader (or a re-ranker) needs to check the edge.
    """

    head: str
    """Entity key (possibly the document title's key)."""
    relation: str
    """Short normalised phrase, never empty; "related to" / "相关" when nothing better."""
    tail: str
    """Entity key, never equal to ``head``."""
    start: int
    """Character span in the chunk of the sentence/clause holding the evidence."""
    end: int


@dataclass
class Extraction:
    """Mentions (sorted by position) and triples (sorted by sentence position) of a chunk."""

    mentions: list[Mention]
    triples: list[Triple]


@dataclass(frozen=True)
class ExtractionLimits:
    """Per-chunk caps; they keep the graph size linear in the corpus size."""

    max_triples: int = 32
    """LatentGraphMem caps per-chunk triples at 32."""
    max_mentions: int = 64
    """Earliest mentions are kept when a chunk has more."""


# --------------------------------------------------------------------------- character classes

_HAN = "\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_HAN_RE = re.compile(f"[{_HAN}]")
_HAN_ONLY_RE = re.compile(f"[{_HAN}]+")
# Latin letters (ASCII, Latin-1 minus × ÷, Latin Extended-A/B, full-width ASCII letters).
_L = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\uff21-\uff3a\uff41-\uff5a"
_LATIN_RE = re.compile(f"[{_L}]")
_SP = r"[ \t\u00a0\u3000]"

# A Latin "word": dotted acronym (U.S.) or letters/digits with inner - ' ’ (O'Brien, F-16).
# Not started right after a digit, so "3M" or "5G" do not yield a stray capital.
_WORD_RE = re.compile(rf"(?<![0-9])(?:(?:[A-Z]\.){{2,}}|[{_L}][{_L}0-9]*(?:['’\-][{_L}0-9]+)*)")
_WORD_JOINER_RE = re.compile(r"['’\-]")
_LOWER_WORD_RE = re.compile(rf"(?<![{_L}0-9])[a-z][a-z'’\-]*")
_PREV_WORD_RE = re.compile(rf"(?<![{_L}])([a-z]+){_SP}+$")
_REL_WORD_RE = re.compile(rf"[{_L}0-9]+(?:['’\-][{_L}0-9]+)*")

_CONNECTORS = frozenset(
    "of the de la le du des del della di da von van der den y and for upon".split()
)
_WS_GAP_RE = re.compile(rf"{_SP}{{1,2}}")
_INITIAL_GAP_RE = re.compile(rf"\.{_SP}?")
_AMP_GAP_RE = re.compile(rf"{_SP}?&{_SP}?")

# Words that are capitalised only because they start a sentence, or are not names at all.
_FUNCTION_WORDS = frozenset(
    """
    a an the in on at of to for from by with without into onto over under after before
    during since until while when where whereas why how what which who whom whose whether
    this that these those there here then than thus hence also but and or nor so yet if
    as because although though however moreover furthermore meanwhile nevertheless
    he she it they we you i me him her them us his hers its their theirs our ours your my
    is are was were be been being am do does did has have had will would shall should can
    could may might must not no yes all any each every both either neither some many most
    much more less few several such other another same one two three four five six seven
    eight nine ten first second third last next according following despite per via
    yesterday today tomorrow tonight now later early once again still even only just
    about above below between among around against along across through throughout
    within beyond toward towards upon chapter section figure table note see
    born located founded established based known called named built formed created
    initially finally originally eventually unfortunately recently currently
    """.split()
)
_ROLE_WORDS = frozenset("ceo cfo cto coo phd mba".split())
_MONTHS = frozenset(
    "january february march april may june july august september october november december"
    " jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
_WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())
# Stripped from the front of a short name, which then becomes a person ("President Obama").
# Words that also start organisation or place names (General Motors, Saint Louis) are left out.
_HONORIFICS = frozenset(
    """
    mr mrs ms miss dr prof sir dame lady lord president king queen prince princess pope
    senator sen governor gov mayor chancellor rev reverend
    """.split()
)
# Abbreviations inside place names: "St. Louis", "Mt. Fuji".
_NAME_ABBREVIATIONS = frozenset({"st", "mt", "ft"})
_ORG_WORDS = frozenset(
    """
    university college school academy institute institution museum library hospital
    company corporation corp inc ltd llc plc co group bank fund foundation trust
    association society council committee commission agency authority ministry department
    office bureau board party union league federation alliance coalition club fc team band
    orchestra records studios airlines airways railway church army navy force forces
    police court parliament congress senate assembly government organisation organization
    centre center laboratory laboratories labs press times news network campaign services
    """.split()
)
_PLACE_WORDS = frozenset(
    """
    river lake sea ocean mountain mountains mount mt island islands bay gulf valley desert
    city town village county province state region district peninsula coast street road
    avenue square park bridge harbour harbor strait canyon forest
    """.split()
)
_PLACE_PREPS = frozenset({"in", "near", "across", "throughout"})
# A '.' after these is an abbreviation, not a sentence end.
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof sr jr st mt ft gen col capt lt sgt rev gov sen inc ltd co corp vs
    etc no vol fig al approx est dept univ jan feb mar apr jun jul aug sep sept oct nov dec
    e.g i.e
    """.split()
)

# Relation words that carry no meaning on their own; a relation made only of these is
# dropped, and they are trimmed from both ends of a relation (prepositions are kept:
# "born in" and "in" say more than "related to").
_REL_STOP = frozenset(
    """
    a an the and or but nor so yet also then as well which who whom whose that this these
    those it its he she they we i you his her their our my your him them us there here
    where when while
    """.split()
)

# Aliases looked up on the compact upper-case form (dots and spaces removed) so that only
# genuine acronyms match; lower-case "us" (the pronoun) is never turned into a country.
_ACRONYM_ALIASES = {
    "US": "united states",
    "USA": "united states",
    "UK": "united kingdom",
    "UN": "united nations",
    "EU": "european union",
    "PRC": "china",
}
_NAME_ALIASES = {
    "united states of america": "united states",
    "people's republic of china": "china",
}

_EN_FALLBACK = "related to"
_ZH_FALLBACK = "相关"
_MAX_REL_WORDS = 6
_MAX_REL_CHARS_ZH = 8
_MAX_NAME_TOKENS = 10
_FIRST_FANOUT = 8  # first-mention -> later-mention pairs per sentence (keeps it linear)

# --------------------------------------------------------------------------- dates and numbers

_MONTH_RE = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November"
    r"|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?"
)
_DAY_RE = r"\d{1,2}(?:st|nd|rd|th)?"
_NUM_RE = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_NB = rf"(?<![{_L}0-9.,_])"  # no letter/digit/decimal point right before
_NA = rf"(?![{_L}0-9])"  # no letter/digit right after
_DATE_RES = [
    re.compile(p)
    for p in (
        # Chinese dates: 2018年3月5日, 2018年3月, 2018年, 3月5日 (a bare "3年" is a duration).
        r"(?<![0-9])\d{4}年\d{1,2}月(?:\d{1,2}[日号])?|(?<![0-9])\d{3,4}年"
        r"|(?<![0-9])\d{1,2}月\d{1,2}[日号]",
        rf"{_NB}{_DAY_RE}{_SP}+(?:of{_SP}+)?{_MONTH_RE},?{_SP}+\d{{4}}{_NA}",
        rf"(?<![{_L}]){_MONTH_RE}{_SP}+{_DAY_RE},?{_SP}+\d{{4}}{_NA}",
        rf"(?<![{_L}]){_MONTH_RE}{_SP}+\d{{4}}{_NA}",
        rf"(?<![{_L}]){_MONTH_RE}{_SP}+\d{{1,2}}(?:st|nd|rd|th)?{_NA}",
        rf"{_NB}\d{{4}}[-/]\d{{1,2}}[-/]\d{{1,2}}{_NA}",
        rf"{_NB}\d{{3}}0s{_NA}",
        rf"{_NB}(?:1\d{{3}}|20\d{{2}})(?:{_SP}?(?:BCE|BC|CE|AD))?{_NA}",
    )
]
_NUMBER_RES = [
    re.compile(p)
    for p in (
        rf"{_NB}(?:{_NUM_RE}){_SP}?(?:%|％|percent{_NA}|per{_SP}cent{_NA})",
        rf"[$€£¥￥]{_SP}?(?:{_NUM_RE})(?:{_SP}?(?:million|billion|trillion|bn|m|k){_NA})?",
        rf"{_NB}(?:{_NUM_RE}){_SP}?(?:million|billion|trillion|thousand|hundred|km|kilometres"
        rf"|kilometers|kilometre|kilometer|miles|mile|metres|meters|kg|kilograms|tonnes|tons"
        rf"|people|dollars|euros|pounds|yuan|years|votes|copies|employees|species){_NA}",
        rf"{_NB}(?:{_NUM_RE})(?:[十百千万亿]+(?:元|美元|人民币|人|名|吨|公里|米|平方公里|户|册|部)?"
        r"|元|美元|人民币|人|名|吨|公里|千米|平方公里|米|公斤|千克|岁|户|册|部|倍)",
        rf"{_NB}(?:\d{{1,3}}(?:,\d{{3}})+|\d{{3,}})(?:\.\d+)?{_NA}",
    )
]
_BOOK_TITLE_RE = re.compile(r"《([^《》\n]{1,50})》")

# --------------------------------------------------------------------------- Chinese (jieba)

_ZH_KINDS = {"nr": "person", "nrt": "person", "nrfg": "person", "ns": "place", "nt": "org", "nz": "proper"}
_ZH_NAME_JOINERS = frozenset("·•・‧")
_ZH_ORG_SUFFIXES = frozenset(
    "集团 公司 大学 学院 银行 研究所 研究院 医院 委员会 协会 基金会 出版社 报社 博物馆 政府 中学 小学 俱乐部 乐队".split()
)
# Common surnames, used to accept an unknown 2-3 character word as a person (马云, 张伟).
# Surnames that are also everyday single-character words (于 和 向 高 金 方 白 石 江 万 钱
# 米 曾 余 ...) are left out: "曾任", "高过" are not names.
_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗郑梁谢宋唐许韩冯邓曹彭肖董袁潘蒋蔡杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范贾夏韦傅邹孟熊秦邱尹薛闫雷侯陶黎贺顾郝龚邵严覃武康施樊葛邢乔伍庞颜倪"
    "庄聂鲁岳翟殷詹欧耿兰焦俞柳舒阮柯纪梅童凌毕裴霍涂苗谷翁冉骆靳鲍祁蒲滕饶缪褚瞿卓吉艾尤穆芦麦娄"
    "窦戚岑晏卫柏宗桂佟臧闵苟邬卞姬仇栾隋刁荣巫寇桑郎甄丛仲虞"
)
# Characters that end or glue onto words far more often than they appear in a name.
_FUNCTION_CHARS = frozenset(
    "在对以任人则及过收于与和是的了为将被把也又都就等从向说到给让使称由自其之所而且或并乃即但却再才已"
    "曾仍还亦均皆共各每该此这那个年月日时后前中内外上下区姓国家乡版号像县市省"
)
# Characters of the standard transliteration tables (Xinhua) for foreign names.
_TRANSLIT = frozenset(
    "阿艾爱安奥巴拜班邦贝本比宾波伯布查达戴丹道德迪蒂丁杜多厄恩法菲费芬丰弗福盖冈戈格哈海汉豪赫亨"
    "霍基吉加杰卡凯坎康科克肯库拉莱兰朗劳勒雷里利莉列林琳卢鲁伦罗洛玛迈麦曼梅蒙米姆莫默穆纳娜"
    "内尼妮纽诺欧帕佩皮普奇乔琼丘萨塞桑瑟森沙莎舍什施斯索塔泰坦特廷图托瓦威维温沃乌西希谢辛"
    "休雅亚耶伊因尤约泽扎詹兹芙黛娅茨奈蕾丝娃"
)
_SENTENCE_HARD = frozenset("。！？；｡;\n")
_SENTENCE_SOFT = frozenset(".!?．")
_SENTENCE_END = _SENTENCE_HARD | _SENTENCE_SOFT
_CLOSERS = frozenset("\"'”’」』）)]】")

_jieba_lock = threading.Lock()
_jieba_ready = False
_pseg = None
"""``jieba.posseg``, imported by :func:`ensure_tagger`: its import parses the tagged dictionary
(0.6 s), which processes that never extract (Ray shard replicas, most CLI commands) skip."""


def ensure_tagger() -> None:
    """Load jieba's dictionary and tagger once; its lazy initialisation is not thread-safe."""
    global _jieba_ready, _pseg
    if _jieba_ready:
        return
    with _jieba_lock:
        if not _jieba_ready:
            import jieba.posseg

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _pseg = jieba.posseg
            _jieba_ready = True


# --------------------------------------------------------------------------- normalisation


_KEEP_EDGE = frozenset("%‰#")  # "12%", "C#": punctuation that is part of the name


def _is_strippable(ch: str) -> bool:
    return ch.isspace() or (unicodedata.category(ch).startswith("P") and ch not in _KEEP_EDGE)


def _strip_edges(s: str) -> str:
    """Drop surrounding whitespace, punctuation, quotes and brackets (《》「」“” too)."""
    i, j = 0, len(s)
    while i < j and _is_strippable(s[i]):
        i += 1
    while j > i and _is_strippable(s[j - 1]):
        j -= 1
    return s[i:j]


def _compact_initials(name: str) -> str:
    """"U.S." -> "US", "J. K. Rowling" / "J.K. Rowling" -> "JK Rowling"."""
    out: list[str] = []
    letters: list[str] = []
    for tok in name.split(" "):
        if re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]?\.?|[A-Za-z]", tok):
            letters.append(tok.replace(".", ""))
            continue
        if letters:
            out.append("".join(letters))
            letters = []
        out.append(tok)
    if letters:
        out.append("".join(letters))
    return " ".join(out)


@lru_cache(maxsize=1 << 16)
def normalise_entity(name: str) -> str:
    """Map a surface name to its graph node key.

    Steps: NFKC (full-width -> half-width), collapse whitespace, strip surrounding
    punctuation / quotes / brackets (incl. 《》「」“”), drop a trailing possessive "'s",
    remove dots from initials and dotted acronyms ("U.S." -> "us", "J. K." -> "jk"),
    map a few acronyms and long names to one alias (US/USA/U.S.A. -> "united states",
    UK, UN, EU, PRC; "United States of America"), casefold, and drop a leading English
    article. Aliases are deliberately few: cross-lingual or fuzzy aliasing would merge
    nodes that should stay apart. Returns "" when no letter, digit or CJK character is left.
    """
    s = unicodedata.normalize("NFKC", name)
    s = " ".join(s.split())
    while True:
        before = s
        s = _strip_edges(s)
        if s[-2:] in ("'s", "’s") and len(s) > 2:
            s = s[:-2]
        if s == before:
            break
    if not any(ch.isalnum() for ch in s):
        return ""
    s = _compact_initials(s)
    alias = _ACRONYM_ALIASES.get(s.replace(" ", ""))
    if alias is not None and s.replace(" ", "").isupper():
        return alias
    s = s.casefold()
    for article in ("the ", "a ", "an "):
        if s.startswith(article) and len(s) > len(article):
            s = s[len(article):]
            break
    return _NAME_ALIASES.get(s, s)


# --------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class _Cand:
    start: int
    end: int
    kind: str
    tier: int  # lower wins an overlap


_KIND_PRIORITY = {"title": 0, "date": 1, "number": 2, "person": 3, "org": 4, "place": 5, "proper": 6}


def _date_number_cands(text: str) -> list[_Cand]:
    cands: list[_Cand] = []
    for rx in _DATE_RES:
        cands.extend(_Cand(m.start(), m.end(), "date", 1) for m in rx.finditer(text))
    for rx in _NUMBER_RES:
        cands.extend(_Cand(m.start(), m.end(), "number", 1) for m in rx.finditer(text))
    return cands


def _book_title_cands(text: str) -> list[_Cand]:
    out = []
    for m in _BOOK_TITLE_RE.finditer(text):
        if normalise_entity(m.group(1)):
            out.append(_Cand(m.start(1), m.end(1), "title", 1))
    return out


def _doc_title_cands(text: str, title: str) -> list[_Cand]:
    """Literal occurrences of the document title (word-bounded at Latin edges)."""
    t = _strip_edges(title)  # "《北京大学》" occurs as 北京大学
    if not t:
        return []
    out = []
    pos = text.find(t)
    while pos >= 0:
        end = pos + len(t)
        left_ok = pos == 0 or not (_is_latin_alnum(text[pos - 1]) and _is_latin_alnum(t[0]))
        right_ok = end == len(text) or not (_is_latin_alnum(text[end]) and _is_latin_alnum(t[-1]))
        if left_ok and right_ok:
            out.append(_Cand(pos, end, "title", 0))
        pos = text.find(t, pos + 1)
    return out


def _is_latin_alnum(ch: str) -> bool:
    return ch.isdigit() or bool(_LATIN_RE.match(ch))


def _sentence_initial(text: str, pos: int) -> bool:
    """True when only whitespace / opening quotes separate ``pos`` from a sentence start."""
    i = pos - 1
    while i >= 0 and (text[i].isspace() or text[i] in "\"'“‘「『（(["):
        if text[i] == "\n":
            return True
        i -= 1
    return i < 0 or text[i] in ".!?;:。！？；：…"


def _is_cap(tok: str) -> bool:
    """Could this word be part of a name? (capitalised, camel-case, not a job title)"""
    if tok.casefold() in _ROLE_WORDS:
        return False  # "Apple CEO Tim Cook" is two names
    if tok[0].isupper():
        return True
    # camel-case brand names (iPhone, eBay), but not "anti-American"
    head = _WORD_JOINER_RE.split(tok, maxsplit=1)[0]
    return tok[0].islower() and any(c.isupper() for c in head[1:])


_Word = tuple[int, int, str]
"""A Latin word of the chunk: (start, end, text)."""


@dataclass
class _NameSeq:
    """A capitalised-word sequence being grown, with what its connectors said about it."""

    tokens: list[int]
    """Word indexes of the name, connectors included."""
    has_of: bool = False
    and_at: list[int] = field(default_factory=list)
    """Positions in ``tokens`` of joining "and"s."""
    split_at: int | None = None
    """Position of the "and" that separates two names ("University of Oxford and Bank of America")."""

    def note_connectors(self, words: list[str]) -> None:
        """Remember where "and"/"of" joined: an "of" name after an "and" means the "and" joined two names."""
        if "and" in words:
            self.and_at.append(len(self.tokens) + words.index("and"))
        elif "of" in words and self.and_at:
            self.split_at = self.split_at if self.split_at is not None else self.and_at[-1]
        self.has_of = self.has_of or "of" in words

    def parts(self) -> list[list[int]]:
        """The one name, or the two names either side of the separating "and"."""
        if self.split_at is None:
            return [self.tokens]
        return [self.tokens[: self.split_at], self.tokens[self.split_at + 1 :]]


class _CapitalRuns:
    """Grows capitalised-word sequences over a chunk's Latin words.

    Words inside ``blocked`` spans (dates, numbers, titles) never join a name, so that
    "March 2019" or a 《title》 cuts a sequence rather than being swallowed by it.
    """

    def __init__(self, text: str, blocked: bytearray) -> None:
        self.text = text
        self.blocked = blocked
        self.toks: list[_Word] = [(m.start(), m.end(), m.group()) for m in _WORD_RE.finditer(text)]
        self.n = len(self.toks)

    def can_start(self, k: int) -> bool:
        """Is word ``k`` a free capitalised word, i.e. one that may begin or continue a name?"""
        s, e, word = self.toks[k]
        return _is_cap(word) and self.blocked.find(1, s, e) == -1

    def _gap_before(self, k: int) -> str:
        return self.text[self.toks[k - 1][1] : self.toks[k][0]]

    def _spaced(self, k: int) -> bool:
        return _WS_GAP_RE.fullmatch(self._gap_before(k)) is not None

    def grow(self, i: int) -> _NameSeq:
        """The longest name-like sequence starting at word ``i``; a possessive ends it."""
        seq = _NameSeq([i])
        while len(seq.tokens) < _MAX_NAME_TOKENS and seq.tokens[-1] + 1 < self.n:
            j = seq.tokens[-1]
            if self.toks[j][2][-2:] in ("'s", "’s"):
                break
            nxt = self._capital_after(j) if self.can_start(j + 1) else self._bridge_after(j, seq)
            if nxt is None:
                break
            seq.tokens.extend(nxt)
        return seq

    def _capital_after(self, j: int) -> list[int] | None:
        """Word ``j + 1``, a capitalised word, when the gap lets it continue the name."""
        a_word, b_word = self.toks[j][2], self.toks[j + 1][2]
        if a_word.endswith(".") and (len(b_word) == 1 or b_word.casefold() in _FUNCTION_WORDS):
            return None  # "the U.S. J. K. Rowling", "U.S. The ...": a dotted acronym ends here
        gap = self._gap_before(j + 1)
        if (
            _WS_GAP_RE.fullmatch(gap)
            or _AMP_GAP_RE.fullmatch(gap)
            or (_INITIAL_GAP_RE.fullmatch(gap) and _dotted_in_names(a_word))
        ):
            return [j + 1]
        return None

    def _bridge_after(self, j: int, seq: _NameSeq) -> list[int] | None:
        """One or two connectors (of, de, van, and, ...) and the capitalised word after them."""
        if not self._spaced(j + 1):
            return None
        conns: list[int] = []
        k = j + 1
        while k < self.n and len(conns) < 2 and self.toks[k][2] in _CONNECTORS and self._spaced(k):
            conns.append(k)
            k += 1
        if not (conns and k < self.n and self.can_start(k) and self._spaced(k)):
            return None
        words = [self.toks[c][2] for c in conns]
        if not _connectors_allowed(set(words), seq.has_of, self.toks[j][2]):
            return None
        seq.note_connectors(words)
        return conns + [k]


def _dotted_in_names(word: str) -> bool:
    """May a '.' after this word stay inside a name? (initials, honorifics, St./Mt./Ft.)"""
    return (
        (len(word) == 1 and word.isupper())
        or word.casefold() in _HONORIFICS
        or word.casefold() in _NAME_ABBREVIATIONS
    )


def _connectors_allowed(words: set[str], has_of: bool, before: str) -> bool:
    """"and"/"for" join only organisation-like names, so "Obama and Biden" stays two entities."""
    if "and" in words and not has_of:
        return False
    if "for" in words and before.casefold() not in _ORG_WORDS:
        return False
    return True


def _english_cands(text: str, blocked: bytearray) -> list[_Cand]:
    """Capitalised-word sequences, with connectors (of, de, van, &) and initials inside."""
    runs = _CapitalRuns(text, blocked)
    if not runs.toks:
        return []
    lower_vocab = {w.casefold() for w in _LOWER_WORD_RE.findall(text)}
    out: list[_Cand] = []
    i = 0
    while i < runs.n:
        if not runs.can_start(i):
            i += 1
            continue
        seq = runs.grow(i)
        i = seq.tokens[-1] + 1
        for part in seq.parts():
            cand = _english_name(text, runs.toks, part, lower_vocab) if part else None
            if cand is not None:
                out.append(cand)
    return out


def _english_name(text: str, toks: list[_Word], seq: list[int], lower_vocab: set[str]) -> _Cand | None:
    """Trim a capitalised sequence to a name and guess its kind."""
    seq, person, initial = _trim_name_start(text, toks, seq, lower_vocab)
    words = [toks[k][2] for k in seq]
    if len(words) == 1 and _lone_word_is_noise(words[0], initial, lower_vocab):
        return None
    start = toks[seq[0]][0]
    end = toks[seq[-1]][1]
    if words[-1][-2:] in ("'s", "’s"):
        end -= 2
    kind = "person" if person else _english_kind(text, start, end, words)
    return _Cand(start, end, kind, 2)


def _trim_name_start(
    text: str, toks: list[_Word], seq: list[int], lower_vocab: set[str]
) -> tuple[list[int], bool, bool]:
    """Drop leading words that are capitalised only by position, and honorifics.

    Returns the trimmed sequence, whether an honorific was dropped (the name is then a
    person's) and whether its first word still starts a sentence.
    """
    person = False
    initial = _sentence_initial(text, toks[seq[0]][0])
    while len(seq) > 1:
        word = toks[seq[0]][2]
        first = word.casefold().rstrip(".")
        if first == "the" and _is_cap(toks[seq[1]][2]):
            break
        if not word[1:].islower():
            break  # only Title-case words are sentence-initial noise; "AT" in AT&T is not
        if first in _HONORIFICS:
            if _honorific_in_name(toks, seq):
                break  # "Queen Mary University", "Lord of the Rings": part of the name
            person = True
        elif not (initial and (first in _FUNCTION_WORDS or first in lower_vocab)):
            break  # mid-sentence "Will Smith" keeps its first word
        seq = seq[1:]
        initial = False
        # never start a name with a connector
        while len(seq) > 1 and toks[seq[0]][2] in _CONNECTORS:
            seq = seq[1:]
    return seq, person, initial


def _honorific_in_name(toks: list[_Word], seq: list[int]) -> bool:
    """Does the honorific leading ``seq`` belong to a longer, organisation- or place-like name?"""
    rest = {toks[k][2].casefold() for k in seq[1:]}
    return bool(
        len(seq) > 4
        or toks[seq[1]][2] in _CONNECTORS
        or rest & _ORG_WORDS
        or rest & _PLACE_WORDS
    )


def _lone_word_is_noise(word: str, initial: bool, lower_vocab: set[str]) -> bool:
    """A one-word "name" that is a function word, month, weekday, honorific or a letter, or
    one capitalised only because it starts a sentence while the chunk also uses it in lower case."""
    w = word.casefold()
    bare = w[:-2] if w[-2:] in ("'s", "’s") else w
    if word.replace(".", "") in _ACRONYM_ALIASES:
        return False  # "US" is the country, not the pronoun
    return (
        bare in _FUNCTION_WORDS
        or bare in _MONTHS
        or bare in _WEEKDAYS
        or bare.rstrip(".") in _HONORIFICS
        or len(bare) == 1
        or (initial and bare in lower_vocab)
    )


def _english_kind(text: str, start: int, end: int, words: list[str]) -> str:
    """Organisation, place or plain proper name, from the name's words and the word before it."""
    folded = {w.casefold() for w in words}
    if folded & _ORG_WORDS or "&" in text[start:end]:
        return "org"
    if folded & _PLACE_WORDS or _ACRONYM_ALIASES.get(words[0].replace(".", "")) in (
        "united states",
        "united kingdom",
        "china",
    ):
        return "place"
    prev = _PREV_WORD_RE.search(text, max(0, start - 16), start)
    return "place" if prev and prev.group(1) in _PLACE_PREPS and len(words) <= 3 else "proper"


# --------------------------------------------------------------------------- Chinese tokens


@dataclass(frozen=True)
class _Tok:
    start: int
    end: int
    word: str
    flag: str


def _walk(pairs: Iterable, text: str, base: int, limit: int) -> list[_Tok]:
    """Attach offsets to posseg output; tokens concatenate back to the input."""
    out = []
    pos = base
    for p in pairs:
        w = p.word
        if not w:
            continue
        if text.startswith(w, pos):
            s = pos
        else:  # defensive: never trust a token blindly
            s = text.find(w, pos, limit)
            if s < 0:
                continue
        pos = s + len(w)
        out.append(_Tok(s, pos, w, p.flag))
    return out


def _is_single_han(t: _Tok) -> bool:
    return len(t.word) == 1 and _HAN_RE.match(t.word) is not None


def _zh_tokens(text: str) -> list[_Tok]:
    """POS-tagged tokens with offsets: dictionary tagging plus a cheap unknown-name pass.

    jieba's own HMM tagging (which finds names missing from its dictionary, e.g. 马云,
    张伟, 科维托娃) costs ~40 us per character because its POS Viterbi has hundreds of
    states; it would dominate indexing time. Instead the dictionary-only tagger runs first,
    and only runs of unknown single characters are re-segmented with jieba's small
    4-state word HMM (``jieba.finalseg``); a new word becomes a person when it looks like
    a Chinese name (common surname + 1-2 characters) or a transliterated one (all
    characters from the usual transliteration set). Measured on 150 CMRC 2018 paragraphs
    it is ~6x faster than ``posseg.cut(HMM=True)`` and agrees on most entities.
    """
    ensure_tagger()
    toks = _walk(_pseg.cut(text, HMM=False), text, 0, len(text))
    out: list[_Tok] = []
    i = 0
    n = len(toks)
    while i < n:
        if not _is_single_han(toks[i]):
            out.append(toks[i])
            i += 1
            continue
        j = i + 1
        while j < n and _is_single_han(toks[j]) and toks[j].start == toks[j - 1].end:
            j += 1
        if j - i < 2:
            out.append(toks[i])
        else:
            out.extend(_unknown_run(text, toks[i:j]))
        i = j
    return out


def _unknown_run(text: str, run: list[_Tok]) -> list[_Tok]:
    """Re-segment a run of single-character tokens and tag names found in it."""
    s0, e0 = run[0].start, run[-1].end
    out: list[_Tok] = []
    pos = s0
    for word in _finalseg.cut(text[s0:e0]):
        end = pos + len(word)
        if len(word) == 1 or text[pos:end] != word:  # keep the dictionary tags
            out.extend(t for t in run if pos <= t.start < end)
        elif _looks_like_name(word, text, pos, end):
            out.append(_Tok(pos, end, word, "nr"))
        else:  # an unknown word (营收): a noun, so its characters are not read as verbs
            out.append(_Tok(pos, end, word, "n"))
        pos = end
    return out


def _looks_like_name(word: str, text: str, start: int, end: int) -> bool:
    if any(ch in _FUNCTION_CHARS for ch in word[1:]):
        return False  # 曾任, 谢安对, 叶在: a particle/preposition glued to a name-ish start
    if 2 <= len(word) <= 3 and word[0] in _SURNAMES:
        return True
    if len(word) >= 2 and all(ch in _TRANSLIT for ch in word):
        return True
    # a transliterated name part next to the name dot: 贝塔·文奇
    near_dot = (start > 0 and text[start - 1] in _ZH_NAME_JOINERS) or (
        end < len(text) and text[end] in _ZH_NAME_JOINERS
    )
    return near_dot and len(word) <= 3


def _chinese_cands(text: str, toks: list[_Tok]) -> list[_Cand]:
    out: list[_Cand] = []
    n = len(toks)
    i = 0
    while i < n:
        t = toks[i]
        kind = _ZH_KINDS.get(t.flag)
        if kind is None or not _HAN_ONLY_RE.fullmatch(t.word):
            i += 1
            continue
        start, end, j = t.start, t.end, i
        if kind == "person":  # 蒂姆·库克: transliterated names split at the middle dot
            while (
                j + 2 < n
                and toks[j + 1].word in _ZH_NAME_JOINERS
                and toks[j + 1].start == end
                and toks[j + 2].start == toks[j + 1].end
                and (toks[j + 2].flag.startswith("nr") or _is_single_han(toks[j + 2]))
                and _HAN_ONLY_RE.fullmatch(toks[j + 2].word)
            ):
                j += 2
                end = toks[j].end
        if j + 1 < n and toks[j + 1].word in _ZH_ORG_SUFFIXES and toks[j + 1].start == end:
            j += 1
            end = toks[j].end
            kind = "org"
        if end - start >= 2:
            out.append(_Cand(start, end, kind, 2))
        i = j + 1
    return out


def _resolve(text: str, cands: list[_Cand]) -> list[tuple[int, int, str]]:
    """Greedy non-overlapping selection: tier, then earliest, then longest."""
    occupied = bytearray(len(text))
    chosen = []
    for c in sorted(cands, key=lambda c: (c.tier, c.start, c.start - c.end, _KIND_PRIORITY[c.kind])):
        if c.end <= c.start or occupied.find(1, c.start, c.end) != -1:
            continue
        occupied[c.start : c.end] = b"\x01" * (c.end - c.start)
        chosen.append((c.start, c.end, c.kind))
    chosen.sort()
    return chosen


# --------------------------------------------------------------------------- sentences


def _sentences(text: str, mentions: list[Mention]) -> list[tuple[int, int]]:
    """Sentence/clause spans (trimmed), never splitting inside a mention."""
    inside = bytearray(len(text) + 1)
    for m in mentions:
        inside[m.start : m.end] = b"\x01" * (m.end - m.start)
    cuts: list[int] = []
    n = len(text)
    i = 0
    while i < n:
        ch = text[i]
        if ch in _SENTENCE_END:
            if not inside[i] and (ch in _SENTENCE_HARD or _soft_break(text, i)):
                j = i + 1
                while j < n and (text[j] in _SENTENCE_END or text[j] in _CLOSERS):
                    j += 1
                cuts.append(j)
                i = j
                continue
        i += 1
    spans = []
    prev = 0
    for c in cuts + [n]:
        s, e = prev, c
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
        prev = c
    return spans


def _soft_break(text: str, i: int) -> bool:
    """Is the '.', '!' or '?' at ``i`` a sentence end rather than an abbreviation/decimal?"""
    n = len(text)
    nxt = text[i + 1] if i + 1 < n else ""
    if nxt and not (nxt.isspace() or nxt in _CLOSERS or _HAN_RE.match(nxt)):
        return False
    if text[i] in ".．":
        k = i
        while k > 0 and (text[k - 1].isalpha() or text[k - 1] == "."):
            k -= 1
        prev_word = text[k:i].casefold()
        if prev_word in _ABBREVIATIONS or (len(prev_word) == 1 and prev_word.isalpha()):
            return False
        j = i + 1
        while j < n and text[j].isspace() and text[j] != "\n":
            j += 1
        if j < n and (text[j].islower() or text[j].isdigit()):
            return False
    return True


# --------------------------------------------------------------------------- relations


class _Relations:
    """Builds relation phrases from the text between two mentions."""

    def __init__(self, text: str, toks: list[_Tok]):
        self.text = text
        self.toks = toks
        self.tok_starts = [t.start for t in toks]

    def phrase(self, start: int, end: int, between: list[Mention], zh_sentence: bool) -> str:
        """Relation for the gap ``[start, end)`` with intermediate mentions cut out.

        The segment nearest to the tail that yields a phrase wins: it is usually the verb
        or preposition that governs the tail.
        """
        bounds = [start]
        for m in between:
            bounds.extend((m.start, m.end))
        bounds.append(end)
        for k in range(len(bounds) - 2, -1, -2):
            s, e = bounds[k], bounds[k + 1]
            if e <= s:
                continue
            seg = self.text[s:e]
            if _HAN_RE.search(seg):
                rel = self._zh(s, e)
            elif _LATIN_RE.search(seg):
                rel = self._en(seg)
            else:
                rel = ""
            if rel:
                return rel
        return _ZH_FALLBACK if zh_sentence else _EN_FALLBACK

    @staticmethod
    def _en(seg: str) -> str:
        seg = unicodedata.normalize("NFKC", seg)
        if seg[:2] in ("'s", "’s"):  # the possessive trimmed off the head mention
            seg = seg[2:]
        words = [w.casefold() for w in _REL_WORD_RE.findall(seg)]
        while words and words[0] in _REL_STOP:
            words.pop(0)
        while words and words[-1] in _REL_STOP:
            words.pop()
        if len(words) > _MAX_REL_WORDS:
            words = words[-_MAX_REL_WORDS:]
            while words and words[0] in _REL_STOP:
                words.pop(0)
        return " ".join(words)

    def _zh(self, s: int, e: int) -> str:
        lo = bisect.bisect_left(self.tok_starts, s)
        hi = bisect.bisect_left(self.tok_starts, e)
        toks = [t for t in self.toks[lo:hi] if t.end <= e]
        # the verb run nearest to the tail, with a directly following preposition (成立于)
        last = max((k for k, t in enumerate(toks) if t.flag.startswith("v")), default=-1)
        if last >= 0:
            first = last
            while (
                first > 0
                and toks[first - 1].flag.startswith("v")
                and toks[first - 1].end == toks[first].start
            ):
                first -= 1
            parts = [t.word for t in toks[first : last + 1]]
            if last + 1 < len(toks) and toks[last + 1].flag == "p" and len(toks[last + 1].word) == 1:
                parts.append(toks[last + 1].word)
            rel = "".join(parts)
            while len(rel) > _MAX_REL_CHARS_ZH and len(parts) > 1:
                parts.pop(0)
                rel = "".join(parts)
            return _clean_rel(rel[-_MAX_REL_CHARS_ZH:])
        kept: list[str] = []
        size = 0
        for t in reversed(toks):
            if t.flag in ("x", "eng", "m") or t.flag.startswith("u") or not t.word.strip():
                if kept:
                    break
                continue
            if not any(ch.isalnum() for ch in t.word):
                if kept:
                    break
                continue
            if size + len(t.word) > _MAX_REL_CHARS_ZH:
                break
            kept.append(t.word)
            size += len(t.word)
        return _clean_rel("".join(reversed(kept)))


def _clean_rel(rel: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", rel).casefold().split())


# --------------------------------------------------------------------------- extraction


def extract(
    text: str, title: str | None = None, limits: ExtractionLimits = ExtractionLimits()
) -> Extraction:
    """Extract entity mentions and relation triples from one chunk.

    ``title`` is the document title: its key becomes the head of a triple for every
    entity in the chunk (the span is the sentence holding that entity), because
    title-keyed corpora state facts about the title's subject without naming it
    ("He was born in Hawaii"). It only appears among ``mentions`` where it literally
    occurs in ``text``. Output is deterministic; cost is linear in ``len(text)``.
    """
    if not text or limits.max_mentions <= 0:
        return Extraction([], [])
    title_key = normalise_entity(title) if title else ""
    has_han = _HAN_RE.search(text) is not None

    # 1. candidates in priority tiers, resolved to non-overlapping spans
    cands: list[_Cand] = []
    if title_key:
        cands.extend(_doc_title_cands(text, title or ""))
    cands.extend(_date_number_cands(text))
    cands.extend(_book_title_cands(text))
    blocked = bytearray(len(text))
    for c in cands:  # dates, numbers and titles break English name sequences
        blocked[c.start : c.end] = b"\x01" * (c.end - c.start)
    cands.extend(_english_cands(text, blocked))
    toks: list[_Tok] = []
    if has_han:
        toks = _zh_tokens(text)
        cands.extend(_chinese_cands(text, toks))

    mentions: list[Mention] = []
    seen: set[tuple[str, int]] = set()
    for start, end, kind in _resolve(text, cands):
        surface = text[start:end]
        key = normalise_entity(surface)
        if not key or (key, start) in seen:
            continue
        seen.add((key, start))
        mentions.append(Mention(key, surface, kind, start, end))
        if len(mentions) >= limits.max_mentions:
            break

    triples = _triples(text, mentions, toks, title_key, limits.max_triples)
    return Extraction(mentions, triples)


def _triples(
    text: str, mentions: list[Mention], toks: list[_Tok], title_key: str, max_triples: int
) -> list[Triple]:
    if max_triples <= 0 or not mentions:
        return []
    rel = _Relations(text, toks)
    # (tier, sentence, head pos, tail pos, head, relation, tail, span start, span end)
    cands: list[tuple[int, int, int, int, str, str, str, int, int]] = []
    mi = 0
    for si, (s, e) in enumerate(_sentences(text, mentions)):
        while mi < len(mentions) and mentions[mi].start < s:
            mi += 1
        ms = []
        while mi < len(mentions) and mentions[mi].end <= e:
            ms.append(mentions[mi])
            mi += 1
        if not ms:
            continue
        zh = _HAN_RE.search(text, s, e) is not None
        for i in range(len(ms) - 1):
            h, t = ms[i], ms[i + 1]
            if h.key != t.key:
                r = rel.phrase(h.end, t.start, [], zh)
                cands.append((0, si, h.start, t.start, h.key, r, t.key, s, e))
        if title_key:
            for i, t in enumerate(ms):
                if t.key != title_key:
                    r = rel.phrase(s, t.start, ms[:i], zh)
                    cands.append((1, si, -1, t.start, title_key, r, t.key, s, e))
        for j in range(2, min(len(ms), 2 + _FIRST_FANOUT)):
            h, t = ms[0], ms[j]
            if h.key != t.key:
                r = rel.phrase(h.end, t.start, ms[1:j], zh)
                cands.append((2, si, h.start, t.start, h.key, r, t.key, s, e))
    cands.sort()
    chosen = []
    seen: set[tuple[str, str, str]] = set()
    for c in cands:
        ident = (c[4], c[5], c[6])
        if ident in seen:
            continue
        seen.add(ident)
        chosen.append(c)
        if len(chosen) >= max_triples:
            break
    chosen.sort(key=lambda c: (c[1], c[0], c[2], c[3]))
    return [Triple(c[4], c[5], c[6], c[7], c[8]) for c in chosen]
