"""-f files that are documents, not source text: PDFs packed page by page within the budget, and
images (which need a model with vision), counted exactly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code.config import Settings
from gemma_code.documents.images import image_kind, load_image
from gemma_code.documents.pdf import (
    PackedDocument,
    PdfDocument,
    is_pdf,
    pack_pdf,
    ranges,
    read_pdf,
    render_page,
)
from gemma_code.engine.base import Engine, ImageData, Message
from gemma_code.errors import ModelError, UsageError
from gemma_code.tasks.prompting import prompt_tokens


@dataclass
class Attachments:
    """The documents' prompt blocks, their exact token count, and what the user must be told."""

    blocks: list[str] = field(default_factory=list)
    tokens: int = 0  # documents and images together
    documents: list[PackedDocument] = field(default_factory=list)
    images: list[ImageData] = field(default_factory=list)
    image_tokens: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class NamedFiles:
    """The -f files by kind."""

    texts: list[Path] = field(default_factory=list)
    pdfs: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)


def sort_named(paths: Sequence[Path]) -> NamedFiles:
    """The -f files as source text, PDF documents and images (by content, then by name)."""
    named = NamedFiles()
    for path in paths:
        if path.is_file() and image_kind(path) is not None:
            named.images.append(path)
        elif path.is_file() and is_pdf(path):
            named.pdfs.append(path)
        elif path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            named.images.append(path)  # named like an image but unreadable: load_image says why
        else:
            named.texts.append(path)
    return named


def split_named(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """The -f files as (source text files, PDF documents); images count as neither."""
    named = sort_named(paths)
    return named.texts, named.pdfs


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif"}


def images_in_text(text: str, cwd: Path) -> list[Path]:
    """Image files a task names by path ("fix the layout in shots/login.png"), in order."""
    found: list[Path] = []
    for word in text.split():
        word = word.strip("'\"`()[]{}<>,;:!?")
        while word.endswith("."):
            word = word[:-1]
        if Path(word).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        path = Path(word).expanduser()
        path = path if path.is_absolute() else cwd / path
        if path.is_file() and path not in found:
            found.append(path)
    return found


def load_images(paths: Sequence[Path]) -> list[ImageData]:
    """Decode every image first, so a bad file fails before the model loads (exit 2)."""
    return [load_image(path) for path in paths]


def image_budget(engine: Engine, images: Sequence[ImageData]) -> int:
    """Exact prompt positions of `images`; ModelError (exit 4) when the engine cannot see."""
    count = getattr(engine, "image_tokens", None)
    if not callable(count):
        kind = {"remote": "openai"}.get(engine.info.backend, engine.info.backend)
        raise ModelError(
            f"the {kind} engine cannot read images",
            "use the in-process engine (--engine llamacpp) with a Gemma 4 model and its mmproj",
        )
    return sum(int(count(image)) for image in images)


def can_see(engine: Engine) -> bool:
    """True when the engine takes images and the model's vision projector is there."""
    return callable(getattr(engine, "image_tokens", None)) and bool(getattr(engine, "takes_images", False))


def _show_scans(
    engine: Engine, path: Path, scanned: Sequence[int], result: Attachments, budget: int
) -> dict[int, str]:
    """Render scanned pages as images while the budget allows; -> page number -> its name."""
    shown: dict[int, str] = {}
    left: list[int] = []
    for number in scanned:
        image = render_page(path, number)
        cost = int(engine.image_tokens(image))  # type: ignore[attr-defined]
        if result.tokens + cost > budget:
            left.append(number)
            continue
        result.images.append(image)
        result.image_tokens += cost
        result.tokens += cost
        shown[number] = f"image {len(result.images)}"
    if shown:
        result.notes.append(f"{path}: scanned page{'s' if len(shown) > 1 else ''} "
                            f"{ranges(list(shown))} sent as images")
    if left:
        result.notes.append(f"{path}: scanned pages {ranges(left)} did not fit in the budget as images")
    return shown


def check_pages_flag(pages: str | None, pdfs: Sequence[Path]) -> None:
    """--pages selects PDF pages; without a PDF it is a mistake worth saying."""
    if pages and not pdfs:
        raise UsageError("--pages selects pages of a PDF, and no PDF was given",
                         "name the PDF with -f, e.g. -f spec.pdf --pages 3-10")


def document_budget(engine: Engine, messages: Sequence[Message], settings: Settings) -> int:
    """Tokens the documents may take: the --budget, or less when the window is smaller."""
    room = engine.info.n_ctx - settings.max_tokens - prompt_tokens(engine, messages, think=settings.think)
    return max(0, min(settings.budget, room))


def read_pdfs(pdfs: Sequence[Path], pages: str | None) -> list[PdfDocument]:
    """Read every PDF first, so a locked or broken one fails before the model loads (exit 2)."""
    return [read_pdf(path, pages) for path in pdfs]


def pack_documents(
    engine: Engine, pdfs: Sequence[PdfDocument], *, budget: int, images: Sequence[ImageData] = (),
) -> Attachments:
    """The images, then each PDF's selected pages in order, within one shared `budget`.

    Everything is counted exactly; an image is never cut, so images over the budget are an error.
    """
    result = Attachments(images=list(images))
    if images:
        result.image_tokens = result.tokens = image_budget(engine, images)
        if result.tokens > budget:
            raise UsageError(
                f"the images take {result.tokens:,} tokens, over the {budget:,}-token budget",
                "raise --budget (or --n-ctx), or send fewer images",
            )
    see = can_see(engine)
    for doc in pdfs:
        shown = _show_scans(engine, doc.path, doc.scanned, result, budget) if see else {}
        packed = pack_pdf(doc, engine.count_tokens, budget - result.tokens, shown)
        result.documents.append(packed)
        result.notes += packed.notes
        if packed.text:
            result.blocks.append(packed.text)
            result.tokens += packed.tokens
    return result
