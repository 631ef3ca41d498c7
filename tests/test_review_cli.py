"""`gemma-code review` through the CLI with the scripted engine: formats, exit codes, fail-open, cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import CliRunner
from conftest import git

from gemma_code.cli import app
from gemma_code.errors import ExitCode
from gemma_code.review.findings import validate
from gemma_code.review.grammar import REVIEW_GRAMMAR
from gemma_code.review.report import OUTPUT_SCHEMA

runner = CliRunner()

CRITICAL = json.dumps({"findings": [{
    "file": "util.py", "line": 2, "title": "Subtraction instead of addition",
    "explanation": "add() now subtracts", "severity": "critical",
    "fix": {"search": "    return a - b", "replace": "    return a + b"},
}]})
MEDIUM = json.dumps({"findings": [{
    "file": "util.py", "line": 2, "title": "Unclear name", "explanation": "minor",
    "severity": "medium", "fix": None,
}]})
CLEAN = '{"findings": []}'


@pytest.fixture
def staged(git_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with a staged bug in util.py, as the current directory."""
    (git_repo / "util.py").write_text("def add(a, b):\n    return a - b\n", encoding="utf-8")
    git(git_repo, "add", "util.py")
    monkeypatch.chdir(git_repo)
    return git_repo


def test_review_blocks_on_a_critical_finding_and_the_model_saw_the_staged_diff(scripted, staged):
    engine = scripted(CRITICAL)
    result = runner.invoke(app, ["review", "--format", "text"])
    assert result.exit_code == ExitCode.FAILURE, result.output
    assert "util.py:2: critical: Subtraction instead of addition" in result.stdout
    assert "<<<<<<< SEARCH\n        return a - b\n" in result.stdout
    call = engine.calls[0]
    assert call.grammar == REVIEW_GRAMMAR
    assert call.think is False
    assert "    2 +     return a - b" in call.messages[-1].content


def test_review_passes_findings_below_fail_on(scripted, staged):
    scripted(MEDIUM, MEDIUM)
    assert runner.invoke(app, ["review", "--format", "text"]).exit_code == ExitCode.OK
    result = runner.invoke(app, ["review", "--format", "text", "--fail-on", "medium", "--no-cache"])
    assert result.exit_code == ExitCode.FAILURE


def test_review_json_follows_the_documented_schema(scripted, staged):
    scripted(CRITICAL)
    result = runner.invoke(app, ["review", "--format", "json"])
    payload = json.loads(result.stdout)
    assert validate(payload, OUTPUT_SCHEMA) == []
    assert payload["status"] == "ok" and payload["blocking"] is True
    assert payload["counts"]["critical"] == 1
    assert payload["target"] == {"mode": "staged", "spec": "index"}
    assert payload["findings"][0]["fix"]["edit"].startswith("util.py\n<<<<<<< SEARCH\n")


