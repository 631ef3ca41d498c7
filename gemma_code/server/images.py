"""Images in requests: data URLs (OpenAI) and base64 sources (Anthropic) -> the engine's ImageData.

The pixels are decoded by the same code as `-f shot.png` (documents/images.py). The server
never fetches a URL: a remote image would let any client make it reach any host.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gemma_code.engine.base import Engine, ImageData, Message
from gemma_code.errors import GemmaCodeError, UsageError
from gemma_code.server.runner import ApiError

INLINE = "send it inline as a base64 data URL (data:image/png;base64,...)"


def image_of_url(url: Any, where: str, param: str | None = None) -> ImageData:
    """An `image_url` (Chat Completions) or `input_image` (Responses): a data URL only."""
    if not isinstance(url, str) or not url:
        raise ApiError(400, f"{where}: the image needs a `url` string", param=param)
    if url.lower().startswith(("http://", "https://")):
        raise ApiError(400, f"{where}: this server never fetches image URLs; {INLINE}",
                       "invalid_request_error", param)
    if not url.startswith("data:"):
        raise ApiError(400, f"{where}: unsupported image URL; {INLINE}", "invalid_request_error", param)
    header, comma, payload = url[5:].partition(",")
    if not comma or ";base64" not in header.lower():
        raise ApiError(400, f"{where}: the data URL must be base64 (data:image/png;base64,...)",
                       "invalid_request_error", param)
    return image_of_base64(payload, header.split(";")[0], where, param)


def image_of_base64(data: Any, media_type: Any, where: str, param: str | None = None) -> ImageData:
    """Base64 image bytes -> pixels; 400 for bad base64, a non-image, or one over the limit."""
    from gemma_code.documents.images import MAX_IMAGE_BYTES, decode_image

    if not isinstance(data, str) or not data:
        raise ApiError(400, f"{where}: the image data must be a base64 string",
                       "invalid_request_error", param)
    if media_type and not str(media_type).lower().startswith("image/"):
        raise ApiError(400, f"{where}: {media_type!r} is not an image type", "invalid_request_error", param)
    if len(data) > (MAX_IMAGE_BYTES // 3 + 1) * 4 + 4:
        raise ApiError(400, f"{where}: the image is over {MAX_IMAGE_BYTES >> 20} MB; send a smaller one",
                       "invalid_request_error", param)
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{where}: the image data is not valid base64", "invalid_request_error",
                       param) from None
    try:
        return decode_image(raw, where)
    except UsageError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        raise ApiError(400, exc.message + hint, "invalid_request_error", param) from None


def check_vision(engine: Engine, messages: Sequence[Message]) -> None:
    """A request with images on an engine that cannot see: 400 with the fix in the message."""
    if not any(m.images for m in messages):
        return
    from gemma_code.engine.vision import no_vision_error
    from gemma_code.tasks.attachments import can_see, image_budget

    if can_see(engine):
        return
    error: Exception | None = None
    try:
        image_budget(engine, ())  # an engine with no image path at all says so
    except GemmaCodeError as exc:
        error = exc
    settings, path = getattr(engine, "settings", None), getattr(engine, "path", None)
    if error is None and settings is not None and path is not None:
        error = no_vision_error(str(settings.model), Path(path))
    if error is None:
        error = GemmaCodeError(f"{engine.info.name} cannot read images")
    message = str(error)
    hint = getattr(error, "hint", None)
    raise ApiError(400, f"{message}; {hint}" if hint else message, "invalid_request_error", "messages")
