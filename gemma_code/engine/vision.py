"""Images through llama.cpp's multimodal library (libmtmd): an mmproj GGUF beside the model.

An image becomes a run of positions in the prompt: llama.cpp's own chunks (for Gemma 4:
`<|image>`, the image's embeddings, `<image|>`). In the engine's token list the embeddings'
positions hold negative stand-in ids derived from the image's digest, so the KV cache's
prefix reuse works across prompts that contain the same image (up to and including it).
"""

from __future__ import annotations

import ctypes
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemma_code.engine.base import ImageData
from gemma_code.errors import EngineError

MIN_IMAGE_TOKENS = 70  # Gemma 4's smallest image (llama.cpp clip.cpp)
MAX_IMAGE_TOKENS = 1120  # and its largest


@dataclass
class ImageRun:
    """One image's positions: llama.cpp's chunks, with stand-in ids for the embeddings."""

    digest: str
    tokens: list[int]  # text tokens as they are; embedding positions as negative ids
    chunks: Any  # mtmd_input_chunks*, owned
    n_image_tokens: int

    def stand_ins(self) -> set[int]:
        return {t for t in self.tokens if t < 0}


MAX_KEPT = 8  # images kept tokenized (a big one holds ~30 MB of preprocessed pixels)


def stand_in_ids(digest: str, n: int, salt: int = 0) -> list[int]:
    """n distinct negative ids for an image's embedding positions (never a vocabulary id)."""
    key = f"{digest}#{salt}".encode()
    base = int(hashlib.blake2b(key, digest_size=4).hexdigest(), 16) % (1 << 20)
    return [-(((base << 11) + i) % (1 << 31) + 1) for i in range(n)]


class Vision:
    """A libmtmd context for one loaded model; images are tokenized once and kept by digest."""

    def __init__(self, model: Any, mmproj: Path, *, n_threads: int, n_batch: int, use_gpu: bool):
        from llama_cpp import mtmd_cpp as mt

        self._mt = mt
        self.path = Path(mmproj)
        self.ctx: Any = None
        self.runs: dict[str, ImageRun] = {}
        self.by_id: dict[int, tuple[ImageRun, int]] = {}  # stand-in id -> (run, its index)
        self.encode_s = 0.0  # time spent encoding images (for the benchmark)
        if not self.path.is_file():
            from gemma_code.errors import ModelNotFoundError

            raise ModelNotFoundError(
                f"vision projector {self.path} does not exist", "check the `mmproj` setting"
            )
        _capture_log(mt)
        params = mt.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.n_threads = n_threads
        params.print_timings = False
        params.warmup = False
        # a non-causal image must be decoded in one batch: no image larger than the batch
        params.image_max_tokens = max(MIN_IMAGE_TOKENS, min(MAX_IMAGE_TOKENS, n_batch))
        self.max_tokens = int(params.image_max_tokens)
        self.ctx = mt.mtmd_init_from_file(str(self.path).encode(), model, params)
        if not self.ctx:
            from gemma_code.engine.lowlevel import log_tail

            detail = "; ".join(log_tail(2)) or "no detail"
            raise EngineError(
                f"llama.cpp could not load the vision projector {self.path.name} ({detail})",
                "the mmproj file must belong to this model; pull the model again to fetch its own",
            )
        if not mt.mtmd_support_vision(self.ctx):
            self.close()
            raise EngineError(f"{self.path.name} has no vision encoder", "use the model's image mmproj")

    def run_for(self, image: ImageData) -> ImageRun:
        """The image's positions (tokenized by llama.cpp once per distinct image)."""
        run = self.runs.get(image.digest)
        if run is not None:
            return run
        mt = self._mt
        data = (ctypes.c_uint8 * len(image.rgb)).from_buffer_copy(image.rgb)
        bitmap = mt.mtmd_bitmap_init(image.width, image.height, data)
        if not bitmap:
            raise EngineError(f"llama.cpp could not take {image.label} ({image.width}x{image.height})")
        chunks = mt.mtmd_input_chunks_init()
        try:
            part = mt.mtmd_input_part(text=None, bitmap=bitmap)
            parts = (ctypes.POINTER(mt.mtmd_input_part) * 1)(ctypes.pointer(part))
            rc = mt.mtmd_tokenize_from_parts(self.ctx, chunks, parts, 1, False)
        finally:
            mt.mtmd_bitmap_free(bitmap)
        if rc != 0:
            mt.mtmd_input_chunks_free(chunks)
            raise EngineError(f"llama.cpp could not prepare {image.label} (code {rc})")
        tokens: list[int] = []
        n_image = 0
        for index in range(mt.mtmd_input_chunks_size(chunks)):
            chunk = mt.mtmd_input_chunks_get(chunks, index)
            if mt.mtmd_input_chunk_get_type(chunk) == mt.MTMD_INPUT_CHUNK_TYPE_TEXT:
                count = ctypes.c_size_t()
                ids = mt.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                tokens += [int(ids[i]) for i in range(count.value)]
                continue
            n = int(mt.mtmd_input_chunk_get_n_tokens(chunk))
            if int(mt.mtmd_input_chunk_get_n_pos(chunk)) != n:
                mt.mtmd_input_chunks_free(chunks)
                raise EngineError("this projector places images by M-RoPE, which gemma-code does not drive")
            ids = stand_in_ids(f"{image.digest}:{index}", n)
            salt = 0
            while any(t in self.by_id for t in ids):  # another image's ids: a 1-in-a-million clash
                salt += 1
                ids = stand_in_ids(f"{image.digest}:{index}", n, salt)
            tokens += ids
            n_image += n
        run = ImageRun(image.digest, tokens, chunks, n_image)
        self.runs[image.digest] = run
        for position, token in enumerate(run.tokens):
            if token < 0:
                self.by_id[token] = (run, position)
        return run

    def retain(self, digests: set[str]) -> None:
        """Free the tokenized images a prompt no longer uses, beyond the MAX_KEPT most recent."""
        extra = len(self.runs) - MAX_KEPT
        for digest in [d for d in self.runs if d not in digests][: max(extra, 0)]:
            run = self.runs.pop(digest)
            for token in run.stand_ins():
                self.by_id.pop(token, None)
            self._mt.mtmd_input_chunks_free(run.chunks)

    def image_tokens(self, image: ImageData) -> int:
        """Prompt positions the image takes, its begin/end markers included."""
        return len(self.run_for(image).tokens)

    def chunk_at(self, run: ImageRun, position: int) -> tuple[Any, int]:
        """(mtmd chunk, its length) of the image chunk starting at `position` in `run.tokens`."""
        mt = self._mt
        offset = 0
        for index in range(mt.mtmd_input_chunks_size(run.chunks)):
            chunk = mt.mtmd_input_chunks_get(run.chunks, index)
            if offset == position:
                return chunk, int(mt.mtmd_input_chunk_get_n_tokens(chunk))
            offset += int(mt.mtmd_input_chunk_get_n_tokens(chunk))
        raise EngineError("image chunk not found (a bug in gemma-code)")

    def evaluate(self, lctx: Any, chunk: Any, n_past: int, seq: int, n_batch: int) -> int:
        """Encode the image chunk and decode its embeddings at `n_past`; the new n_past."""
        import time

        import llama_cpp as lc

        new_n_past = lc.llama_pos(0)
        start = time.perf_counter()
        rc = self._mt.mtmd_helper_eval_chunk_single(
            self.ctx, lctx, chunk, n_past, seq, n_batch, False, ctypes.byref(new_n_past)
        )
        self.encode_s += time.perf_counter() - start
        if rc != 0:
            raise EngineError(
                f"llama.cpp could not evaluate an image (code {rc})",
                "the context may be full: lower --max-tokens or raise --n-ctx",
            )
        return int(new_n_past.value)

    def close(self) -> None:
        """Free every image's chunks and the multimodal context (idempotent)."""
        mt = self._mt
        for run in getattr(self, "runs", {}).values():
            mt.mtmd_input_chunks_free(run.chunks)
        self.runs = {}
        self.by_id = {}
        if self.ctx:
            mt.mtmd_free(self.ctx)
            self.ctx = None


