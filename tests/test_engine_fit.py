"""The memory planner: n_ctx, KV type and expert placement from model facts and free memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemma_code.engine.fit import (
    CPU_DEFAULT_CTX,
    GiB,
    Memory,
    ModelFacts,
    facts_from_metadata,
    gpu_bytes,
    kv_bytes,
    plan,
)
from gemma_code.engine.hardware import parse_nvidia_smi
from gemma_code.errors import ConfigError
from gemma_code.models.gguf_header import read_metadata

Q4_K_M_FILE = 16_800_000_000  # published Gemma 4 26B A4B Q4_K_M (gemma4-facts.md)
EXPERTS = int(13.5 * GiB)  # 30 layers x 128 experts at ~4.8 bits per weight


@pytest.fixture(scope="module")
def gemma4(gemma4_vocab: Path) -> ModelFacts:
    """Gemma 4 26B A4B facts read from the real GGUF header (llama.cpp's vocab file)."""
    meta = read_metadata(gemma4_vocab)
    return facts_from_metadata(meta, Q4_K_M_FILE, EXPERTS)


def test_gemma4_facts_come_from_the_header(gemma4: ModelFacts) -> None:
    assert gemma4.arch == "gemma4"
    assert gemma4.n_layers == 30
    assert gemma4.context_length == 262144
    assert [i for i, s in enumerate(gemma4.sliding) if not s] == [5, 11, 17, 23, 29]
    assert gemma4.n_kv_heads[:6] == (8, 8, 8, 8, 8, 2)
    assert (gemma4.k_len, gemma4.k_len_swa, gemma4.window) == (512, 256, 1024)


def test_kv_cache_matches_gemma4_facts(gemma4: ModelFacts) -> None:
    # 20 KiB per token for the five full layers, ~300 MiB for the sliding window
    full_per_token = (kv_bytes(gemma4, 262144, "f16") - kv_bytes(gemma4, 131072, "f16")) // 131072
    assert full_per_token == 20 * 1024
    sliding = kv_bytes(gemma4, 262144, "f16") - full_per_token * 262144
    assert 280 * 2**20 < sliding < 320 * 2**20


@pytest.mark.parametrize(
    ("kv", "measured_gib"), [("f16", 22.1), ("q8_0", 20.4)]
)
def test_estimate_is_close_to_h200_measurement_and_not_below_it(
    gemma4: ModelFacts, kv: str, measured_gib: float
) -> None:
    estimate = gpu_bytes(gemma4, 262144, kv, cpu_moe=False) / GiB
    assert measured_gib - 0.3 <= estimate <= measured_gib + 0.8


@pytest.mark.parametrize(
    ("free_gib", "n_ctx", "kv", "cpu_moe"),
    [
        (139.0, 262144, "f16", False),  # H200
        (23.3, 262144, "f16", False),  # 24 GB card (RTX 4090/3090): 256K fits with f16
        (15.2, 262144, "f16", True),  # 16 GB card: weights do not fit, experts go to the CPU
        (11.5, 262144, "f16", True),  # 12 GB card
    ],
)
def test_plan_for_cards(
    gemma4: ModelFacts, free_gib: float, n_ctx: int, kv: str, cpu_moe: bool
) -> None:
    chosen = plan(gemma4, Memory(int(free_gib * GiB), "card"))
    assert (chosen.n_ctx, chosen.kv_type, chosen.cpu_moe, chosen.n_gpu_layers) == (
        n_ctx, kv, cpu_moe, -1
    )
    assert chosen.estimate <= free_gib * GiB
    assert f"{n_ctx:,}" in chosen.reason


def test_plan_prefers_q8_0_at_full_context_when_f16_does_not_fit(gemma4: ModelFacts) -> None:
    f16 = gpu_bytes(gemma4, 262144, "f16", cpu_moe=False)
    q8 = gpu_bytes(gemma4, 262144, "q8_0", cpu_moe=False)
    free = (f16 + q8) // 2 + 512 * 2**20
    chosen = plan(gemma4, Memory(free, "card"))
    assert (chosen.n_ctx, chosen.kv_type, chosen.cpu_moe) == (262144, "q8_0", False)


def test_plan_shrinks_the_window_before_moving_experts(gemma4: ModelFacts) -> None:
    chosen = plan(gemma4, Memory(int(19.5 * GiB), "20 GB card"))
    assert not chosen.cpu_moe
    assert 32768 <= chosen.n_ctx < 262144 and chosen.n_ctx % 4096 == 0
    assert "262,144 tokens would need" in chosen.reason


def test_plan_without_gpu_uses_a_modest_window(gemma4: ModelFacts) -> None:
    chosen = plan(gemma4, Memory(None, ram_free=64 * GiB))
    assert (chosen.n_ctx, chosen.kv_type, chosen.n_gpu_layers) == (CPU_DEFAULT_CTX, "f16", 0)
    assert "no GPU" in chosen.reason


def test_plan_without_gpu_keeps_a_smaller_model_maximum() -> None:
    small = ModelFacts("gemma3", 4, 8192, (True, True, True, False), (1,) * 4, 256, 256, 256,
                       256, 512, 300_000_000)
    assert plan(small, Memory(None)).n_ctx == 8192


def test_user_settings_win(gemma4: ModelFacts) -> None:
    chosen = plan(gemma4, Memory(139 * GiB), n_ctx=65536, kv_type="q8_0", cpu_moe="on")
    assert (chosen.n_ctx, chosen.kv_type, chosen.cpu_moe) == (65536, "q8_0", True)


def test_n_ctx_above_the_model_maximum_is_capped_with_a_note(gemma4: ModelFacts) -> None:
    chosen = plan(gemma4, Memory(139 * GiB), n_ctx=1_000_000)
    assert chosen.n_ctx == 262144
    assert any("capped" in note for note in chosen.notes)


def test_plan_offloads_some_layers_when_nothing_fits(gemma4: ModelFacts) -> None:
    chosen = plan(gemma4, Memory(int(4 * GiB), "tiny card"), cpu_moe="off")
    assert 0 <= chosen.n_gpu_layers < 30
    assert "too little" in chosen.reason


def test_gemma3_sliding_pattern_comes_from_the_architecture(tiny_model_path: Path) -> None:
    meta = read_metadata(tiny_model_path)
    facts = facts_from_metadata(meta, tiny_model_path.stat().st_size)
    assert facts.n_layers == 18
    assert [i for i, s in enumerate(facts.sliding) if not s] == [5, 11, 17]
    assert facts.window == 512 and not facts.is_moe


def test_parse_nvidia_smi_reads_free_memory() -> None:
    gpus = parse_nvidia_smi("0, NVIDIA GeForce RTX 4090, 24564, 23800, 550.54\nnot a row\n")
    assert len(gpus) == 1
    assert gpus[0].name == "NVIDIA GeForce RTX 4090"
    assert gpus[0].free == 23800 * 2**20
    assert gpus[0].driver == "550.54"


@pytest.mark.parametrize(("kv", "moe"), [("f32", "auto"), ("auto", "maybe")])
def test_unknown_settings_are_config_errors(gemma4: ModelFacts, kv: str, moe: str) -> None:
    with pytest.raises(ConfigError, match="is not one of"):
        plan(gemma4, Memory(None), kv_type=kv, cpu_moe=moe)


def test_every_kv_type_the_settings_allow_has_a_size() -> None:
    from gemma_code.config import CHOICES
    from gemma_code.engine.fit import KV_BYTES

    assert set(CHOICES["kv_type"]) - {"auto"} == set(KV_BYTES)
