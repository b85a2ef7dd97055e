"""Replace one marked section of a Markdown report, so several benchmarks can share docs/BENCHMARKS.md."""

from __future__ import annotations

import sys
from pathlib import Path


def write_section(path: Path, name: str, body: str) -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def emit_section(path: Path, name: str, lines: list[str]) -> int:
    """Write a benchmark's section and show it on stdout (the command's result); returns exit code 0."""
    body = "\n".join(lines)
    write_section(path, name, body)
    sys.stdout.write(body + "\n")
    return 0


def start_bench(module: str, argv: list[str] | None) -> str:
    """Log set-up every benchmark shares; returns the command line that the report records."""
    import logging

    from service.logging_setup import quiet_libraries

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    quiet_libraries()
    return f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:])