def gemma4_image_tokens(
    width: int, height: int, *, patch: int = 16, merge: int = 3, min_tokens: int = MIN_IMAGE_TOKENS,
    max_tokens: int = MAX_IMAGE_TOKENS,
) -> int:
    """Image tokens llama.cpp's gemma4v preprocessing gives a width x height image.

    A transcription of `calc_size_preserved_ratio` (tools/mtmd/mtmd-image.cpp): align each side
    to the pooled cell (patch x merge pixels), then scale into [min_tokens, max_tokens] cells
    keeping the aspect ratio. The in-process engine asks llama.cpp itself; this predicts the
    count for a server (the openai engine) and checks llama.cpp in the tests.
    """
    import math

    def round_half_away(x: float) -> int:  # C's std::round, not Python's banker's rounding
        return math.floor(x + 0.5)

    cell = patch * merge
    min_px, max_px = min_tokens * cell * cell, max_tokens * cell * cell
    w = max(cell, round_half_away(width / cell) * cell)
    h = max(cell, round_half_away(height / cell) * cell)
    if w * h > max_px:
        beta = math.sqrt(height * width / max_px)
        h = max(cell, math.floor(height / beta / cell) * cell)
        w = max(cell, math.floor(width / beta / cell) * cell)
    elif w * h < min_px:
        beta = math.sqrt(min_px / (height * width))
        h = math.ceil(height * beta / cell) * cell
        w = math.ceil(width * beta / cell) * cell
    return (w // cell) * (h // cell)


def image_data_url(image: ImageData) -> str:
    """The image as a PNG data URL, for OpenAI-style `image_url` parts."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.frombytes("RGB", (image.width, image.height), image.rgb).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class VisionMixin:
    """The llama.cpp engine's image side: the projector loaded on the first image, image
    positions in the prompt, and their evaluation beside llama_decode's text."""

    mmproj: Path | None
    _vision: Vision | None

    @property
    def vision(self) -> Vision:
        """The multimodal context, loaded on first use; ModelError (exit 4) without an mmproj."""
        if self._vision is None:
            self._vision = open_vision(self)
        return self._vision

    @property
    def takes_images(self) -> bool:
        return self.mmproj is not None

    def image_tokens(self, image: ImageData) -> int:
        """Exact prompt positions `image` takes (its begin/end markers included)."""
        return self.vision.image_tokens(image)

    def _image_prompt_tokens(self, messages: Any, *, think: bool) -> list[int]:
        from gemma_code.engine.segments import render_segments

        engine: Any = self
        segments = render_segments(messages, engine.info.chat_format, think=think)
        return tokens_with_images(self, segments, [i for m in messages for i in m.images])

    def _evaluate(self, tokens: Any) -> None:
        """Evaluate `tokens` after the cache: negative ids are an image's, evaluated whole."""
        engine: Any = self
        if self._vision is not None and any(t < 0 for t in tokens):
            decode_with_images(engine, tokens)
        else:
            engine._decode(tokens)


def openai_content(message: Any) -> str | list[dict[str, Any]]:
    """Text, or image parts (PNG data URLs) then the text, as the OpenAI API takes images."""
    if not message.images:
        return str(message.content)
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": image_data_url(image)}} for image in message.images
    ]
    return [*parts, {"type": "text", "text": message.content}]


