"""Publishing one derived file (a model export, a compiled engine, a parsed tokenizer) atomically.

Readers see the old file or the whole new one, never part of one: the content is written under a
temporary name in the same directory and renamed onto the target. Concurrent writers each
publish a complete file (the last rename wins), and a failed or killed writer leaves nothing
behind but, at worst, its temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_file(path: Path, suffix: str = ".tmp") -> Iterator[str]:
    """A temporary path next to ``path``; renamed onto ``path`` if the block ends without an
    exception, removed otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=suffix)
    os.close(handle)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
