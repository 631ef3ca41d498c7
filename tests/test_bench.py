"""`gemma-code bench`: plans, figures, llama-bench parsing, and a small run on the tiny model."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cli_runner import CliRunner

from gemma_code.benchmark.llama_bench import llama_bench_args, parse_llama_bench
from gemma_code.benchmark.speed import (
    BenchPlan,
    BenchReport,
    Figure,
    K,
    corpus_tokens,
    edit_prompt,
    make_plan,
    measure_llama_bench,
)
from gemma_code.cli import app
from gemma_code.config import Settings

# what `llama-bench -o json` prints (fields trimmed to those we read, plus a few others)
LLAMA_BENCH_JSON = json.dumps([
    {"build_commit": "abc", "model_type": "gemma4 ?B Q4_K - Medium", "n_batch": 512,
     "n_prompt": 1024, "n_gen": 0, "n_depth": 0, "avg_ns": 128000000, "avg_ts": 7979.5},
    {"n_prompt": 8192, "n_gen": 0, "n_depth": 0, "avg_ts": 8966.1},
    {"n_prompt": 0, "n_gen": 128, "n_depth": 0, "avg_ts": 225.3},
    {"n_prompt": 0, "n_gen": 128, "n_depth": 32768, "avg_ts": 194.2},
])


def test_gpu_plan_reaches_toward_n_ctx() -> None:
    plan = make_plan(quick=False, gpu=True, n_ctx_limit=262144)
    assert plan.prefill_sizes == (1 * K, 8 * K, 32 * K, 64 * K, 128 * K)
    assert plan.deep == 32 * K
    assert plan.n_ctx >= 128 * K + plan.decode_tokens


def test_gpu_plan_stops_below_a_small_context() -> None:
    assert make_plan(quick=False, gpu=True, n_ctx_limit=40 * K).prefill_sizes == (1 * K, 8 * K, 32 * K)


def test_quick_and_cpu_plans_stay_small() -> None:
    for plan in (make_plan(quick=True, gpu=True), make_plan(quick=False, gpu=False)):
        assert max(plan.prefill_sizes) <= 4 * K
        assert plan.n_ctx <= 8 * K


def test_ratio_is_relative_speed_for_rates_and_times() -> None:
    assert Figure("d", "decode", "tok/s", ours=97.0, reference=100.0).ratio == pytest.approx(0.97)
    assert Figure("t", "first token", "s", ours=0.5, reference=1.0).ratio == pytest.approx(2.0)
    assert Figure("x", "x", "tok/s", ours=None, reference=1.0).ratio is None


def test_parse_llama_bench_keys_prefill_by_size_and_decode_by_depth() -> None:
    assert parse_llama_bench(LLAMA_BENCH_JSON) == {
        "prefill_1024": 7979.5, "prefill_8192": 8966.1, "decode_0": 225.3, "decode_32768": 194.2,
    }


def test_llama_bench_runs_match_our_settings() -> None:
    plan = BenchPlan((1 * K, 8 * K), decode_tokens=128, deep=32 * K)
    prefill, decode = llama_bench_args("llama-bench", Path("m.gguf"), plan, Settings(n_threads=4))
    assert prefill[prefill.index("-p") + 1] == "1024,8192"
    assert decode[decode.index("-d") + 1] == "0,32768"
    assert decode[decode.index("-n") + 1] == "128"
    for run in (prefill, decode):
        assert run[run.index("-fa") + 1] == "1"
        assert run[run.index("-t") + 1] == "4"
        assert run[run.index("-ub") + 1] == "512"


def _fake_llama_bench(tmp_path: Path, body: str) -> str:
    exe = tmp_path / "llama-bench"
    exe.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def test_llama_bench_figures_fill_the_reference_column(tmp_path: Path) -> None:
    data = tmp_path / "out.json"
    data.write_text(LLAMA_BENCH_JSON, encoding="utf-8")
    exe = _fake_llama_bench(tmp_path, f"cat {data}\n")
    plan = BenchPlan((1 * K,), decode_tokens=128, deep=32 * K)
    report = BenchReport("m", "cuda", "gpu", "llama-bench", plan)
    report.figure("prefill_1024", "prefill 1K", "tok/s").ours = 7000.0
    report.figure("decode_32768", "decode at depth 32K", "tok/s").ours = 190.0
    assert measure_llama_bench(exe, Path("m.gguf"), plan, Settings(), report, lambda _: None)
    assert report.figure("prefill_1024", "", "tok/s").reference == 7979.5
    assert report.figure("decode_32768", "", "tok/s").reference == 194.2


def test_a_failing_llama_bench_is_reported_not_raised(tmp_path: Path) -> None:
    exe = _fake_llama_bench(tmp_path, "echo 'no CUDA device' >&2\nexit 1\n")
    report = BenchReport("m", "cuda", "gpu", "llama-bench", BenchPlan((K,), 8, 0))
    assert not measure_llama_bench(exe, Path("m.gguf"), report.plan, Settings(), report, lambda _: None)
    assert "no CUDA device" in report.notes[0]


def test_corpus_prompts_have_the_asked_size_and_differ_by_salt() -> None:
    def tokenize(text: str) -> list[int]:
        return [ord(c) for c in text]

    a, b = corpus_tokens(tokenize, 5000, salt=1), corpus_tokens(tokenize, 5000, salt=2)
    assert len(a) == len(b) == 5000
    assert a != b and a[40:] == b[40:]


def test_edit_prompt_ends_inside_the_copied_file() -> None:
    prompt = edit_prompt("gemma4", chars=500)
    assert prompt.startswith("<bos><|turn>system\n")
    assert "<|turn>model\n" in prompt
    # the file is quoted whole lines only, and the reply begins copying its first line
    assert "```python\n" + '"""Prompt-lookup speculative decoding: draft' in prompt
    assert prompt.endswith("```python\n" + '"""Prompt-lookup speculative decoding: d')
    assert "\n```<turn|>" in prompt


@pytest.mark.llama
def test_bench_json_reports_both_sides_on_the_tiny_model(
    tiny_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gemma_code.benchmark import speed as benchmark

    small = BenchPlan((64,), decode_tokens=6, deep=64, followup_tokens=8, edit_tokens=12,
                      edit_chars=400)
    monkeypatch.setattr(benchmark, "make_plan", lambda **_: small)
    monkeypatch.setenv("PATH", os.defpath)  # no llama-bench: the low-level loop is the reference
    result = CliRunner().invoke(
        app, ["bench", "--json", "--model", str(tiny_model_path), "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["reference"] == "low-level loop"
    figures = {f["key"]: f for f in report["figures"]}
    for key in ("load", "prefill_64", "ttft", "followup_ttft", "decode_0", "decode_64"):
        assert figures[key]["ours"] > 0 and figures[key]["reference"] > 0, key
        assert figures[key]["ratio"] > 0
    assert figures["followup_ttft"]["note"] == "64 tokens reused"  # the whole first prompt
    assert figures["spec_speedup"]["reference"] > 0


def test_llama_bench_runs_with_the_engines_default_thread_count() -> None:
    from gemma_code.engine.hardware import default_threads

    plan = BenchPlan((1 * K,), decode_tokens=16, deep=K)
    for run in llama_bench_args("llama-bench", Path("m.gguf"), plan, Settings(n_threads=0)):
        assert run[run.index("-t") + 1] == str(default_threads())
