from indexing.analyzer import Analyzer


def test_cjk_yields_bigrams_unigrams_and_long_jieba_words():
    terms = Analyzer().tokenize("中华人民共和国成立")
    assert "中华" in terms and "华人" in terms  # bigrams
    assert "国" in terms  # unigrams
    assert "中华人民共和国" in terms  # jieba search-mode word


def test_latin_lowercased_stemmed_stopworded_numbers_kept():
    terms = Analyzer().tokenize("The Running Dogs were barking in 2018 at 3.14")
    assert "run" in terms and "dog" in terms and "bark" in terms
    assert "the" not in terms and "in" not in terms
    assert "2018" in terms and "3.14" in terms


def test_mixed_junctions_and_latin_inside_cjk_runs():
    terms = Analyzer().tokenize("2018年OpenAI发布")
    assert "8年" in terms  # bigram across the digit/CJK junction
    assert "openai" in terms and "2018" in terms


def test_query_and_document_analysis_agree():
    analyzer = Analyzer()
    assert set(analyzer.tokenize("量子计算")) <= set(analyzer.tokenize("关于量子计算的研究"))


def test_rjieba_words_equal_jiebas():
    """The analyzer takes its jieba words from rjieba (Rust) when installed; builds made with either
    must analyse alike, so the two must cut every run the same way (real text when ../shared has it)."""
    import json
    from pathlib import Path

    import jieba
    import pytest

    from eval.generated_corpus import ZH_TOPICS, make_documents
    from indexing.analyzer import _CJK_RUN

    rjieba = pytest.importorskip("rjieba")
    texts = [d["page_body"] for d in make_documents(24, seed=2)] + [fact for _, fact in ZH_TOPICS]
    texts += ["中华人民共和国成立于1949年，北京大学的研究生命科学", "结婚的和尚未结婚的", "他来到了网易杭研大厦"]
    cmrc = Path(__file__).resolve().parents[2] / "shared" / "bench" / "cmrc2018_trial.json"
    if cmrc.exists():
        data = json.loads(cmrc.read_text(encoding="utf-8"))["data"]
        texts += [p["context"] for article in data[:20] for p in article["paragraphs"]]
    runs = {run for text in texts for run in _CJK_RUN.findall(text)}
    assert len(runs) > 50
    for run in runs:
        assert list(rjieba.cut_for_search(run, True)) == list(jieba.cut_for_search(run)), run
