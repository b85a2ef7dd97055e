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


def write_report(results: dict, path: Path) -> None:
    config = results["config"]
    header = [f"# Eval run {results['run_id']}", "",
              f"Modes: {', '.join(config['modes'])}. Embedder: {config['embed_model']}. "
              f"{'Queries sent to ' + config['url'] if config.get('url') else 'In-process retrieval (service code).'}",
              "Bold = best in column.", ""]
    path.write_text("\n".join(header) + markdown_tables(results))


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
