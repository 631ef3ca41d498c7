"""What the agent loop reports, as it happens: one event type per thing a face may show.

`to_dict()` gives the JSON Lines form of `gemma-code run --json` (every event has a `type`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StepStats:
    """One model step: prompt tokens evaluated vs reused, and the loop's own time in ms."""

    step: int
    prompt_tokens: int = 0
    prompt_tokens_evaluated: int = 0
    prompt_tokens_reused: int = 0
    completion_tokens: int = 0
    generate_ms: float = 0.0  # the engine: prefill and decode
    render_ms: float = 0.0  # building the messages and counting the prompt's tokens
    parse_ms: float = 0.0  # parsing the reply's calls
    tool_ms: float = 0.0  # preparing and executing the calls (approval waits excluded)
    calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("generate_ms", "render_ms", "parse_ms", "tool_ms"):
            data[key] = round(data[key], 3)
        return data


@dataclass
class RunStats:
    """The whole run."""

    steps: list[StepStats] = field(default_factory=list)
    tool_calls: int = 0
    stop_reason: str = "answer"  # answer | max_steps | repetition | interrupted | error
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stop_reason": self.stop_reason,
            "steps": len(self.steps),
            "tool_calls": self.tool_calls,
            "prompt_tokens_evaluated": sum(s.prompt_tokens_evaluated for s in self.steps),
            "prompt_tokens_reused": sum(s.prompt_tokens_reused for s in self.steps),
            "completion_tokens": sum(s.completion_tokens for s in self.steps),
            "elapsed_s": round(self.elapsed_s, 3),
            "notes": list(self.notes),
            "per_step": [s.to_dict() for s in self.steps],
        }


@dataclass
class AgentEvent:
    """Base of every event; `type` names it in JSON."""

    type = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}


@dataclass
class TextDelta(AgentEvent):
    """A piece of answer text as it streams (faces print it; JSON output has whole `text`)."""

    type = "text_delta"
    text: str = ""


@dataclass
class TextEvent(AgentEvent):
    """The model's text of one step (before its calls, or its final answer)."""

    type = "text"
    text: str = ""
    step: int = 0


@dataclass
class ThoughtEvent(AgentEvent):
    """The model's reasoning in one step (thinking on)."""

    type = "thought"
    text: str = ""
    step: int = 0


@dataclass
class ToolCallEvent(AgentEvent):
    """The model called a tool."""

    type = "tool_call"
    name: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    step: int = 0


@dataclass
class ToolResultEvent(AgentEvent):
    """A call's outcome, as the model sees it (`ok` false: refused, failed or declined)."""

    type = "tool_result"
    name: str = ""
    ok: bool = True
    output: str = ""
    step: int = 0
    changed: list[str] = field(default_factory=list)  # files written by this call


@dataclass
class NoteEvent(AgentEvent):
    """Something the user should know: results shortened to fit, a guard, a refused mode."""

    type = "note"
    message: str = ""


@dataclass
class StepEvent(AgentEvent):
    """A step ended: its token and time accounting."""

    type = "step"
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class ErrorEvent(AgentEvent):
    """The run cannot go on; `exit_code` is what `gemma-code run` exits with."""

    type = "error"
    message: str = ""
    hint: str = ""
    exit_code: int = 1


@dataclass
class DoneEvent(AgentEvent):
    """Always the last event of a run."""

    type = "done"
    answer: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
