"""On a CPU: defaults sized to the machine, prompt-reading progress, Ctrl-C inside a prefill.

Real llama.cpp with the small real model (Gemma 3 270M runs on the CPU here).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from gemma_code.config import Settings, load_settings
from gemma_code.engine.llamacpp import load_llamacpp_engine
from gemma_code.engine.sizing import speed_file

pytestmark = pytest.mark.llama


def test_cpu_lowers_the_budget_and_answer_length_nobody_set(tiny_model_path: Path) -> None:
    settings = load_settings({"model": str(tiny_model_path), "n_ctx": 1024, "n_threads": 1}).settings
    assert settings.sizable == ("budget", "max_tokens")
    engine = load_llamacpp_engine(settings)
    try:
        assert engine.info.backend == "cpu"
        assert settings.budget < Settings().budget and settings.max_tokens < Settings().max_tokens
        assert engine.info.sizing in engine.info.notes
        assert f"--budget {settings.budget:,}" in engine.info.sizing
        assert "estimated" in engine.info.sizing and "raise them" in engine.info.sizing
    finally:
        engine.close()


def test_values_set_by_flag_or_config_are_never_lowered(tiny_model_path: Path, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / ".gemma-code.toml").write_text("budget = 30000\n", encoding="utf-8")
    loaded = load_settings({"model": str(tiny_model_path), "n_ctx": 1024, "max_tokens": 1500},
                           cwd=project)
    assert loaded.settings.sizable == ()
    engine = load_llamacpp_engine(loaded.settings)
    try:
        assert (loaded.settings.budget, loaded.settings.max_tokens) == (30000, 1500)
        assert engine.info.sizing == ""
    finally:
        engine.close()


def test_a_run_records_its_speeds_and_the_next_load_uses_them(tiny_model_path: Path) -> None:
    settings = Settings(model=str(tiny_model_path), n_ctx=1024, n_threads=1, n_batch=64)
    engine = load_llamacpp_engine(settings)
    try:
        assert not engine.speeds().measured
        prompt = engine.tokenize("word " * 200)
        for _ in engine.generate_tokens(prompt, max_tokens=0, temperature=0.0):
            pass
        assert speed_file().is_file()
        assert engine.speeds().measured and engine.speeds().prefill > 0
    finally:
        engine.close()


def test_a_long_prompt_reports_its_progress_slice_by_slice(tiny_model_path: Path) -> None:
    engine = load_llamacpp_engine(Settings(model=str(tiny_model_path), n_ctx=1024, n_batch=64,
                                           n_threads=1))
    seen: list[tuple[int, int]] = []
    engine.progress = lambda done, total: seen.append((done, total))
    try:
        prompt = engine.tokenize("word " * 200)
        for _ in engine.generate_tokens(prompt, max_tokens=0, temperature=0.0):
            pass
    finally:
        engine.close()
    total = len(prompt)
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) == -(-total // 64) + 1


def test_ctrl_c_stops_a_prefill_inside_the_slice_being_evaluated(tiny_model_path: Path) -> None:
    # n_batch larger than the prompt: one llama_decode call. SIGINT arrives as it starts; without
    # the abort callback the whole slice would be evaluated before Python could react.
    engine = load_llamacpp_engine(Settings(model=str(tiny_model_path), n_ctx=2048, n_batch=2048,
                                           n_threads=1))
    engine.progress = lambda done, total: signal.raise_signal(signal.SIGINT) if done == 0 else None
    try:
        prompt = engine.tokenize("word " * 1500)
        assert len(prompt) > 1000
        with pytest.raises(KeyboardInterrupt):
            for _ in engine.generate_tokens(prompt, max_tokens=4, temperature=0.0):
                pass
        assert engine.kv_tokens() == []  # the aborted slice left nothing half-evaluated
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        engine.progress = None
        text = list(engine.generate_tokens(prompt[:50], max_tokens=2, temperature=0.0))
        assert text[-1].stats is not None  # the engine still works
    finally:
        engine.close()
