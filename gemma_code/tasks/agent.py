"""The agent loop: the model calls tools in Gemma 4's native format until it answers.

A task in the layered sense: it takes an engine (never opens or closes one), does no
terminal I/O, and reports through the events it yields (tasks/agent_events.py). Approval
questions go to the `approver` callback of its Permissions; without one they are refused.

Each step appends to the conversation (the model's calls, then one `tool` message per
result), so the engine reuses the KV cache of everything before; the tokens evaluated and
reused are recorded per step. Guards: at most `max_steps` steps; the same call three times
in a row is not run again (the model is told); a fourth time stops the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gemma_code.engine.base import Engine, GenerationStats, Message
from gemma_code.engine.gemma_tools import (
    RESPONSE_OPEN,
    CallWatcher,
    ParsedReply,
    ToolCall,
    ToolSpec,
    parse_reply,
)
from gemma_code.errors import GemmaCodeError
from gemma_code.tasks.agent_events import (
    AgentEvent,
    DoneEvent,
    ErrorEvent,
    NoteEvent,
    RunStats,
    StepEvent,
    StepStats,
    TextDelta,
    TextEvent,
    ThoughtEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from gemma_code.tasks.agent_prompt import (
    project_instructions,
    system_text,
    task_text,
)
from gemma_code.tasks.agent_window import Window
from gemma_code.tasks.prompting import prompt_tokens
from gemma_code.tools import Permissions, Tool, Toolbox, ToolContext, ToolError, builtin_tools
from gemma_code.tools.permissions import check_mode

if TYPE_CHECKING:
    from gemma_code.tools.sandbox import Sandbox

REPEAT_REFUSE = 3  # the same call this many times in a row is not run again
REPEAT_STOP = 4  # ... and this many times stops the run


@dataclass
class AgentOptions:
    """How a run behaves; the faces fill it from the settings and flags."""

    mode: str = "ask"
    max_steps: int = 30
    max_tokens: int = 2048  # per model step
    think: bool = False
    temperature: float | None = None
    context_budget: int = 32_768  # tokens of packed repository context in the first prompt
    use_context: bool = True
    result_tokens: int = 4_000  # the most tokens one tool result may take
    command_timeout_s: float = 300.0
    max_calls_per_reply: int = 4


@dataclass
class StepRecord:
    """What one step wrote, for /undo: journal entries, newest last."""

    step: int
    journal_ids: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def call_key(call: ToolCall) -> str:
    """Identity of a call for the repetition guard: name and arguments, key order ignored."""
    return call.name + json.dumps(call.arguments, sort_keys=True, default=str)


class AgentSession:
    """One conversation with tools: `run(task)` for each user turn (the chat sends several)."""

    def __init__(
        self,
        engine: Engine,
        root: Path,
        options: AgentOptions | None = None,
        *,
        permissions: Permissions | None = None,
        extra_tools: Sequence[Tool] = (),
        sandbox: Sandbox | None = None,
    ) -> None:
        self.engine = engine
        self.root = Path(root).resolve()
        self.options = options or AgentOptions()
        self.permissions = permissions or Permissions(mode=self.options.mode)
        self.toolbox = Toolbox([*builtin_tools(), *extra_tools])
        self.messages: list[Message] = []
        self.records: list[StepRecord] = []
        self.run_id = f"{time.time_ns():020d}"
        self.stats = RunStats()
        self._streak: tuple[str, int] = ("", 0)  # the last call's identity, and how often in a row
        self.window = Window(engine, think=self.options.think, max_tokens=self.options.max_tokens)
        self.ctx = ToolContext(self.root, engine.count_tokens,
                               max_result_tokens=self.options.result_tokens,
                               command_timeout_s=self.options.command_timeout_s)
        self._sandbox = sandbox
        self.set_mode(self.options.mode)

    # -- mode --------------------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        """Switch the permission mode; full-auto needs a working sandbox (ConfigError if none)."""
        check_mode(mode)
        if mode == "full-auto":
            if self._sandbox is None:
                from gemma_code.tools.sandbox import require_sandbox

                self._sandbox = require_sandbox()
            self.ctx.sandbox = self._sandbox
        else:
            self.ctx.sandbox = None
        self.options.mode = mode
        self.permissions.mode = mode

    # -- prompt ------------------------------------------------------------------------------

    def tool_specs(self) -> tuple[ToolSpec, ...]:
        """The tools as declared to the model."""
        return tuple(ToolSpec(t.name, t.description, t.parameters) for t in self.toolbox)

    def _first_messages(self, task: str, notes: list[str]) -> list[Message]:
        count = self.engine.count_tokens
        instructions, found = project_instructions(self.root, count)
        notes += found
        specs = self.tool_specs()
        bare = Message("system", system_text(instructions, None), tools=specs)
        repo_context = self._pack(task, bare, notes) if self.options.use_context else None
        system = Message("system", system_text(instructions, repo_context), tools=specs)
        return [system, Message("user", task_text(task, self.options.mode))]

    def _pack(self, task: str, bare: Message, notes: list[str]) -> str | None:
        """The packed repository context, in at most half of what the window leaves free."""
        from gemma_code.context import build_context

        info = self.engine.info
        fixed = prompt_tokens(self.engine, [bare, Message("user", task)], think=self.options.think)
        room = (info.n_ctx - self.options.max_tokens - fixed) // 2
        budget = min(self.options.context_budget, room)
        if budget < 256:
            notes.append("no room for repository context in this context window")
            return None
        packed = build_context(
            self.root, task, budget=budget, count_tokens=self.engine.count_tokens,
            tokenizer_id=f"engine:{info.backend}:{info.name}:{info.path}",
        )
        return packed.text or None

    # -- the loop ----------------------------------------------------------------------------

    def run(self, task: str) -> Iterator[AgentEvent]:
        """Work on `task` until the model answers or a guard stops it; DoneEvent comes last."""
        start = time.perf_counter()
        self.stats = stats = RunStats()
        opts = self.options
        answer = ""
        try:
            if not self.messages:
                self.messages = self._first_messages(task, stats.notes)
                for note in stats.notes:
                    yield NoteEvent(message=note)
            else:
                self.messages.append(Message("user", task_text(task, opts.mode)))
            self._streak = ("", 0)
            keep_last = 1
            for step in range(1, opts.max_steps + 2):
                if step > opts.max_steps:
                    stats.stop_reason = "max_steps"
                    yield ErrorEvent(message=f"stopped after {opts.max_steps} steps without an "
                                             "answer", hint="raise --max-steps, or split the task")
                    break
                step_stats = StepStats(step)
                stats.steps.append(step_stats)
                t0 = time.perf_counter()
                self.messages, reply_tokens, notes = self.window.fit(self.messages, keep_last)
                step_stats.render_ms = (time.perf_counter() - t0) * 1000
                for note in notes:
                    stats.notes.append(note)
                    yield NoteEvent(message=note)
                raw, thought, gen = yield from self._generate(reply_tokens)
                self._account(step_stats, gen)
                self.window.observed(len(self.messages), gen[0].prompt_tokens)
                t1 = time.perf_counter()
                names = list(self.toolbox.tools)
                parsed = parse_reply(raw, names, max_calls=opts.max_calls_per_reply)
                step_stats.parse_ms = (time.perf_counter() - t1) * 1000
                thought = parsed.thought or thought
                if thought.strip():
                    yield ThoughtEvent(text=thought.strip(), step=step)
                if parsed.text.strip():
                    yield TextEvent(text=parsed.text.strip(), step=step)
                if not parsed.calls:
                    self.messages.append(Message("model", parsed.text))
                    if not parsed.errors:
                        answer = parsed.text.strip()
                        yield StepEvent(stats=step_stats.to_dict())
                        stats.stop_reason = "answer"
                        break
                    problems = "\n".join(f"- {e}" for e in parsed.errors)
                    self.messages.append(Message("user", "Your tool call could not be run:\n"
                                                 f"{problems}\nFix the call, or answer."))
                    yield NoteEvent(message="the model's tool call was malformed: "
                                            + "; ".join(parsed.errors))
                    keep_last = 1
                    yield StepEvent(stats=step_stats.to_dict())
                    continue
                self.messages.append(Message("model", "", tool_calls=tuple(parsed.calls),
                                             reasoning=thought.strip()))
                stopped = yield from self._run_calls(parsed, step_stats)
                keep_last = len(parsed.calls) + 1
                yield StepEvent(stats=step_stats.to_dict())
                if stopped:
                    break
        except GemmaCodeError as exc:
            stats.stop_reason = "error"
            yield ErrorEvent(message=exc.message, hint=exc.hint or "", exit_code=int(exc.exit_code))
        finally:
            self.repair()
            stats.elapsed_s = time.perf_counter() - start
        yield DoneEvent(answer=answer, stats=stats.to_dict())

    def _run_calls(self, parsed: ParsedReply, step_stats: StepStats) -> Generator[AgentEvent, None, bool]:
        """Run one reply's calls in order (guards, permissions, results); True: stop the run."""
        step = step_stats.step
        stats = self.stats
        record = StepRecord(step)
        self.records.append(record)
        self.ctx.journal_extra = {"run": self.run_id, "step": str(step)}
        for index, call in enumerate(parsed.calls):
            key, streak = self._streak
            streak = streak + 1 if call_key(call) == key else 1
            self._streak = (call_key(call), streak)
            yield ToolCallEvent(name=call.name, arguments=dict(call.arguments), step=step)
            if streak >= REPEAT_STOP:
                stats.stop_reason = "repetition"
                self._add_result(call.name, False, "the run was stopped: this call was repeated "
                                 "too often")
                yield ErrorEvent(message=f"stopped: the model made the same {call.name} call "
                                         f"{streak} times in a row",
                                 hint="rephrase the task, or use a larger model")
                return True
            started = time.perf_counter()
            changed: list[str] = []
            if streak == REPEAT_REFUSE:
                ok, output = False, (
                    f"not run: you made this exact {call.name} call {streak} times in a row and "
                    "its result will not change. Do something different, or give your answer now")
                yield NoteEvent(message=f"repeated call to {call.name} not run ({streak} times "
                                        "in a row)")
            else:
                ok, output, changed, waited = self._execute(call, record)
                started += waited  # time spent waiting for the user is not the loop's
            step_stats.tool_ms += (time.perf_counter() - started) * 1000
            step_stats.calls += 1
            stats.tool_calls += 1
            if index == len(parsed.calls) - 1 and parsed.errors:
                output += "\n\nAlso: " + " ".join(parsed.errors)
            self._add_result(call.name, ok, output)
            yield ToolResultEvent(name=call.name, ok=ok, output=output, step=step, changed=changed)
        return False

    def _generate(
        self, max_tokens: int
    ) -> Generator[AgentEvent, None, tuple[str, str, tuple[GenerationStats, float]]]:
        """Stream one reply: TextDelta events until a call starts; returns (raw, thought, stats)."""
        opts = self.options
        watcher = CallWatcher()
        thought = ""
        gen = GenerationStats()
        t0 = time.perf_counter()
        for chunk in self.engine.stream(self.messages, max_tokens=max_tokens, think=opts.think,
                                        temperature=opts.temperature, stop=(RESPONSE_OPEN,)):
            if chunk.kind == "text":
                shown = watcher.feed(chunk.text)
                if shown:
                    yield TextDelta(text=shown)
            elif chunk.kind == "thought":
                thought += chunk.text
            elif chunk.stats is not None:
                gen = chunk.stats
        tail = watcher.finish()
        if tail:
            yield TextDelta(text=tail)
        gen_ms = (time.perf_counter() - t0) * 1000
        return watcher.raw, thought, (gen, gen_ms)

    @staticmethod
    def _account(step: StepStats, gen: tuple[GenerationStats, float]) -> None:
        stats, ms = gen
        step.prompt_tokens = stats.prompt_tokens
        step.prompt_tokens_evaluated = stats.prompt_tokens_evaluated
        step.prompt_tokens_reused = stats.prompt_tokens_reused
        step.completion_tokens = stats.completion_tokens
        step.generate_ms = ms

    def _execute(self, call: ToolCall, record: StepRecord) -> tuple[bool, str, list[str], float]:
        """Prepare, ask, run: (ok, output for the model, files written, seconds spent waiting)."""
        try:
            action = self.toolbox.prepare(self.ctx, call.name, call.arguments)
        except ToolError as exc:
            return False, exc.message, [], 0.0
        asked = time.perf_counter()
        allowed, why = self.permissions.check(action)
        waited = time.perf_counter() - asked if action.kind != "read" else 0.0
        if not allowed:
            return False, why, [], waited
        try:
            out = action.execute()
        except ToolError as exc:
            return False, exc.message, [], waited
        except GemmaCodeError as exc:
            return False, f"{call.name} failed: {exc.message}", [], waited
        except OSError as exc:
            return False, f"{call.name} failed: {exc.strerror or exc}", [], waited
        changed = [c.path for c in out.changes]
        if out.journal_id:
            record.journal_ids.append(out.journal_id)
            record.files += changed
        return out.ok, out.output, changed, waited

    def _add_result(self, name: str, ok: bool, output: str) -> None:
        self.messages.append(Message("tool", "", name=name,
                                     response={"output" if ok else "error": output}))

    def repair(self) -> None:
        """After an interruption: every call of the last model turn gets a result."""
        for index in range(len(self.messages) - 1, -1, -1):
            message = self.messages[index]
            if message.role == "model":
                answered = sum(1 for m in self.messages[index + 1:] if m.role == "tool")
                for call in message.tool_calls[answered:]:
                    self._add_result(call.name, False, "interrupted by the user; not run")
                return
            if message.role == "user":
                return

    # -- undo --------------------------------------------------------------------------------

    def undo_step(self) -> list[str]:
        """Revert the file changes of the last step that made some; the paths restored."""
        from gemma_code.edits.journal import list_entries, undo_last

        while self.records and not self.records[-1].journal_ids:
            self.records.pop()
        if not self.records:
            raise GemmaCodeError("nothing to undo: no step of this run changed a file")
        record = self.records[-1]
        restored: list[str] = []
        for entry_id in reversed(record.journal_ids):
            entries = list_entries(self.root)
            if not entries or entries[-1].id != entry_id:
                raise GemmaCodeError(
                    "newer changes were made after this step; nothing more was undone",
                    "`gemma-code undo --list` shows the change sets; `gemma-code undo` reverts "
                    "the newest",
                )
            result = undo_last(self.root)
            record.journal_ids.remove(entry_id)
            restored += result.restored + result.removed
        self.records.pop()
        return sorted(set(restored))

    def undo_run(self) -> list[str]:
        """Revert every change of this session, newest first."""
        restored: set[str] = set()
        while any(r.journal_ids for r in self.records):
            restored.update(self.undo_step())
        return sorted(restored)
