"""Images named with -f (PNG, JPEG, WebP, GIF's first frame): checked, decoded to RGB with Pillow.

Pillow is imported inside functions, so `gemma-code --help` never loads it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from gemma_code.engine.base import ImageData
from gemma_code.errors import UsageError

MAX_IMAGE_BYTES = 50 * 1024 * 1024  # a screenshot is a few MB; larger is a mistake or a bomb
MAX_PIXELS = 64 * 1024 * 1024  # checked from the header, before Pillow's own (larger) bomb limit
MAX_SIDE = 4096  # larger images are shrunk first: llama.cpp resizes to ~1,100 tokens anyway
SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
}


def image_kind(path: Path) -> str | None:
    """"PNG", "JPEG", "GIF" or "WebP" from the file's first bytes; None for anything else."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    return kind_of_bytes(head)


def kind_of_bytes(head: bytes) -> str | None:
    """"PNG", "JPEG", "GIF" or "WebP" from an image's first bytes; None for anything else."""
    for magic, kind in SIGNATURES.items():
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def load_image(path: Path) -> ImageData:
    """The image's pixels as RGB (transparency over white, GIF: first frame, big ones shrunk)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if size > MAX_IMAGE_BYTES:
        raise UsageError(
            f"{path} is {size / 1e6:,.0f} MB; images over {MAX_IMAGE_BYTES // 2**20} MB are refused",
            "send a screenshot or a smaller export (PNG or JPEG)",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return decode_image(data, str(path))


def decode_image(data: bytes, label: str) -> ImageData:
    """`data` (an image file's bytes) as RGB pixels; UsageError when it is not a readable image.

    `label` names the image in messages (a path, or where in a request it came from).
    """
    import io

    from PIL import Image, ImageOps

    kind = kind_of_bytes(data[:16]) or "image"
    if len(data) > MAX_IMAGE_BYTES:
        raise UsageError(
            f"{label} is {len(data) / 1e6:,.0f} MB; images over {MAX_IMAGE_BYTES // 2**20} MB are refused",
            "send a screenshot or a smaller export (PNG or JPEG)",
        )
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise UsageError(
                    f"{label} is {opened.width:,}x{opened.height:,} pixels, too large to decode",
                    "scale it down or crop the part that matters",
                )
            opened.seek(0)  # GIF and animated WebP: the first frame
            opened.load()
            image = ImageOps.exif_transpose(opened) or opened
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                base = Image.new("RGB", image.size, (255, 255, 255))
                base.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
                rgb = base
            else:
                rgb = image.convert("RGB")
            if max(rgb.size) > MAX_SIDE:
                rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            pixels = rgb.tobytes()
            width, height = rgb.size
    except UsageError:
        raise
    except Image.DecompressionBombError:
        raise UsageError(f"{label} is too large to decode", "scale it down or crop it") from None
    except (OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(
            f"{label} is not a readable {kind}: {reason}", "check that the file is complete"
        ) from None
    digest = hashlib.blake2b(pixels, digest_size=16, person=f"{width}x{height}".encode()[:16])
    return ImageData(label, width, height, pixels, digest.hexdigest())
