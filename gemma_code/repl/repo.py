"""The repository as the chat sees it: its root, packed context, changed files, names to complete."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code.engine.base import Engine

SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".mypy_cache",
             ".pytest_cache", ".ruff_cache", "dist", "build", ".tox", "target"}
MAX_LISTED = 5000
MAX_CHANGED_BYTES = 64_000  # a changed file larger than this is named, not repeated
_SYMBOL = re.compile(
    r"^\s*(?:export\s+)?(?:async\s+)?(?:def|class|function|func|fn|struct|interface|type|enum)\s+"
    r"([A-Za-z_]\w*)", re.MULTILINE,
)
SYMBOL_SUFFIXES = {".py", ".js", ".jsx", ".ts", ".tsx", ".go", ".rs", ".java", ".c", ".h", ".cc",
                   ".cpp", ".hpp", ".cs", ".rb", ".php", ".kt", ".swift", ".scala", ".lua"}


@dataclass
class PackedView:
    """What the context builder put into the system turn."""

    text: str | None = None
    files: list[tuple[str, int, str]] = field(default_factory=list)  # path, tokens, mode
    used: int = 0
    budget: int = 0
    notes: list[str] = field(default_factory=list)


def pack_repository(
    root: Path, question: str, *, budget: int, engine: Engine, max_file_bytes: int,
    named: Iterable[str] = (),
) -> PackedView:
    """Pack the repository with the context builder, as `ask` does, for the chat's system turn."""
    from gemma_code.context import build_context

    info = engine.info
    packed = build_context(
        root, question, budget=budget, count_tokens=engine.count_tokens, seeds=list(named),
        omit=list(named), tokenizer_id=f"engine:{info.backend}:{info.name}:{info.path}",
        max_file_bytes=max_file_bytes,
    )
    files = [(str(f.path), int(f.tokens), str(f.mode)) for f in packed.files]
    return PackedView(
        text=packed.text or None, files=files, used=int(packed.used), budget=int(packed.budget),
        notes=[str(n) for n in packed.notes],
    )


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class FileWatch:
    """Remembers files as the model last saw them, to report which changed since."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._seen: dict[str, tuple[int, int] | None] = {}

    def remember(self, paths: Iterable[str]) -> None:
        for rel in paths:
            self._seen[rel] = _stamp(self.root / rel)

    def forget(self, paths: Iterable[str]) -> None:
        for rel in paths:
            self._seen.pop(rel, None)

    def clear(self) -> None:
        self._seen.clear()

    @property
    def watched(self) -> list[str]:
        return sorted(self._seen)

    def changed(self) -> list[str]:
        """Files whose size or mtime moved since they were remembered (deleted ones included)."""
        return [rel for rel, stamp in sorted(self._seen.items()) if _stamp(self.root / rel) != stamp]


def list_files(root: Path, limit: int = MAX_LISTED) -> list[str]:
    """Files for completion: git's view in a repository, else a walk that skips build output."""
    from gemma_code import gitops

    tracked = gitops.tracked_files(root)
    if tracked:
        return tracked[:limit]
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        rel_folder = Path(folder).relative_to(root)
        for name in sorted(files):
            found.append(str(rel_folder / name) if str(rel_folder) != "." else name)
            if len(found) >= limit:
                return found
    return found


def scan_symbols(root: Path, files: Iterable[str], limit: int = 20000) -> list[str]:
    """Definition names in source files, for completion; a cheap scan, not a parser."""
    names: set[str] = set()
    for rel in files:
        if Path(rel).suffix not in SYMBOL_SUFFIXES:
            continue
        try:
            text = (root / rel).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        names.update(_SYMBOL.findall(text[:200_000]))
        if len(names) >= limit:
            break
    return sorted(names)


def changed_files_text(root: Path, changed: Iterable[str]) -> str:
    """Current content of changed files (fenced), or a line saying deleted or too large."""
    from gemma_code.tasks.prompting import fence

    parts = ["These files changed since you last saw them; their current content:"]
    for rel in changed:
        try:
            data = (root / rel).read_bytes()
        except OSError:
            parts.append(f"{rel}: deleted")
            continue
        if len(data) > MAX_CHANGED_BYTES:
            parts.append(f"{rel}: changed ({len(data):,} bytes, too large to repeat here)")
        else:
            parts.append(fence(rel, data.decode("utf-8", errors="replace")))
    return "\n".join(parts)
