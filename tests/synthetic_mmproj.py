"""A random-weights Gemma 4 vision projector (mmproj GGUF) that loads beside the synthetic model.

Tensor names and GGUF keys follow llama.cpp's own loader for the `gemma4v` projector
(tools/mtmd/clip.cpp: `load_hparams`, `load_tensors`, `clip_graph_gemma4v`) and its converter
(conversion/gemma.py `Gemma4VisionAudioModel`): a SigLIP-style tower with RMS norms, q/k norms,
post-attention and post-FFN norms, a per-layer output scale, learned x/y position tables, a
3x3 average pool and one projection into the text model's embedding width. The widths are
shrunk (`VisionShape`); the image preprocessing and token counts are the real ones.

Needs the `gguf` package (a test extra) and numpy, imported inside functions.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

PROJECTOR = "gemma4v"
WRITER_VERSION = 1
# llama.cpp's gemma4v limits (clip.cpp: set_limit_image_tokens(70, 1120)); the pooled grid
# is patch_size * n_merge pixels a token
MIN_TOKENS = 70
MAX_TOKENS = 1120


@dataclass(frozen=True)
class VisionShape:
    """The vision tower's widths; `n_embd_text` must equal the text model's hidden size."""

    n_embd: int = 64
    n_head: int = 2
    n_ff: int = 128
    n_layers: int = 2
    patch_size: int = 16
    n_merge: int = 3  # pooling kernel: 3x3 patches -> one token
    pos_size: int = 1024  # rows of each (x, y) position table
    n_embd_text: int = 256  # the synthetic Gemma 4's hidden size (synthetic.TINY)
    seed: int = 0


def tensor_shapes(shape: VisionShape) -> dict[str, tuple[int, ...]]:
    """Every tensor of the projector, name -> shape in ggml order (ne0 first)."""
    e, f, p = shape.n_embd, shape.n_ff, shape.patch_size
    d_head = e // shape.n_head
    shapes: dict[str, tuple[int, ...]] = {
        "v.patch_embd.weight": (p, p, 3, e),  # a conv2d kernel: no bias in Gemma 4
        "v.position_embd.weight": (e, shape.pos_size, 2),  # x table, then y table
        "v.std_bias": (e,),
        "v.std_scale": (e,),
        "mm.input_projection.weight": (e, shape.n_embd_text),
    }
    for i in range(shape.n_layers):
        b = f"v.blk.{i}."
        shapes.update({
            b + "ln1.weight": (e,),
            b + "attn_q.weight": (e, e),
            b + "attn_k.weight": (e, e),
            b + "attn_v.weight": (e, e),
            b + "attn_q_norm.weight": (d_head,),
            b + "attn_k_norm.weight": (d_head,),
            b + "attn_out.weight": (e, e),
            b + "attn_post_norm.weight": (e,),
            b + "ln2.weight": (e,),
            b + "ffn_gate.weight": (e, f),
            b + "ffn_up.weight": (e, f),
            b + "ffn_down.weight": (f, e),
            b + "ffn_post_norm.weight": (e,),
            b + "out_scale.weight": (1,),
        })
    return shapes


def expected_tokens(
    width: int, height: int, shape: VisionShape = VisionShape(), *, max_tokens: int = MAX_TOKENS
) -> int:
    """Image tokens llama.cpp should give a width x height image with this projector."""
    from gemma_code.engine.vision import gemma4_image_tokens

    return gemma4_image_tokens(width, height, patch=shape.patch_size, merge=shape.n_merge,
                               min_tokens=MIN_TOKENS, max_tokens=max_tokens)


def write_mmproj(path: Path, shape: VisionShape = VisionShape()) -> Path:
    """Write the projector GGUF to `path` atomically (random weights, ones for norms)."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(shape.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), "clip")
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_name("gemma-4-synthetic-mmproj")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_vision_projector_type(PROJECTOR)
    writer.add_vision_projection_dim(shape.n_embd_text)
    writer.add_vision_image_size(224)  # unused by gemma4v; the converter writes 224 too
    writer.add_vision_patch_size(shape.patch_size)
    writer.add_vision_embedding_length(shape.n_embd)
    writer.add_vision_feed_forward_length(shape.n_ff)
    writer.add_vision_block_count(shape.n_layers)
    writer.add_vision_head_count(shape.n_head)
    writer.add_vision_attention_layernorm_eps(1e-6)
    writer.add_vision_image_mean([0.0, 0.0, 0.0])
    writer.add_vision_image_std([1.0, 1.0, 1.0])
    writer.add_vision_use_gelu(True)
    writer.add_vision_projector_scale_factor(shape.n_merge)
    for name, dims in tensor_shapes(shape).items():
        numpy_shape = tuple(reversed(dims))
        if len(dims) == 1 and not name.startswith("v.std_bias"):
            values = np.ones(numpy_shape, dtype=np.float32)  # norms, scales: identity
        elif name == "v.std_bias":
            values = np.zeros(numpy_shape, dtype=np.float32)
        else:
            values = rng.standard_normal(numpy_shape, dtype=np.float32) * np.float32(0.02)
        # F32 where llama.cpp wants it (norms, position tables); matrices in F16
        keep_f32 = len(dims) == 1 or "position_embd" in name or "patch_embd" in name
        writer.add_tensor(name, values if keep_f32 else values.astype(np.float16))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return path


def cached_mmproj(shape: VisionShape = VisionShape(), *, cache_dir: Path | None = None) -> Path:
    """The synthetic projector for `shape`, written once and cached under `cache_dir`."""
    from synthetic_gguf import default_cache_dir

    key = json.dumps({"shape": asdict(shape), "writer": WRITER_VERSION}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    path = (cache_dir or default_cache_dir()) / f"mmproj-gemma4-synthetic-{digest}.gguf"
    if not path.is_file():
        write_mmproj(path, shape)
    return path