def test_review_sarif_has_the_required_sarif_2_1_0_structure(scripted, staged):
    scripted(CRITICAL)
    result = runner.invoke(app, ["review", "--format", "sarif"])
    assert result.exit_code == ExitCode.FAILURE
    log = json.loads(result.stdout)
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "gemma-code"
    rule_ids = [r["id"] for r in driver["rules"]]
    (res,) = run["results"]
    assert res["ruleId"] in rule_ids and rule_ids[res["ruleIndex"]] == res["ruleId"]
    assert res["level"] in {"none", "note", "warning", "error"} and res["level"] == "error"
    assert res["message"]["text"].startswith("Subtraction instead of addition")
    loc = res["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "util.py", "uriBaseId": "%SRCROOT%"}
    assert loc["region"]["startLine"] == 2
    base = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    assert base.startswith("file:///") and base.endswith("/")
    assert run["invocations"][0]["executionSuccessful"] is True


def test_a_rerun_on_the_same_staged_content_is_served_from_the_cache(scripted, staged):
    engine = scripted(CRITICAL)
    first = runner.invoke(app, ["review", "--format", "json"])
    second = runner.invoke(app, ["review", "--format", "json"])
    assert len(engine.calls) == 1
    assert json.loads(first.stdout)["cached"] is False
    again = json.loads(second.stdout)
    assert again["cached"] is True and again["counts"]["critical"] == 1
    assert second.exit_code == ExitCode.FAILURE


def test_changing_the_staged_content_misses_the_cache(scripted, staged):
    engine = scripted(CRITICAL, CLEAN)
    runner.invoke(app, ["review", "--format", "json"])
    (staged / "util.py").write_text("def add(a, b):\n    return a + b  # fixed\n", encoding="utf-8")
    git(staged, "add", "util.py")
    result = runner.invoke(app, ["review", "--format", "json"])
    assert len(engine.calls) == 2
    assert result.exit_code == ExitCode.OK


def test_engine_failure_fails_open_with_a_loud_warning(scripted, staged):
    scripted({"error": "CUDA error: out of memory"})
    result = runner.invoke(app, ["review", "--format", "text"])
    assert result.exit_code == ExitCode.OK
    assert "did NOT run" in result.stderr and "out of memory" in result.stderr


def test_engine_failure_blocks_with_fail_closed(scripted, staged):
    scripted({"error": "CUDA error: out of memory"})
    result = runner.invoke(app, ["review", "--format", "json", "--fail-closed"])
    assert result.exit_code == ExitCode.MODEL
    payload = json.loads(result.stdout)
    assert payload["status"] == "error" and payload["error"]["exit_code"] == ExitCode.MODEL
    assert validate(payload, OUTPUT_SCHEMA) == []


def test_fail_closed_can_come_from_the_project_config(scripted, staged):
    (staged / ".gemma-code.toml").write_text("fail_closed = true\n", encoding="utf-8")
    scripted({"error": "engine died"})
    assert runner.invoke(app, ["review", "--format", "text"]).exit_code == ExitCode.MODEL


def test_a_review_past_its_timeout_fails_open(scripted, staged):
    slow = {"text": CLEAN + " ".join(["x"] * 40), "delay": 0.05}
    scripted(slow)
    result = runner.invoke(app, ["review", "--format", "text", "--timeout", "0.3"])
    assert result.exit_code == ExitCode.OK
    assert "time budget" in result.stderr


def test_a_truncated_reply_keeps_complete_findings_and_says_so(scripted, staged):
    two = json.loads(CRITICAL)
    two["findings"].append({**two["findings"][0], "line": 1, "title": "Second one"})
    text = json.dumps(two)
    engine = scripted(text[: text.index("Second one")])
    result = runner.invoke(app, ["review", "--format", "json"])
    payload = json.loads(result.stdout)
    assert payload["complete"] is False and len(payload["findings"]) == 1
    assert any("cut off" in n for n in payload["notices"])
    assert result.exit_code == ExitCode.FAILURE
    again = json.loads(runner.invoke(app, ["review", "--format", "json"]).stdout)
    assert again["cached"] is True and again["complete"] is False and len(engine.calls) == 1


def test_an_empty_staged_change_needs_no_model(scripted, git_repo, monkeypatch):
    monkeypatch.chdir(git_repo)
    engine = scripted()
    result = runner.invoke(app, ["review", "--format", "json"])
    assert result.exit_code == ExitCode.OK
    assert engine.calls == []
    assert "nothing to review" in json.loads(result.stdout)["notices"][0]


def test_review_range_and_named_files(scripted, staged):
    git(staged, "commit", "-q", "-m", "bug")
    engine = scripted(CRITICAL, CLEAN)
    ranged = runner.invoke(app, ["review", "--range", "HEAD~1..HEAD", "--format", "json"])
    assert json.loads(ranged.stdout)["target"]["mode"] == "range"
    assert ranged.exit_code == ExitCode.FAILURE
    named = runner.invoke(app, ["review", "app.py", "--format", "json"])
    assert named.exit_code == ExitCode.OK
    assert "    4 + def main():" in engine.calls[1].messages[-1].content


def test_review_outside_a_repository_is_a_git_error(scripted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scripted()
    result = runner.invoke(app, ["review"])
    assert result.exit_code == ExitCode.GIT
    assert "not inside a git repository" in result.stderr


def test_review_rejects_bad_flags(scripted, staged):
    scripted()
    assert runner.invoke(app, ["review", "--format", "xml"]).exit_code == ExitCode.USAGE
    assert runner.invoke(app, ["review", "--fail-on", "severe"]).exit_code == ExitCode.USAGE
    assert runner.invoke(app, ["review", "--staged", "--range", "a..b"]).exit_code == ExitCode.USAGE


def test_a_missing_model_fails_open_and_blocks_with_fail_closed(staged):
    opened = runner.invoke(app, ["review", "--engine", "llamacpp", "--model", "/nope/missing.gguf"])
    assert opened.exit_code == ExitCode.OK
    assert "did NOT run" in opened.stderr and "missing.gguf" in opened.stderr
    closed = runner.invoke(
        app, ["review", "--engine", "llamacpp", "--model", "/nope/missing.gguf", "--fail-closed"]
    )
    assert closed.exit_code == ExitCode.MODEL


def test_the_json_schema_documented_in_docs_review_md_is_the_one_the_code_checks():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "review.md").read_text(encoding="utf-8")
    section = doc[doc.index("### JSON output schema"):]
    block = section[section.index("```json\n") + len("```json\n"):]
    assert json.loads(block[: block.index("\n```")]) == OUTPUT_SCHEMA


def test_the_first_commit_of_a_repository_is_reviewed(scripted, tmp_path, monkeypatch):
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "util.py").write_text("def add(a, b):\n    return a - b\n", encoding="utf-8")
    git(repo, "add", "util.py")
    monkeypatch.chdir(repo)
    engine = scripted(CRITICAL)
    result = runner.invoke(app, ["review", "--format", "text"])
    assert result.exit_code == ExitCode.FAILURE
    assert "### util.py (added)" in engine.calls[0].messages[-1].content


