"""Integration: grammar-constrained review replies from the small real model through llama.cpp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import CliRunner
from conftest import git

from gemma_code.cli import app
from gemma_code.config import load_settings
from gemma_code.engine import load_engine
from gemma_code.review.findings import FINDING_SCHEMA, parse_reply, validate
from gemma_code.review.grammar import schema_to_gbnf
from gemma_code.review.report import OUTPUT_SCHEMA
from gemma_code.tasks.review import review_messages

pytestmark = pytest.mark.llama

DIFF = "### util.py (modified)\n@@\n    1   def div(a, b):\n    2 +     return a / b\n"


def test_small_model_under_the_findings_grammar_writes_parseable_findings(tiny_model_path: Path):
    # the review schema with tight bounds, so the whole reply fits in a few dozen tokens
    props = dict(FINDING_SCHEMA["properties"])
    props.update(file={"type": "string", "maxLength": 12}, title={"type": "string", "maxLength": 16},
                 explanation={"type": "string", "maxLength": 24}, fix={"type": "null"})
    small = {"type": "object", "required": ["findings"], "additionalProperties": False,
             "properties": {"findings": {"type": "array", "maxItems": 1,
                                         "items": {**FINDING_SCHEMA, "properties": props}}}}
    settings = load_settings({"engine": "llamacpp", "model": str(tiny_model_path), "n_ctx": 1024}).settings
    engine = load_engine(settings)
    try:
        text, stop = "", ""
        for chunk in engine.stream(review_messages(DIFF, None), max_tokens=120,
                                   grammar=schema_to_gbnf(small), temperature=0.2):
            text += chunk.text if chunk.kind == "text" else ""
            stop = chunk.stats.stop_reason if chunk.stats else stop
    finally:
        engine.close()
    assert stop == "stop", text
    assert validate(json.loads(text), small) == []
    parsed = parse_reply(text)
    assert not parsed.truncated and not parsed.problems


def test_review_cli_with_the_small_model_prints_a_valid_report(tiny_model_path, git_repo, monkeypatch):
    (git_repo / "util.py").write_text("def add(a, b):\n    return a / b\n", encoding="utf-8")
    git(git_repo, "add", "util.py")
    monkeypatch.chdir(git_repo)
    result = CliRunner().invoke(app, [
        "review", "--engine", "llamacpp", "--model", str(tiny_model_path), "--n-ctx", "2048",
        "--max-tokens", "48", "--no-context", "--format", "json",
    ])
    assert result.exit_code in (0, 1), result.output
    payload = json.loads(result.stdout)
    assert validate(payload, OUTPUT_SCHEMA) == []
    assert payload["status"] == "ok" and payload["stats"]["requests"] == 1
    assert payload["complete"] or any("cut off" in n for n in payload["notices"])
