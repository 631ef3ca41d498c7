"""`ask` as a user runs it: progress in a terminal (a real pty), never in a pipe or in --json;
a prompt cache that still hits when only --max-tokens changes. Real llama.cpp, the small model."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.llama

CLI = [sys.executable, "-m", "gemma_code", "ask"]
ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", "TERM": "xterm"}


def in_pty(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal; (exit code, everything it drew)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            env=_env())
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=300), b"".join(chunks).decode("utf-8", "replace")


def long_file(folder: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text("".join(f"line {i}: the quick brown fox jumps over the lazy dog\n"
                            for i in range(60)), encoding="utf-8")
    return path


def test_a_long_prompt_shows_its_reading_progress_in_a_terminal(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    notes = long_file(tmp_path)
    code, drawn = in_pty([*CLI, "--model", str(tiny_model_path), "--no-context", "--n-ctx", "2048",
                          "--max-tokens", "4", "-f", str(notes), "Summarize."], tmp_path)
    assert code == 0, drawn
    assert "reading the prompt" in drawn and "tokens" in drawn


def test_json_in_a_terminal_prints_the_object_alone(tiny_model_path: Path, tmp_path: Path) -> None:
    notes = long_file(tmp_path)
    code, drawn = in_pty([*CLI, "--model", str(tiny_model_path), "--no-context", "--n-ctx", "2048",
                          "--max-tokens", "4", "--json", "-f", str(notes), "Summarize."], tmp_path)
    assert code == 0, drawn
    assert "reading the prompt" not in drawn
    payload = json.loads(drawn[drawn.index("{"):])
    assert payload["stats"]["prompt_tokens"] > 256


def test_a_pipe_gets_no_progress(tiny_model_path: Path, tmp_path: Path) -> None:
    notes = long_file(tmp_path)
    result = subprocess.run(
        [*CLI, "--model", str(tiny_model_path), "--no-context", "--n-ctx", "2048", "--max-tokens",
         "4", "-f", str(notes), "Summarize."],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_env(),
        stdin=subprocess.DEVNULL, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "reading the prompt" not in result.stderr + result.stdout
    assert "note:" not in result.stderr  # notes are for terminals


def test_changing_max_tokens_keeps_the_prompt_cache_hit(tiny_model_path: Path, git_repo: Path) -> None:
    for i in range(8):
        (git_repo / f"mod{i}.py").write_text(
            "".join(f"def handler_{i}_{j}(request, retries={j}):\n    return request.send(retries)\n\n"
                    for j in range(12)), encoding="utf-8")
    subprocess.run(["git", "add", "."], cwd=git_repo, check=True)

    def ask(max_tokens: int) -> dict[str, int]:
        result = subprocess.run(
            [*CLI, "--model", str(tiny_model_path), "--n-ctx", "2048", "--budget", "100000",
             "--max-tokens", str(max_tokens), "--json", "where are requests sent?"],
            cwd=git_repo, capture_output=True, text=True, timeout=300, env=_env(),
            stdin=subprocess.DEVNULL, check=False,
        )
        assert result.returncode == 0, result.stderr
        stats: dict[str, int] = json.loads(result.stdout)["stats"]
        return stats

    first = ask(8)
    second = ask(64)
    assert first["prompt_tokens"] > 700  # the repository context is there
    assert second["prompt_tokens"] == first["prompt_tokens"]
    assert second["prompt_tokens_reused"] >= second["prompt_tokens"] - 40  # the prefix came from disk
