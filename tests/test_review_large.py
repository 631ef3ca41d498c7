"""Issue 14, item 4: a 4 MB staged file cannot hang the review or the hook past --timeout.

Splitting is linear and bounded by what is reviewed, every stage checks the deadline, and an
oversized file is reviewed in part with a notice. Times are measured by bench/ (BENCHMARKS.md),
never asserted here: the deadline test runs on a simulated clock.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import git

from gemma_code.config import Settings
from gemma_code.engine.scripted import ScriptedEngine
from gemma_code.review import hook
from gemma_code.tasks.review import Deadline, ReviewTimeoutError, collect_target, run_review

CLEAN = '{"findings": []}'
BUG = "def add(a, b):\n    return a - b\n"


def stage_big_file(repo: Path, size: int = 4 << 20) -> int:
    """A real 4 MB generated-looking Python file, staged with a small bug in util.py."""
    rows = []
    total = n = 0
    while total < size:
        row = f"def handler_{n}(request, retries={n % 7}):\n    return dispatch(request, {n}, retries)\n\n"
        rows.append(row)
        total += len(row)
        n += 1
    (repo / "big.py").write_text("".join(rows), encoding="utf-8")
    (repo / "util.py").write_text(BUG, encoding="utf-8")
    git(repo, "add", "big.py", "util.py")
    return (repo / "big.py").stat().st_size


def test_the_hook_reviews_part_of_a_4mb_staged_file_and_lets_a_clean_commit_through(
        git_repo: Path, tmp_path: Path) -> None:
    assert stage_big_file(git_repo) >= 4 << 20
    hook.install(git_repo)
    log = tmp_path / "seen.jsonl"
    script = tmp_path / "replies.json"
    script.write_text(json.dumps({"replies": [CLEAN] * 40, "log": str(log)}), encoding="utf-8")
    env = {**os.environ, "GEMMA_CODE_ENGINE": "scripted", "GEMMA_CODE_SCRIPT": str(script),
           "GEMMA_CODE_REVIEW_TIMEOUT": "120"}  # ample: the deadline is tested on a simulated clock
    proc = subprocess.run(["git", "commit", "-q", "-m", "big"], cwd=git_repo, env=env,
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "did NOT run" not in output  # reviewed, not failed open
    assert "big.py: only part of this diff was reviewed (the first" in output
    assert "per-file limit" in output
    prompts = [json.loads(line)["messages"][1]["content"] for line in log.read_text().splitlines()]
    assert 1 < len(prompts) < 10
    assert "    1 + def handler_0(request, retries=0):" in prompts[0]
    assert any("    2 +     return a - b" in p for p in prompts)  # util.py was not crowded out
    assert git(git_repo, "status", "--porcelain") == ""  # committed


@dataclass
class FakeClock:
    """A clock that only moves when the tokenizer works: 1 ms per count."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


class SlowTokenizer(ScriptedEngine):
    """The scripted engine, with a tokenizer that costs simulated time and counts its calls."""

    clock: FakeClock
    counts: int = 0

    def count_tokens(self, text: str) -> int:
        self.counts += 1
        self.clock.now += 0.001
        return super().count_tokens(text)


def _engine(clock: FakeClock, *replies: str) -> SlowTokenizer:
    engine = SlowTokenizer(replies=list(replies), n_ctx=8192)
    engine.clock = clock
    return engine


def test_the_deadline_stops_a_review_while_the_4mb_diff_is_split(git_repo: Path) -> None:
    stage_big_file(git_repo)
    target = collect_target(cwd=git_repo)
    clock = FakeClock()
    engine = _engine(clock, CLEAN, CLEAN, CLEAN, CLEAN, CLEAN, CLEAN)
    with pytest.raises(ReviewTimeoutError) as caught:
        run_review(engine, target, Settings(context=False), max_tokens=512, use_cache=False,
                   deadline=Deadline(0.5, clock=clock))
    assert "(while splitting the diff)" in caught.value.message
    assert engine.calls == []  # stopped before any generation
    assert clock.now < 0.5 + 0.3  # stopped within 256 lines of the deadline (simulated time)


def test_splitting_a_4mb_diff_counts_each_reviewed_line_once(git_repo: Path) -> None:
    stage_big_file(git_repo)
    target = collect_target(cwd=git_repo)
    lines = sum(len(h.lines) for c in target.changes for h in c.hunks)
    clock = FakeClock()
    engine = _engine(clock, *[CLEAN] * 10)
    result = run_review(engine, target, Settings(context=False), max_tokens=512, use_cache=False,
                        deadline=Deadline(None, clock=clock))
    assert sorted(result.reviewed) == ["big.py", "util.py"] and result.complete
    assert any(n.startswith("big.py: only part of this diff was reviewed") for n in result.notices)
    assert engine.counts < lines // 10  # bounded by the part reviewed, not the 4 MB
    assert all(len(call.prompt) < 8192 * 8 for call in engine.calls)


def test_the_alarm_interrupts_a_blocking_call_and_restores_the_handler() -> None:
    """What stops a long model load or prefill: the exception lands when the call returns."""
    import signal
    import threading

    from gemma_code.review.deadline import alarm

    class Late(Exception):
        pass

    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(Late), alarm(0.01, Late):
        threading.Event().wait(120)  # a blocking call that never returns by itself in time
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with alarm(None, Late):  # no budget: nothing armed
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
