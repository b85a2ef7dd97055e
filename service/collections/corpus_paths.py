"""Which file a ``json_path`` names, and whether a caller may use it.

Agents pass file paths; the service may read only inside the operator's corpus roots. A path is
resolved after following every symlink and must end inside a root. ragmem's own data root is
never a source, even when a corpus root contains it: its directories are created by builds, and
a path into it fed back as a ``json_path`` (``<collection>/.lock``, a journal) would let a caller
index ragmem's own state. The files of a directory corpus are checked again, one by one, by the
loaders' file gate (:mod:`indexing.file_gate`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from indexing import publish
from service.collections.errors import BadCorpus, Forbidden, NotFound

LEGACY_SUFFIX = ".chunks.db"


class CorpusPaths:
    def __init__(self, data_dir: Path, corpus_roots: list[Path]) -> None:
        self.data_root = Path(os.path.realpath(data_dir))
        self.roots = [Path(os.path.realpath(root)) for root in corpus_roots]

    def resolve(self, raw: str) -> Path:
        """Real path of ``raw`` inside an allowed root, or Forbidden / NotFound / BadCorpus."""
        if not raw or "\x00" in raw:
            raise BadCorpus("json_path must be a non-empty path")
        path = Path(raw).expanduser()
        if ".." in path.parts:
            raise Forbidden(f"json_path may not contain '..': {raw}")
        if not self.roots:
            raise Forbidden("json_path is disabled: the server has no corpus root (start it with --corpus-root DIR "
                            "or RAGMEM_CORPUS_ROOTS)")
        candidates = [path] if path.is_absolute() else [root / path for root in self.roots]
        inside_any = False
        for candidate in candidates:
            for option in (candidate, _legacy_json_sibling(candidate)):
                if option is None:
                    continue
                real = Path(os.path.realpath(option))
                if _within(real, self.data_root):
                    raise Forbidden(f"json_path may not point into ragmem's data root: {raw}")
                if not any(_within(real, root) for root in self.roots):
                    continue
                inside_any = True
                try:
                    if real.is_file() or real.is_dir():
                        return real
                except OSError as exc:  # e.g. a path component longer than the file system allows
                    raise BadCorpus(f"json_path cannot be used: {exc.strerror}") from exc
        if not inside_any:
            raise Forbidden(f"json_path is outside the allowed roots: {raw}")
        raise NotFound(f"no such corpus: {raw}")

    def shown(self, real: Path) -> str:
        """How a corpus path is shown to callers: relative to its corpus root, never absolute."""
        for root in self.roots:
            if _within(real, root):
                return real.relative_to(root).as_posix() or real.name
        return real.name

    def hide(self, text: str) -> str:
        """``text`` with every root's absolute prefix removed, for messages and reports shown to callers."""
        for root in sorted([*self.roots, self.data_root], key=lambda r: len(str(r)), reverse=True):
            text = text.replace(f"{root}/", "").replace(str(root), ".")
        return text

    @staticmethod
    def collection_name(path: Path) -> str:
        """The collection a json_path builds: its stem plus a hash of the whole real path."""
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        return f"{publish.collection_name_from(path)[:100]}-{digest}"


def _within(real: Path, root: Path) -> bool:
    return real == root or root in real.parents


def _legacy_json_sibling(path: Path) -> Path | None:
    """Agents pass ``x.json.chunks.db`` (their old cache); if it is absent, the JSON beside it is the corpus."""
    if path.name.endswith(LEGACY_SUFFIX) and not path.exists():
        return path.with_name(path.name[: -len(LEGACY_SUFFIX)])
    return None
