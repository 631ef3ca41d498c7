"""Review findings: the reply schema, its GBNF grammar, and parsing replies (truncated ones too)."""

from __future__ import annotations

import json

import pytest

from gemma_code.review.findings import (
    FINDING_SCHEMA,
    REPLY_SCHEMA,
    Finding,
    Fix,
    parse_reply,
    reaches,
    validate,
)
from gemma_code.review.grammar import REVIEW_GRAMMAR, schema_to_gbnf


def finding(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "file": "app.py", "line": 3, "title": "Division by zero", "explanation": "b may be 0",
        "severity": "high", "fix": None,
    }
    base.update(over)
    return base


def test_parse_reply_reads_valid_findings_with_and_without_fix():
    fix = {"search": "return a / b", "replace": "return a / b if b else 0"}
    reply = json.dumps({"findings": [finding(), finding(line=9, severity="low", fix=fix)]})
    parsed = parse_reply(reply)
    assert not parsed.truncated and not parsed.problems
    assert parsed.findings[0] == Finding("high", "app.py", 3, "Division by zero", "b may be 0")
    assert parsed.findings[1].fix == Fix("return a / b", "return a / b if b else 0")


def test_parse_reply_keeps_complete_findings_of_a_truncated_reply():
    full = json.dumps({"findings": [finding(), finding(line=5, title="Second")]})
    cut = full[: full.index("Second") + 3]
    parsed = parse_reply(cut)
    assert parsed.truncated
    assert [f.line for f in parsed.findings] == [3]


def test_parse_reply_drops_findings_that_break_the_schema():
    reply = json.dumps({"findings": [finding(severity="blocker"), finding(line=-1), finding()]})
    parsed = parse_reply(reply)
    assert len(parsed.findings) == 1
    assert any("blocker" in p for p in parsed.problems)
    assert any("below 0" in p for p in parsed.problems)


def test_parse_reply_with_no_json_reports_a_problem():
    parsed = parse_reply("Looks good to me!")
    assert parsed.findings == [] and parsed.problems


def test_validate_rejects_unknown_keys_and_missing_ones():
    extra = validate({**finding(), "cwe": "CWE-1"}, FINDING_SCHEMA)
    missing = validate({"file": "a"}, FINDING_SCHEMA)
    assert any("unexpected key `cwe`" in e for e in extra)
    assert any("missing `line`" in e for e in missing)
    assert validate({"findings": [finding()]}, REPLY_SCHEMA) == []


def test_severity_threshold_orders_critical_above_info():
    assert reaches("critical", "high") and reaches("high", "high")
    assert not reaches("medium", "high") and reaches("info", "info")


def test_fix_renders_as_a_search_replace_block_the_edits_parser_reads():
    from gemma_code.edits.parse import parse_reply as parse_edits

    f = Finding("high", "pkg/app.py", 2, "t", "e", Fix("    x = 1", "    x = 2"))
    block = f.edit_block()
    assert block == "pkg/app.py\n<<<<<<< SEARCH\n    x = 1\n=======\n    x = 2\n>>>>>>> REPLACE\n"
    edits = parse_edits(block)
    assert len(edits) == 1
    assert str(edits[0].path) == "pkg/app.py"


def test_grammar_fixes_property_order_and_severity_names():
    rules = REVIEW_GRAMMAR.splitlines()
    findings_rule = next(line for line in rules if line.startswith("reply-findings-item ::="))
    order = [findings_rule.index(f'\\"{key}\\"') for key in FINDING_SCHEMA["properties"]]
    assert order == sorted(order)
    assert '"\\"critical\\"" | "\\"high\\""' in REVIEW_GRAMMAR
    assert REVIEW_GRAMMAR.startswith("root ::= reply\n")


def test_grammar_refuses_schemas_it_cannot_express():
    with pytest.raises(ValueError, match="optional properties"):
        schema_to_gbnf({"type": "object", "properties": {"a": {"type": "string"}}, "required": []})
    with pytest.raises(ValueError, match="unsupported"):
        schema_to_gbnf({"type": "object", "properties": {"a": {"pattern": "x+"}}, "required": ["a"]})


def test_grammar_module_does_not_import_llama_cpp():
    import subprocess
    import sys

    code = "import sys, gemma_code.review.grammar, gemma_code.tasks.review; print('llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
