"""bench/synthetic_gemma4.py: the full-size Gemma 4 26B A4B writer (checked at a small size)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from synthetic_gguf import GEMMA4_26B_A4B, TINY, tensor_specs

ROOT = Path(__file__).resolve().parent.parent
TSV = ROOT / "tests" / "data" / "gemma4_26b_a4b_tensors.tsv"  # copied from the shared facts
N_VOCAB = 262144
SIZES = {"Q4_K": (256, 144), "Q6_K": (256, 210), "Q5_0": (32, 22), "Q8_0": (32, 34), "F32": (1, 4)}


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("synthetic_gemma4", ROOT / "bench" / "synthetic_gemma4.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["synthetic_gemma4"] = module
    spec.loader.exec_module(module)
    return module


def test_full_size_tensors_are_the_real_models_names_and_shapes() -> None:
    expected = {}
    for line in TSV.read_text(encoding="utf-8").splitlines():
        name, shape = line.split("\t")
        expected[name] = tuple(int(x) for x in shape.strip("[]").split(","))
    specs = tensor_specs(GEMMA4_26B_A4B, N_VOCAB)
    assert {s.name: s.shape for s in specs} == expected


def test_q4_k_m_mix_matches_the_measured_file_size() -> None:
    # gemma4-facts.md: the Q4_K_M mix of the real shapes is 15.62 GiB of tensor data
    pick = _script().q4_k_m_types(GEMMA4_26B_A4B.n_layers)
    total = 0
    for spec in tensor_specs(GEMMA4_26B_A4B, N_VOCAB):
        block, size = SIZES[pick(spec)]
        total += spec.n_elements // block * size
    assert total / 2**30 == pytest.approx(15.62, abs=0.01)


def test_q4_k_m_rules_follow_llama_cpp() -> None:
    pick = _script().q4_k_m_types(30)
    by_name = {s.name: pick(s) for s in tensor_specs(GEMMA4_26B_A4B, N_VOCAB)}
    assert by_name["token_embd.weight"] == "Q6_K"  # tied embeddings: also the output matrix
    assert by_name["blk.0.attn_norm.weight"] == "F32"
    assert by_name["blk.0.ffn_gate_inp.weight"] == "F32"  # the MoE router is never quantized
    assert by_name["blk.0.attn_q.weight"] == "Q4_K"
    assert by_name["blk.0.attn_v.weight"] == "Q6_K"  # first eighth of the layers: more bits
    assert by_name["blk.4.attn_v.weight"] == "Q4_K"
    assert by_name["blk.0.ffn_down.weight"] == "Q8_0"  # 2112-wide rows cannot hold Q6_K blocks
    assert by_name["blk.4.ffn_down_exps.weight"] == "Q5_0"  # nor 704-wide rows Q4_K


def test_small_model_is_q4_k_m_and_streams_each_tensor(tmp_path: Path, gemma4_vocab: Path) -> None:
    script = _script()
    out = tmp_path / "small.gguf"
    size = script.write(out, TINY, vocab=gemma4_vocab)
    from gemma_code.models.gguf_header import read_metadata

    meta = read_metadata(out)
    assert meta["general.file_type"] == 15  # MOSTLY_Q4_K_M
    assert meta["general.architecture"] == "gemma4"
    assert size == out.stat().st_size
    assert not (tmp_path / "small.gguf.partial").exists()


@pytest.mark.llama
def test_small_model_loads_and_generates_finite_logits(tmp_path: Path, gemma4_vocab: Path) -> None:
    import math

    import llama_cpp

    from gemma_code.engine.raw import RawLlama

    out = tmp_path / "small.gguf"
    _script().write(out, TINY, vocab=gemma4_vocab)
    with RawLlama(out, n_ctx=512, n_threads=1) as raw:
        prompt = raw.tokenize("<bos><|turn>user\nhello<turn|>\n<|turn>model\n", add_special=False)
        assert prompt[:2] == [2, 105]  # the real Gemma 4 tokenizer: <bos> <|turn>
        raw.prefill(prompt)
        logits = llama_cpp.llama_get_logits_ith(raw.ctx, -1)
        assert all(math.isfinite(logits[i]) for i in range(0, N_VOCAB, 997))
        assert len(raw.decode(raw.sample(-1), len(prompt), 4, stop_at_eog=False)) == 4
