"""report.md tables and the Recall@k plot for one eval run."""

from __future__ import annotations

from pathlib import Path

TABLE_METRICS = ("recall@1", "recall@2", "recall@5", "recall@10", "recall@20", "all_recall@5", "mrr@10", "ndcg@10",
                 "answer_recall@5", "latency_ms_p50")


def markdown_tables(results: dict) -> str:
    lines = []
    for name, data in results["datasets"].items():
        lines += [f"### {name} ({data['layout']}: {data['passages']} passages, {data['queries']} questions, "
                  f"{data['chunks']} chunks)", ""]
        metrics = [m for m in TABLE_METRICS if any(m in row for row in data["modes"].values())]
        lines.append("| mode | " + " | ".join(m.replace("latency_ms_p50", "p50 ms") for m in metrics) + " |")
        lines.append("|---|" + "---:|" * len(metrics))
        best = {m: max(row.get(m, 0) for row in data["modes"].values()) for m in metrics if m != "latency_ms_p50"}
        for mode, row in data["modes"].items():
            cells = []
            for metric in metrics:
                value = row.get(metric)
                if value is None:
                    cells.append("–")
                elif metric == "latency_ms_p50":
                    cells.append(f"{value:.1f}")
                else:
                    cell = f"{value:.3f}"
                    cells.append(f"**{cell}**" if value == best.get(metric) else cell)
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


LEGS = ("bm25", "dense")
NON_GRAPH = ("hybrid", "bm25", "dense", "rrf", "hybrid-maxnorm", "seed-baseline")


def rule_checks(results: dict, metric: str = "recall@5") -> str:
    """The acceptance rules of the fusion and graph work, checked on this run's numbers."""
    lines = ["### Rule checks (Recall@5)", ""]
    for name, data in results["datasets"].items():
        modes = data["modes"]
        for default in ("hybrid", "hybrid+graph"):
            if default not in modes:
                continue
            others = {m: row[metric] for m, row in modes.items() if m != default
                      and (default == "hybrid+graph" or m in LEGS)}
            if not others:
                continue
            best_mode = max(others, key=others.get)
            value = modes[default][metric]
            margin = (value - others[best_mode]) * 100
            verdict = "PASS" if margin >= -0.5 else "FAIL"
            lines.append(f"- {name}: `{default}` {value:.3f} vs best {'leg' if default == 'hybrid' else 'other mode'}"
                         f" `{best_mode}` {others[best_mode]:.3f} ({margin:+.1f} pt): **{verdict}** (≥ −0.5 pt)")
        non_graph = {m: row[metric] for m, row in modes.items() if m in NON_GRAPH}
        if "hybrid+graph" in modes and non_graph:  # a run of graph modes only has nothing to compare with
            best_mode = max(non_graph, key=non_graph.get)
            gain = (modes["hybrid+graph"][metric] - non_graph[best_mode]) * 100
            lines.append(f"  - graph gain: `hybrid+graph` {gain:+.1f} pt over the best non-graph mode `{best_mode}`")
    return "\n".join(lines) + "\n"


def build_lines(results: dict) -> str:
    """Index and graph build cost of each dataset's collection (from its manifest)."""
    lines = ["### Collection builds (from each build's manifest; cached builds are reused across runs)", "",
             "| dataset | chunks | embed s | graph s | graph s per 1,000 chunks | entities | triples |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, data in results["datasets"].items():
        build = data.get("build") or {}
        stages, graph = build.get("stage_seconds", {}), build.get("graph") or {}
        graph_s = stages.get("graph")
        per_k = f"{graph_s / data['chunks'] * 1000:.0f}" if graph_s and data["chunks"] else "–"
        lines.append(f"| {name} | {data['chunks']} | {stages.get('embed', 0):.0f} | "
                     f"{graph_s if graph_s is None else round(graph_s)} | {per_k} | {graph.get('entities', '–')} | "
                     f"{graph.get('triples', '–')} |")
    return "\n".join(lines) + "\n"


def write_report(results: dict, path: Path) -> None:
    config = results["config"]
    embedder = " + ".join(name for name in (config["embed_model"], config.get("embed_cross_lingual")) if name)
    header = [f"# Eval run {results['run_id']}", "",
              f"Modes: {', '.join(config['modes'])}. Embedder: {embedder}. "
              f"{'Queries sent to ' + config['url'] if config.get('url') else 'In-process retrieval (service code).'}",
              "Bold = best in column.", ""]
    path.write_text("\n".join(header) + markdown_tables(results) + "\n" + rule_checks(results) + "\n"
                    + build_lines(results))


def write_plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(results["datasets"].items())
    ks = [k for k in results["config"]["ks"]]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False)
    for ax, (name, data) in zip(axes[0], datasets):
        for mode, row in data["modes"].items():
            values = [row.get(f"recall@{k}") for k in ks]
            if all(v is not None for v in values):
                ax.plot(ks, values, marker="o", label=mode)
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_title(name)
        ax.set_xlabel("k")
        ax.set_ylabel("Recall@k (passages)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
