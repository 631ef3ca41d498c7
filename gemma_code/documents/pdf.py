"""PDF files named with -f: the text of each page, page ranges, scanned pages named or rendered.

pdfium (pypdfium2, the PDF engine of Chromium) extracts the text and renders scans; it was ten
times faster than pure-Python pypdf on published manuals (BENCHMARKS.md). Imported inside
functions, so `gemma-code --help` never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemma_code.engine.base import ImageData
from gemma_code.errors import UsageError

PDF_MAGIC = b"%PDF-"


@dataclass(frozen=True)
class PdfPage:
    """One page: its 1-based number and its text layer ("" for a scan)."""

    number: int
    text: str

    @property
    def scanned(self) -> bool:
        return not self.text.strip()


@dataclass
class PdfDocument:
    """The selected pages of one PDF."""

    path: Path
    n_pages: int
    pages: list[PdfPage] = field(default_factory=list)

    @property
    def scanned(self) -> list[int]:
        """Numbers of the selected pages that have no text layer."""
        return [p.number for p in self.pages if p.scanned]


@dataclass
class PackedDocument:
    """A PDF's pages rendered for the prompt within a token budget."""

    label: str
    text: str
    tokens: int
    packed: list[int] = field(default_factory=list)  # page numbers in the prompt
    left_out: list[int] = field(default_factory=list)  # selected but over the budget
    scanned: list[int] = field(default_factory=list)  # in the prompt as "no text layer"
    notes: list[str] = field(default_factory=list)


def is_pdf(path: Path) -> bool:
    """True when the file starts like a PDF (or is named .pdf); False when unreadable."""
    if path.suffix.lower() == ".pdf":
        return True
    try:
        with path.open("rb") as handle:
            return handle.read(len(PDF_MAGIC)) == PDF_MAGIC
    except OSError:
        return False


def parse_pages(spec: str, n_pages: int) -> list[int]:
    """`3-10`, `4`, `1,5-7`, `8-` (to the end) -> sorted 1-based page numbers in 1..n_pages."""
    hint = "write pages as 3-10, 4, 1,5-7 or 8- (to the end)"
    chosen: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            start = int(first)
            end = (int(last) if last else n_pages) if dash else start
        except ValueError:
            raise UsageError(f"bad page range {spec!r}", hint) from None
        if start < 1 or end < start:
            raise UsageError(f"bad page range {part!r} in --pages", hint)
        if start > n_pages:
            raise UsageError(
                f"--pages {spec}: the document has {n_pages} page{'s' if n_pages != 1 else ''}",
                f"choose pages between 1 and {n_pages}",
            )
        chosen.update(range(start, min(end, n_pages) + 1))
    if not chosen:
        raise UsageError(f"bad page range {spec!r}", hint)
    return sorted(chosen)


def ranges(numbers: Sequence[int]) -> str:
    """[1, 2, 3, 7, 9, 10] -> '1-3, 7, 9-10'."""
    out: list[str] = []
    run: list[int] = []
    for n in sorted(numbers):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [n]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out)


def open_document(path: Path) -> Any:
    """A pdfium document; UsageError (exit 2) for a password-protected or unreadable file."""
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path))
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}", "check the path given to -f/--file") from None
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise UsageError(
                f"{path} is encrypted (password protected)",
                "save a copy without a password (or print it to PDF) and pass that",
            ) from None
        reason = str(exc).replace("Failed to load document ", "").strip("() ") or "unreadable"
        raise UsageError(
            f"{path} is not a readable PDF: {reason}", "check that the file is complete"
        ) from None


