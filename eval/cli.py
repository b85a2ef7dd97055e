"""``ragmem eval``: registered into the service's CLI through the ``ragmem.cli`` entry point group,
so that eval imports service and never the reverse."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from service.logging_setup import setup_logging


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)


def eval_command(
    datasets: Optional[list[Path]] = typer.Argument(None, help="Benchmark files (layout detected from content)."),
    modes: Optional[str] = typer.Option(None, "--modes", help="Comma-separated modes (default: every available)."),
    k: Optional[str] = typer.Option(None, "--k", help="Comma-separated cut-offs (default 1,2,5,10,20)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default eval/results/<run-id>)."),
    url: Optional[str] = typer.Option(None, "--url", help="Query a live server instead of in-process retrieval."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Data root for the eval collections."),
    sample: bool = typer.Option(False, "--sample", help="Also run the small self-made sample benchmark."),
    graph_walk_steps: Optional[int] = typer.Option(None, "--graph-walk-steps", min=1,
                                                   help="Fixed PageRank steps for the graph modes "
                                                        "(default: to convergence; large graphs use 3)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Measure retrieval quality of every mode on QA benchmarks; writes results.json, report.md and a plot."""
    setup_logging(verbose)
    import tempfile

    from eval.runner import DEFAULT_KS, EvalConfig, available_modes, run_eval
    from eval.sample import write_sample
    from indexing.settings import load_settings

    paths = list(datasets or [])
    if sample or not paths:
        paths.append(write_sample(Path(tempfile.mkdtemp(prefix="ragmem-sample-"))))
    chosen = [m.strip() for m in modes.split(",")] if modes else available_modes()
    unknown = sorted(set(chosen) - set(available_modes()))
    if unknown:
        raise typer.BadParameter(f"unknown modes {unknown}; available: {', '.join(available_modes())}")
    ks = tuple(int(x) for x in k.split(",")) if k else DEFAULT_KS
    settings = load_settings(data_dir=data_dir)
    out_dir = run_eval(EvalConfig(datasets=paths, modes=chosen, ks=ks, out_dir=out, url=url,
                                    graph_walk_steps=graph_walk_steps), settings)
    typer.echo((out_dir / "report.md").read_text())
    typer.echo(f"results: {out_dir / 'results.json'}  plot: {out_dir / 'recall_at_k.png'}")
