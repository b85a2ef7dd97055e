"""Log set-up shared by every command line entry point (the service's and the plugins')."""

from __future__ import annotations

import logging

NOISY_LOGGERS = ("httpx", "httpcore", "sentence_transformers", "transformers", "faiss", "jieba", "bm25s")


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries()


def quiet_libraries() -> None:
    """Libraries that log every request or model load at INFO would drown ragmem's own lines."""
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
