"""PDFs named with -f: page text with markers, --pages, scans named, the budget, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pdfs import write_pdf
from typer.testing import CliRunner

from gemma_code.cli import app
from gemma_code.documents.pdf import pack_pdf, parse_pages, ranges, read_pdf
from gemma_code.engine.scripted import ScriptedEngine
from gemma_code.errors import ExitCode, UsageError

runner = CliRunner()


def test_parse_pages_accepts_ranges_lists_and_open_ends() -> None:
    assert parse_pages("3-5", 10) == [3, 4, 5]
    assert parse_pages("1,4-5,4", 10) == [1, 4, 5]
    assert parse_pages("8-", 10) == [8, 9, 10]
    assert parse_pages("9-40", 10) == [9, 10]
    assert ranges([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"


@pytest.mark.parametrize("spec", ["x", "5-3", "0", "-2", ","])
def test_parse_pages_rejects_nonsense(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_pages(spec, 10)


def test_parse_pages_past_the_end_names_the_page_count() -> None:
    with pytest.raises(UsageError, match="has 4 pages"):
        parse_pages("7-9", 4)


def test_read_pdf_gives_each_page_text_and_marks_scans(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "spec.pdf", ["Alpha section\nretry after 5 s", None, "Omega"])
    doc = read_pdf(pdf)
    assert doc.n_pages == 3
    assert "retry after 5 s" in doc.pages[0].text
    assert doc.scanned == [2]
    assert [p.number for p in read_pdf(pdf, "2-3").pages] == [2, 3]


def test_pack_pdf_stops_at_the_budget_and_names_the_pages_left_out(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "long.pdf", [f"page {n} " + "lorem ipsum " * 40 for n in range(1, 11)])
    engine = ScriptedEngine()
    packed = pack_pdf(read_pdf(pdf), engine.count_tokens, 300)
    assert 0 < len(packed.packed) < 10
    assert packed.packed + packed.left_out == list(range(1, 11))
    assert packed.tokens == engine.count_tokens(packed.text) <= 300
    assert f"--- page {packed.packed[-1]} of 10 ---" in packed.text
    assert f"--- page {packed.left_out[0]} of 10 ---" not in packed.text
    assert any(f"pages {ranges(packed.left_out)} did not fit" in n for n in packed.notes)


def test_ask_sends_page_text_with_markers(scripted, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_pdf(tmp_path / "spec.pdf", ["Uploads retry three times.", "Timeouts are 30 s."])
    engine = scripted("three")
    result = runner.invoke(app, ["ask", "--no-context", "-f", "spec.pdf", "how many retries?"])
    assert result.exit_code == 0, result.output
    user = engine.calls[0].messages[-1].content
    assert "spec.pdf (PDF, 2 pages)" in user
    assert "--- page 1 of 2 ---\nUploads retry three times." in user
    assert "--- page 2 of 2 ---\nTimeouts are 30 s." in user
    assert user.endswith("how many retries?")


def test_ask_pages_selects_and_scans_are_named(scripted, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_pdf(tmp_path / "scan.pdf", ["one", "two", None, "four"])
    engine = scripted("ok")
    result = runner.invoke(app, ["ask", "--no-context", "-f", "scan.pdf", "--pages", "2-3", "q"])
    assert result.exit_code == 0, result.output
    user = engine.calls[0].messages[-1].content
    assert "--- page 2 of 4 ---\ntwo" in user
    assert "page 3 of 4: no text layer" in user
    assert "one" not in user and "four" not in user
    assert "page 3 has no text layer (scanned) and could not be read" in result.stderr


def test_ask_big_pdf_is_cut_to_the_budget_and_says_so(scripted, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_pdf(tmp_path / "big.pdf", [f"page {n} " + "word " * 200 for n in range(1, 21)])
    engine = scripted("ok")
    result = runner.invoke(app, ["ask", "--no-context", "--budget", "1000", "-f", "big.pdf", "q"])
    assert result.exit_code == 0, result.output
    assert "did not fit in the 1,000-token budget" in result.stderr
    assert "--pages" in result.stderr
    user = engine.calls[0].messages[-1].content
    assert "--- page 1 of 20 ---" in user and "--- page 20 of 20 ---" not in user


def test_ask_encrypted_pdf_is_one_line_usage_error(scripted, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_pdf(tmp_path / "locked.pdf", ["secret"], password="pw")
    engine = scripted("unused")
    result = runner.invoke(app, ["ask", "--no-context", "-f", "locked.pdf", "q"])
    assert result.exit_code == ExitCode.USAGE
    assert "locked.pdf is encrypted (password protected)" in result.stderr
    assert engine.calls == []


def test_ask_truncated_pdf_is_usage_error(scripted, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    whole = write_pdf(tmp_path / "whole.pdf", ["text"] * 3).read_bytes()
    (tmp_path / "cut.pdf").write_bytes(whole[:200])
    scripted("unused")
    result = runner.invoke(app, ["ask", "--no-context", "-f", "cut.pdf", "q"])
    assert result.exit_code == ExitCode.USAGE
    assert "cut.pdf is not a readable PDF" in result.stderr


def test_ask_pages_without_a_pdf_is_usage_error(scripted, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.py").write_text("x = 1\n", encoding="utf-8")
    scripted("unused")
    result = runner.invoke(app, ["ask", "--no-context", "-f", "a.py", "--pages", "1", "q"])
    assert result.exit_code == ExitCode.USAGE
    assert "no PDF was given" in result.stderr


def test_context_packs_pdf_pages_first_within_the_budget(git_repo: Path, monkeypatch) -> None:
    import json

    monkeypatch.chdir(git_repo)
    write_pdf(git_repo / "spec.pdf", [f"page {n} " + "word " * 150 for n in range(1, 9)])
    result = runner.invoke(app, ["context", "what does add do?", "-f", "spec.pdf", "--budget", "1500",
                                 "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    first = payload["files"][0]
    assert first["mode"] == "pages" and first["path"].startswith("spec.pdf (PDF, 8 pages): pages 1-")
    assert payload["used"] <= payload["budget"] == 1500
    assert any("did not fit in the 1,500-token budget" in n for n in payload["notes"])


def test_pages_taken_come_out_of_the_repository_context_budget() -> None:
    from gemma_code.config import Settings
    from gemma_code.tasks.ask import context_budget

    engine = ScriptedEngine(n_ctx=100_000)
    settings = Settings(budget=32_768, max_tokens=1_000)
    assert context_budget(engine, "q", [], settings, reserved=30_000) == 2_768
    small = ScriptedEngine(n_ctx=8_000)
    room = context_budget(small, "q", [], settings)
    assert context_budget(small, "q", [], settings, reserved=3_000) == room - 3_000
