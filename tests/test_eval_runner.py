import json

from eval.runner import EvalConfig, available_modes, run_eval
from eval.sample import write_sample
from indexing.settings import Settings


def test_eval_run_writes_results_report_and_plot(tmp_path):
    question_file = write_sample(tmp_path / "bench")
    settings = Settings(data_dir=tmp_path / "data")
    out = run_eval(EvalConfig(datasets=[question_file], modes=available_modes(), out_dir=tmp_path / "out"), settings)
    results = json.loads((out / "results.json").read_text())
    modes = results["datasets"]["ragmem_sample"]["modes"]
    assert set(modes) == set(available_modes())
    for metrics in modes.values():
        for key in ("recall@1", "recall@2", "recall@5", "recall@10", "recall@20", "all_recall@5", "mrr@10",
                    "ndcg@10", "answer_recall@5", "latency_ms_p50"):
            assert key in metrics
            if key != "latency_ms_p50":
                assert 0.0 <= metrics[key] <= 1.0
    # Every sample question is answerable from its gold passages: lexical retrieval must find them.
    assert modes["bm25"]["recall@5"] == 1.0
    per_question = results["datasets"]["ragmem_sample"]["per_question"]["hybrid"]
    assert len(per_question) == 6 and all("gold_ranks" in q for q in per_question)
    report = (out / "report.md").read_text()
    assert "| hybrid |" in report and "seed-baseline" in report
    assert (out / "recall_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
