"""-f files that are documents, not source text: PDFs packed page by page within the budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code.config import Settings
from gemma_code.documents.pdf import PackedDocument, is_pdf, pack_pdf, read_pdf
from gemma_code.engine.base import Engine, Message
from gemma_code.errors import UsageError
from gemma_code.tasks.prompting import prompt_tokens


@dataclass
class Attachments:
    """The documents' prompt blocks, their exact token count, and what the user must be told."""

    blocks: list[str] = field(default_factory=list)
    tokens: int = 0
    documents: list[PackedDocument] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def split_named(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """The -f files as (source text files, PDF documents)."""
    texts: list[Path] = []
    pdfs: list[Path] = []
    for path in paths:
        (pdfs if path.is_file() and is_pdf(path) else texts).append(path)
    return texts, pdfs


def check_pages_flag(pages: str | None, pdfs: Sequence[Path]) -> None:
    """--pages selects PDF pages; without a PDF it is a mistake worth saying."""
    if pages and not pdfs:
        raise UsageError("--pages selects pages of a PDF, and no PDF was given",
                         "name the PDF with -f, e.g. -f spec.pdf --pages 3-10")


def document_budget(engine: Engine, messages: Sequence[Message], settings: Settings) -> int:
    """Tokens the documents may take: the --budget, or less when the window is smaller."""
    room = engine.info.n_ctx - settings.max_tokens - prompt_tokens(engine, messages, think=settings.think)
    return max(0, min(settings.budget, room))


def pack_documents(
    engine: Engine, pdfs: Sequence[Path], *, budget: int, pages: str | None = None
) -> Attachments:
    """Each PDF's selected pages, in order, within one shared `budget` (counted exactly)."""
    result = Attachments()
    for path in pdfs:
        doc = read_pdf(path, pages)
        packed = pack_pdf(doc, engine.count_tokens, budget - result.tokens)
        result.documents.append(packed)
        result.notes += packed.notes
        if packed.text:
            result.blocks.append(packed.text)
            result.tokens += packed.tokens
    return result
