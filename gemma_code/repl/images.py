"""Images in the chat: `/add shot.png` puts one into the next message, `/drop` takes it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gemma_code.engine.base import ImageData


def is_image(path: Path) -> bool:
    """An image file by its first bytes, or by its name (then loading it says what is wrong)."""
    from gemma_code.documents.images import image_kind
    from gemma_code.tasks.attachments import IMAGE_SUFFIXES

    return path.is_file() and (image_kind(path) is not None or path.suffix.lower() in IMAGE_SUFFIXES)


def add_image(conv: Any, engine: Any, path: Path, rel: str) -> str:
    """Decode and count the image (ModelError exit 4 without vision), keep it for the next turn."""
    from gemma_code.documents.images import load_image
    from gemma_code.tasks.attachments import image_budget

    image = load_image(path)
    tokens = image_budget(engine, [image])
    conv.pending_images.append(image)
    return f"{rel} (image, {tokens:,} tokens)"


def drop_images(conv: Any, root: Path, targets: list[str], *, everything: bool) -> tuple[int, list[str]]:
    """Take images out of the next message: (how many, the targets that were not images)."""
    labels = {str(root / t) for t in targets}
    images = conv.pending_images
    conv.pending_images = [] if everything else [i for i in images if i.label not in labels]
    was_image = {i.label for i in images}
    return len(images) - len(conv.pending_images), [t for t in targets if str(root / t) not in was_image]


def pending_image_tokens(engine: Any, images: list[ImageData]) -> int:
    count = getattr(engine, "image_tokens", None)
    return sum(int(count(i)) for i in images) if callable(count) else 0