def _capture_log(mt: Any) -> None:
    """libmtmd logs every image to stderr: keep it with llama.cpp's log unless asked to show it."""
    import os

    from gemma_code.engine import lowlevel

    if os.environ.get(lowlevel.LOG_ENV) != "1":
        mt.mtmd_log_set(lowlevel._collect_log, ctypes.c_void_p(0))
        mt.mtmd_helper_log_set(lowlevel._collect_log, ctypes.c_void_p(0))


def open_vision(engine: Any) -> Vision:
    """The engine's multimodal context; ModelError (exit 4) with the fix when there is no mmproj."""
    from gemma_code.engine.hardware import default_threads

    if engine.mmproj is None:
        raise no_vision_error(engine.settings.model, engine.path)
    return Vision(engine.model, engine.mmproj, n_threads=engine.settings.n_threads or default_threads(),
                  n_batch=engine.n_batch, use_gpu=engine._gpu)


def find_mmproj(settings: Any, model_path: Path) -> Path | None:
    """The vision projector for the model: the `mmproj` setting, the registry's file once
    pulled, or `mmproj-<model file>` beside the model; None when there is none."""
    explicit = str(getattr(settings, "mmproj", "") or "")
    if explicit:
        return Path(explicit).expanduser()
    from gemma_code.models import mmproj_path

    pulled = mmproj_path(str(settings.model))
    if pulled is not None:
        return pulled
    beside = model_path.with_name(f"mmproj-{model_path.name}")
    return beside if beside.is_file() else None


def no_vision_error(model: str, path: Path) -> Exception:
    """Exit 4: images need the model's mmproj, with the command that fetches it."""
    from gemma_code.errors import ModelError
    from gemma_code.models import find_entry

    entry = find_entry(model)
    if entry is not None and entry.mmproj_file:
        hint = f"fetch it with: {entry.pull_command()}"
    else:
        hint = (f"set `mmproj` (or GEMMA_CODE_MMPROJ) to the model's mmproj GGUF, or put it beside "
                f"the model as mmproj-{path.name}")
    return ModelError(f"{model} cannot read images here: its vision projector (mmproj) is missing", hint)


def tokens_with_images(engine: Any, segments: list[tuple[str, bool]] | None,
                       images: list[ImageData]) -> list[int]:
    """The prompt's tokens with each image's positions where the template placed it."""
    from gemma_code.engine.chat_templates import IMAGE

    if segments is None or engine.info.chat_format != "gemma4":
        raise EngineError("images need a Gemma 4 model (its chat format places them)")
    vision = engine.vision
    queue = iter(images)
    tokens: list[int] = []
    for text, template in segments:
        pieces = text.split(IMAGE) if template else [text]
        for index, piece in enumerate(pieces):
            if index:
                tokens += vision.run_for(next(queue)).tokens
            if piece:
                tokens += engine._ll.tokenize(engine.vocab, piece, special=template)
    vision.retain({image.digest for image in images})
    return tokens


def decode_with_images(engine: Any, tokens: list[int] | Any) -> None:
    """Evaluate text runs with llama_decode and each image chunk with libmtmd, in order."""
    vision: Vision = engine.vision
    index = 0
    while index < len(tokens):
        if tokens[index] >= 0:
            end = index
            while end < len(tokens) and tokens[end] >= 0:
                end += 1
            engine._decode(tokens[index:end])
            index = end
            continue
        found = vision.by_id.get(tokens[index])
        if found is None:
            raise EngineError("an image in the prompt is not loaded (a bug in gemma-code)")
        chunk, n = vision.chunk_at(*found)
        try:
            vision.evaluate(engine.ctx, chunk, len(engine._tokens), 0, engine.n_batch)
        except EngineError:
            engine._resync()
            raise
        engine._tokens.extend(tokens[index : index + n])
        index += n