def test_the_terminal_table_shows_each_finding(scripted, staged):
    import io

    from rich.console import Console

    from gemma_code.review.findings import Finding
    from gemma_code.review.report import Report

    report = Report("staged", "index", "high", reviewed=["util.py"],
                    findings=[Finding("critical", "util.py", 2, "add() subtracts", "wrong operator")])
    out = io.StringIO()
    report.print_table(Console(file=out, force_terminal=True, width=100, color_system=None))
    text = out.getvalue()
    assert "critical" in text and "util.py:2" in text and "add() subtracts" in text
    assert "blocking (--fail-on high)" in text


def test_a_suggested_fix_goes_through_gemma_code_apply(scripted, staged):
    scripted(CRITICAL)
    payload = json.loads(runner.invoke(app, ["review", "--format", "json"]).stdout)
    edit = payload["findings"][0]["fix"]["edit"]
    applied = runner.invoke(app, ["apply", "-"], input=edit)
    assert applied.exit_code == ExitCode.OK, applied.output
    assert (staged / "util.py").read_text(encoding="utf-8") == "def add(a, b):\n    return a + b\n"


def test_a_fix_that_does_not_apply_is_dropped_with_a_notice(scripted, staged):
    wrong = json.loads(CRITICAL)
    wrong["findings"][0]["fix"] = {"search": "    return a * b", "replace": "    return a + b"}
    scripted(json.dumps(wrong))
    payload = json.loads(runner.invoke(app, ["review", "--format", "json"]).stdout)
    assert payload["findings"][0]["fix"] is None
    assert payload["counts"]["critical"] == 1
    assert any("fix(es) dropped" in n for n in payload["notices"])


def test_gemma_code_skip_skips_the_review_itself(scripted, staged, monkeypatch):
    engine = scripted(CRITICAL)
    monkeypatch.setenv("GEMMA_CODE_SKIP", "1")
    result = runner.invoke(app, ["review", "--format", "text"])
    assert result.exit_code == ExitCode.OK
    assert "skipped (GEMMA_CODE_SKIP=1)" in result.stderr
    assert engine.calls == []
