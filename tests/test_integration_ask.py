"""`gemma-code ask` end to end: a real subprocess, real llama.cpp, the small real model."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import default_sigint

pytestmark = pytest.mark.llama

CLI = [sys.executable, "-m", "gemma_code"]


def ask(model: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "ask", "--model", str(model), "--no-context", "--n-ctx", "2048", *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
    )


def test_ask_streams_an_answer(tiny_model_path: Path) -> None:
    result = ask(tiny_model_path, "--max-tokens", "8", "Say hello.")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "Traceback" not in result.stderr
    assert "llama_model_loader" not in result.stderr  # llama.cpp's load log stays quiet


def test_ask_json_prints_the_documented_object(tiny_model_path: Path) -> None:
    result = ask(tiny_model_path, "--json", "--max-tokens", "8", "Say hello.")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert {"answer", "thoughts", "model", "stats"} <= set(payload)
    stats = payload["stats"]
    assert stats["completion_tokens"] + (stats["stop_reason"] == "stop") >= 1
    assert stats["prompt_tokens"] == stats["prompt_tokens_evaluated"] > 20
    assert stats["time_to_first_token_s"] > 0
    assert payload["model_info"]["chat_format"] == "gemma3"


def test_ask_with_a_missing_model_exits_4_without_traceback(tmp_path: Path) -> None:
    result = ask(tmp_path / "missing.gguf", "hello")
    assert result.returncode == 4
    assert "not found" in result.stderr or "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_ask_with_a_corrupt_model_exits_4(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 40)
    result = ask(bad, "hello")
    assert result.returncode == 4
    assert "Traceback" not in result.stderr


def test_sigint_stops_ask_with_exit_130_and_no_process_left(tiny_model_path: Path) -> None:
    proc = subprocess.Popen(
        [*CLI, "ask", "--model", str(tiny_model_path), "--no-context", "--n-ctx", "2048",
         "--max-tokens", "1500", "Write a long story."],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
        preexec_fn=default_sigint,  # a child inherits an ignored SIGINT (pytest run with `&`)
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready, "no answer started streaming"
        proc.stdout.read1(1)  # type: ignore[attr-defined]
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert "interrupted" in stderr and "Traceback" not in stderr
    time.sleep(0.1)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of the process group is left
