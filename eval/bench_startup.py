"""`make bench-startup`: how long a new ragmem process takes before it is useful.

Every server, CLI command, Ray worker and test subprocess pays this, so it is measured on its own:

* ``index``: ``ragmem index`` of a 4-document corpus into an empty data root, spawn to exit;
* ``serve: healthy``: ``ragmem serve`` of that collection, spawn to the first 200 from ``/healthz``
  (the port opens after the tokenizers are preloaded);
* ``serve: first answer``: spawn to the first 200 from ``/rag_search`` in the default mode.

``--baseline REV`` runs the same steps, interleaved in the same run, on a git worktree of REV
(``eval.revisions``), so the two rows share the machine's state. Each step is the median of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from eval.generated_corpus import write_json_corpus
from eval.report_sections import emit_section, start_bench
from eval.revisions import checkout_env, checkouts, serving

log = logging.getLogger("ragmem.bench.startup")
SECTION = "bench-startup"
STEPS = ("index", "serve: healthy", "serve: first answer")


def _index(checkout: Path, corpus: Path, data: Path) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "service.cli", "index", str(corpus), "-c", "s", "--data-dir", str(data)],
                   cwd=checkout, env=checkout_env(checkout), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def _serve(checkout: Path, data: Path, log_path: Path) -> tuple[float, float]:
    started = time.monotonic()
    with serving(checkout, data, log_path, 120) as url:
        healthy = time.monotonic() - started
        response = httpx.post(f"{url}/rag_search", json={"query": "量子计算 chip", "collection": "s"}, timeout=120)
        response.raise_for_status()
        return healthy, time.monotonic() - started


def measure(checkouts: dict[str, Path], repeats: int, tmp: Path) -> dict[str, dict[str, list[float]]]:
    corpus = write_json_corpus(tmp / "c.json", n_docs=4)
    times = {label: {step: [] for step in STEPS} for label in checkouts}
    for round_ in range(repeats):
        for label, checkout in checkouts.items():  # interleaved: both see the same machine
            data = tmp / f"data-{label}-{round_}"
            times[label]["index"].append(_index(checkout, corpus, data))
            healthy, answered = _serve(checkout, data, tmp / f"serve-{label}-{round_}.log")
            times[label]["serve: healthy"].append(healthy)
            times[label]["serve: first answer"].append(answered)
            log.info("%s round %d: %s", label, round_ + 1, {k: round(v[-1], 2) for k, v in times[label].items()})
    return times


def report(times: dict[str, dict[str, list[float]]], command: str, repeats: int) -> list[str]:
    labels = list(times)
    lines = [f"## Process start-up (`{command}`)", "",
             f"Median of {repeats} runs, seconds, spawn to result; a 4-document collection, warm model cache.", "",
             "| step | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for step in STEPS:
        lines.append(f"| {step} | " + " | ".join(f"{statistics.median(times[label][step]):.2f}" for label in labels)
                     + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="", help="a git revision to measure beside this checkout")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/BENCHMARKS.md"))
    args = parser.parse_args(argv)
    command = start_bench("eval.bench_startup", argv)
    with tempfile.TemporaryDirectory(prefix="ragmem-startup-") as name, checkouts(args.baseline, Path(name)) as dirs:
        times = measure(dirs, args.repeats, Path(name))
    return emit_section(args.out, SECTION, report(times, command, args.repeats))


if __name__ == "__main__":
    sys.exit(main())
