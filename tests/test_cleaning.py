"""indexing.cleaning skips ftfy on lines it would leave unchanged: the result must be ftfy's own."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings as hypothesis_settings, strategies as st

_PIECES = ["中文段落，包含“引号”与……", "plain ascii line", "A &amp; B", "x < y &lt; z", "cafÃ©", "â€™s", "Ã¤",
           "å‘ç°", "ﬁne", "\r", "\t", "\u200b", "\x1b[31m", "e\u0301", "\u3000全角　空格", "ｆｕｌｌ", "—", "•", "¥"]


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=12)), max_size=12),
       st.lists(st.sampled_from(["\n", "", " "]), min_size=12, max_size=12))
def test_ftfy_lines_equals_ftfy_on_mixed_text(pieces, seps):
    import ftfy

    from indexing.cleaning import _FTFY_CONFIG, _ftfy_lines

    text = "".join(p + s for p, s in zip(pieces, seps))
    assert _ftfy_lines(text) == ftfy.fix_text(text, _FTFY_CONFIG)


def test_ftfy_lines_equals_ftfy_on_real_text():
    import ftfy

    from eval.generated_corpus import make_documents
    from indexing.cleaning import _FTFY_CONFIG, _ftfy_lines

    texts = [d["page_body"] for d in make_documents(20, seed=5)]
    shared = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    for path in sorted(shared.glob("seeds/*/*")) + sorted(shared.glob("miro/00[16]/*.json")):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    for text in texts:
        assert _ftfy_lines(text) == ftfy.fix_text(text, _FTFY_CONFIG)
