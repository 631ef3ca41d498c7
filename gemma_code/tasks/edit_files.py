"""Which files an edit or refactor sends to the model in full, read from the repository."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from gemma_code.errors import UsageError
from gemma_code.tasks.edit import MAX_SYMBOL_FILES, SymbolSites, find_symbol
from gemma_code.tasks.prompting import read_named_file, relative_to_root

_IDENT = re.compile(r"`([A-Za-z_][\w.]*)`|\b([A-Za-z_]\w*[_A-Z]\w*|[a-z]+_\w+)\b")


def guess_symbol(root: Path, instruction: str) -> SymbolSites | None:
    """The first identifier in the instruction that the repository defines."""
    for match in _IDENT.finditer(instruction):
        name = (match.group(1) or match.group(2)).split(".")[-1]
        sites = find_symbol(root, name)
        if sites.definitions:
            return sites
    return None


def gather_files(
    root: Path, files: Sequence[Path], *, symbol: str | None = None, refactor: bool = False,
    instruction: str = "",
) -> tuple[dict[str, str], SymbolSites | None]:
    """Named files (a missing one is announced as new), plus a refactored symbol's files."""
    named: dict[str, str] = {}
    for path in files:
        rel = relative_to_root(root, path)
        full = Path(root) / rel
        named[rel] = read_named_file(full) if full.exists() else "(new file: does not exist yet)"
    sites = None
    if refactor:
        sites = find_symbol(root, symbol) if symbol else guess_symbol(root, instruction)
        if symbol and (sites is None or not (sites.definitions or sites.references)):
            raise UsageError(f"symbol {symbol!r} not found in the repository",
                             "check the spelling; gemma-code finds definitions with tree-sitter")
        if sites is None and not named:
            raise UsageError("which symbol?", "name it with --symbol NAME or list the files")
        for rel in (sites.paths if sites else [])[:MAX_SYMBOL_FILES]:
            if rel not in named:
                named[rel] = read_named_file(Path(root) / rel)
    return named, sites