def read_pdf(path: Path, pages: str | None = None) -> PdfDocument:
    """The text layer of the selected pages (all by default), extracted by pdfium."""
    import pypdfium2 as pdfium

    document = open_document(path)
    try:
        n_pages = len(document)
        if n_pages == 0:
            raise UsageError(f"{path} has no pages", "check that the file is complete")
        numbers = parse_pages(pages, n_pages) if pages else list(range(1, n_pages + 1))
        doc = PdfDocument(path, n_pages)
        for number in numbers:
            try:
                page = document[number - 1]
                text = page.get_textpage().get_text_range()
            except pdfium.PdfiumError:
                text = ""  # a broken page reads as a page without text, and is named so
            doc.pages.append(PdfPage(number, text.replace("\r\n", "\n").replace("\0", "")))
    finally:
        document.close()
    return doc


def page_block(page: PdfPage, n_pages: int, shown: str | None = None) -> str:
    """One page with its marker; a scan is marked so the model knows where it is, or is missing."""
    if page.scanned and shown:
        return f"--- page {page.number} of {n_pages}: a scan without text, shown as {shown} ---\n"
    if page.scanned:
        return f"--- page {page.number} of {n_pages}: no text layer (a scanned image), not read ---\n"
    return f"--- page {page.number} of {n_pages} ---\n{page.text.strip()}\n"


def render_page(path: Path, number: int, *, scale: float = 2.0) -> ImageData:
    """A page rendered to RGB pixels with pdfium (144 dpi by default), for a model with vision."""
    import hashlib

    import pypdfium2 as pdfium

    document = open_document(path)
    try:
        bitmap = document[number - 1].render(scale=scale)
        image = bitmap.to_pil().convert("RGB")
    except pdfium.PdfiumError as exc:
        raise UsageError(f"{path}: page {number} could not be rendered ({exc})") from None
    finally:
        document.close()
    pixels = image.tobytes()
    digest = hashlib.blake2b(pixels, digest_size=16).hexdigest()
    return ImageData(f"{path} page {number}", image.width, image.height, pixels, digest)


def fence(label: str, body: str) -> str:
    """The document as a fenced block headed by its label; the fence outgrows any inside it."""
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return f"{label}\n{ticks}\n{body.rstrip()}\n{ticks}\n"


def pack_pdf(
    doc: PdfDocument, count_tokens: Callable[[str], int], budget: int,
    shown: dict[int, str] | None = None,
) -> PackedDocument:
    """The pages in order, each marked, as many as `budget` tokens hold; the rest named.

    `shown` names the scanned pages sent as images (page number -> "image 2").
    """
    shown = shown or {}
    label = f"{doc.path} (PDF, {doc.n_pages} page{'s' if doc.n_pages != 1 else ''})"
    blocks = [page_block(p, doc.n_pages, shown.get(p.number)) for p in doc.pages]
    frame = count_tokens(fence(label, ""))
    used = frame
    kept = 0
    for block in blocks:
        cost = count_tokens(block)
        if used + cost > budget:
            break
        used += cost
        kept += 1
    text = fence(label, "\n".join(blocks[:kept])) if kept else ""
    tokens = count_tokens(text) if text else 0
    while kept and tokens > budget:  # joins may tokenize differently from the parts: recount
        kept -= 1
        text = fence(label, "\n".join(blocks[:kept])) if kept else ""
        tokens = count_tokens(text) if text else 0
    packed = PackedDocument(label, text, tokens,
                            packed=[p.number for p in doc.pages[:kept]],
                            left_out=[p.number for p in doc.pages[kept:]],
                            scanned=[p.number for p in doc.pages[:kept]
                                     if p.scanned and p.number not in shown])
    if packed.scanned:
        many = len(packed.scanned) > 1
        packed.notes.append(
            f"{doc.path}: {'pages' if many else 'page'} {ranges(packed.scanned)} "
            f"{'have' if many else 'has'} no text layer (scanned) and could not be read"
        )
    if packed.left_out:
        packed.notes.append(
            f"{doc.path}: pages {ranges(packed.left_out)} did not fit in the {budget:,}-token budget "
            f"({len(packed.packed)} of {len(doc.pages)} pages packed); choose pages with --pages "
            "or raise --budget"
        )
    return packed
