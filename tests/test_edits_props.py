"""Property tests: generated edits reproduce their target; garbage fails only in documented ways."""

from __future__ import annotations

import difflib
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gemma_code.edits import (
    EditsFailedError,
    MalformedReplyError,
    apply_edits,
    parse_reply,
    parse_reply_lenient,
)

LINES = st.sampled_from(["a = 1", "b = 2", "", "    return x", "def f():", "    pass", "# note",
                         "x += 1", "}", "  indented", "c = 3\t"])
FILES = st.lists(LINES, min_size=1, max_size=30)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


@st.composite
def source_and_target(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    source = draw(FILES)
    start = draw(st.integers(0, len(source)))
    end = draw(st.integers(start, min(len(source), start + 5)))
    new = draw(st.lists(LINES, max_size=5))
    target = source[:start] + new + source[end:]
    return source, target


def _unique_search(source: list[str], target: list[str]) -> tuple[str, str] | None:
    """A SEARCH/REPLACE pair with context grown until the SEARCH is unique, as a good model writes."""
    matcher = difflib.SequenceMatcher(a=source, b=target, autojunk=False)
    ops = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    if not ops:
        return None
    i1, j1 = ops[0][1], ops[0][3]
    i2, j2 = ops[-1][2], ops[-1][4]
    for grow in range(len(source) + 1):
        lo, hi = max(0, i1 - grow), min(len(source), i2 + grow)
        block = source[lo:hi]
        if not block:
            continue
        count = sum(1 for s in range(len(source) - len(block) + 1) if source[s : s + len(block)] == block)
        if count == 1:
            before, after = i1 - lo, hi - i2
            return _text(block), _text(target[j1 - before : j2 + after])
    return None


@SETTINGS
@given(source_and_target())
def test_search_replace_reply_reproduces_target(pair):
    source, target = pair
    found = _unique_search(source, target)
    assume(found is not None)
    assert found is not None
    search, replace = found
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "f.py").write_text(_text(source))
        reply = f"Edit:\nf.py\n```\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n"
        result = apply_edits(root, parse_reply(reply), journal=False)
        if result.already_applied:
            # documented idempotency: REPLACE's new lines already sit around the SEARCH text
            assert (root / "f.py").read_text() == _text(source)
            assert replace.replace(search, "", 1).strip() and replace in _text(source)
        else:
            assert (root / "f.py").read_text() == _text(target)


@SETTINGS
@given(source_and_target(), st.sampled_from([0, 1, 3]))
def test_unified_diff_reply_reproduces_target(pair, context):
    source, target = pair
    assume(source != target)
    diff = "".join(difflib.unified_diff([s + "\n" for s in source], [t + "\n" for t in target],
                                        "a/f.py", "b/f.py", n=context))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "f.py").write_text(_text(source))
        try:
            apply_edits(root, parse_reply(f"```diff\n{diff}```\n"), journal=False)
        except EditsFailedError as exc:
            # only a context-free hunk may be refused (nothing to anchor it), never misapplied
            assert context == 0 or "matches" in exc.details(), exc.details()
            assert (root / "f.py").read_text() == _text(source)
            return
        assert (root / "f.py").read_text() == _text(target)


GARBAGE = st.lists(st.one_of(
    st.sampled_from(["<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE", "```", "```python", "f.py",
                     "--- a/f.py", "+++ b/f.py", "@@ -1,2 +1,2 @@", "@@", "-a = 1", "+b = 2", " a = 1",
                     "../x.py", "/etc/passwd", ".git/config", "", "diff --git a/f.py b/f.py",
                     "+++ /dev/null", "--- /dev/null"]),
    st.text(max_size=20)), max_size=25).map("\n".join)


@SETTINGS
@given(GARBAGE)
def test_garbage_raises_only_documented_errors_and_writes_nothing_on_failure(reply):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        (root / "f.py").write_text("a = 1\nb = 2\n")
        before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
        try:
            edits = parse_reply(reply)
        except MalformedReplyError:
            return
        try:
            apply_edits(root, edits, journal=False)
        except EditsFailedError:
            after = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
            assert after == before and (root / "f.py").read_text() == "a = 1\nb = 2\n"
        assert not (Path(tmp) / "x.py").exists()
        assert not any(p.name == ".git" for p in root.rglob("*"))


@SETTINGS
@given(source_and_target(), st.integers(0, 2))
def test_one_failing_block_means_nothing_is_written(pair, where):
    source, target = pair
    found = _unique_search(source, target)
    assume(found is not None)
    assert found is not None
    search, replace = found
    good = f"f.py\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"
    new = "g.py\n<<<<<<< SEARCH\n=======\nnew\n>>>>>>> REPLACE\n"
    bad = "f.py\n<<<<<<< SEARCH\nthis line is not there\n=======\nx\n>>>>>>> REPLACE\n"
    blocks = [good, new]
    blocks.insert(where, bad)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "f.py").write_text(_text(source))
        edits, problems = parse_reply_lenient("\n".join(blocks))
        assert not problems
        try:
            apply_edits(root, edits, journal=False)
        except EditsFailedError as exc:
            assert len(exc.failures) >= 1
        else:
            raise AssertionError("a missing SEARCH text must fail")
        assert (root / "f.py").read_text() == _text(source) and not (root / "g.py").exists()
