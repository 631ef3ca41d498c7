"""CPU-sized defaults (engine/sizing.py) and the layered settings that decide what may be sized."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemma_code.config import Settings, load_settings
from gemma_code.engine.sizing import (
    MIN_BUDGET,
    MIN_MAX_TOKENS,
    Speeds,
    active_bytes,
    cpu_defaults,
    estimate,
    measured,
    record,
    size_settings,
)
from gemma_code.errors import ConfigError, ExitCode


def test_budget_fits_the_first_token_target_and_never_grows() -> None:
    budget, max_tokens = cpu_defaults(Speeds(200.0, 10.0, True), budget=32768, max_tokens=2048)
    assert budget == (200 * 15 - 300) // 256 * 256 and max_tokens == 400 // 64 * 64
    assert cpu_defaults(Speeds(1e6, 1e6, True), budget=1000, max_tokens=100) == (1000, 100)


def test_a_very_slow_machine_still_gets_the_floors() -> None:
    assert cpu_defaults(Speeds(1.0, 0.1, True), budget=32768, max_tokens=2048) == (
        MIN_BUDGET, MIN_MAX_TOKENS)


def test_only_the_sizable_settings_are_lowered_and_the_note_says_how_to_raise_them() -> None:
    settings = Settings()
    settings.sizable = ("max_tokens",)
    note = size_settings(settings, Speeds(100.0, 5.0, False))
    assert settings.budget == Settings().budget and settings.max_tokens == 192
    assert note is not None and "--max-tokens 192" in note and "--budget" not in note
    assert "estimated" in note and "raise them" in note
    assert size_settings(Settings(), Speeds(1.0, 1.0, True)) is None  # made in code: untouched


def test_moe_experts_count_by_the_share_of_experts_used() -> None:
    meta = {"general.architecture": "gemma4", "gemma4.expert_count": 128,
            "gemma4.expert_used_count": 8}
    sizes = {"blk.0.ffn_gate_up_exps.weight": 128_000, "blk.0.attn_q.weight": 1000}
    assert active_bytes(meta, sizes) == 1000 + 8_000
    dense = estimate({"general.architecture": "x"}, {"w": 10**9}, threads=2)
    assert dense.prefill == pytest.approx(16.0) and not dense.measured


def test_measured_speeds_blend_old_and_new() -> None:
    fallback = Speeds(10.0, 1.0, False)
    assert measured("k") is None
    record("k", prefill=100.0, decode=None, fallback=fallback)
    assert measured("k") == Speeds(100.0, 1.0, True)
    record("k", prefill=50.0, decode=3.0, fallback=fallback)
    assert measured("k") == Speeds(75.0, 2.0, True)


def test_sizable_lists_only_what_no_layer_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(cwd=tmp_path).settings.sizable == ("budget", "max_tokens")
    monkeypatch.setenv("GEMMA_CODE_BUDGET", "4000")
    assert load_settings(cwd=tmp_path).settings.sizable == ("max_tokens",)
    assert load_settings({"max_tokens": 99}, cwd=tmp_path).settings.sizable == ()


@pytest.mark.parametrize("line", ["budget = -5", "max_tokens = 0", "n_threads = -3", "top_p = 1.5"])
def test_config_values_get_the_same_range_checks_as_flags(tmp_path: Path, line: str) -> None:
    (tmp_path / ".gemma-code.toml").write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(cwd=tmp_path)
    key = line.split()[0]
    assert f"`{key}` must be" in info.value.message and ".gemma-code.toml" in info.value.message
    assert info.value.exit_code == ExitCode.CONFIG


def test_an_environment_value_out_of_range_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMMA_CODE_MAX_TOKENS", "0")
    with pytest.raises(ConfigError, match=r"\$GEMMA_CODE_MAX_TOKENS: `max_tokens` must be at least 1"):
        load_settings(cwd=tmp_path)


def test_the_budget_sticks_while_the_speeds_move_a_little() -> None:
    first = Settings()
    first.sizable = ("budget",)
    size_settings(first, Speeds(200.0, 10.0, True), key="m")
    second = Settings()
    second.sizable = ("budget",)
    size_settings(second, Speeds(260.0, 10.0, True), key="m")  # the prefix must not move
    assert second.budget == first.budget
    third = Settings()
    third.sizable = ("budget",)
    size_settings(third, Speeds(800.0, 10.0, True), key="m")  # a different machine load: resize
    assert third.budget > 2 * first.budget
