"""Applying edits: the matching cascade, uniqueness, already-applied edits, byte fidelity, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gemma_code.edits import (
    Edit,
    EditsFailedError,
    apply_edits,
    list_entries,
    parse_reply,
    plan_edits,
    undo_last,
)


def sr(path: str, search: str, replace: str) -> str:
    return f"{path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def write(root: Path, rel: str, data: str | bytes) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def failure_of(root: Path, reply: str) -> str:
    with pytest.raises(EditsFailedError) as info:
        apply_edits(root, parse_reply(reply))
    return info.value.details()


def test_exact_match_replaces_and_journals(tmp_path):
    write(tmp_path, "a.py", "x = 1\ny = 2\n")
    result = apply_edits(tmp_path, parse_reply(sr("a.py", "y = 2\n", "y = 3\n")))
    assert (tmp_path / "a.py").read_text() == "x = 1\ny = 3\n"
    assert result.journal_id and [e.id for e in list_entries(tmp_path)] == [result.journal_id]


def test_trailing_whitespace_tolerated(tmp_path):
    write(tmp_path, "a.py", "x = 1   \ny = 2\n")
    result = apply_edits(tmp_path, parse_reply(sr("a.py", "x = 1\ny = 2\n", "x = 5\ny = 2\n")))
    assert (tmp_path / "a.py").read_text() == "x = 5\ny = 2\n"
    assert "ignoring trailing whitespace" in result.notes[0]


def test_reindented_search_applies_with_the_files_indentation(tmp_path):
    write(tmp_path, "a.py", "class A:\n    def f(self):\n        return 1\n")
    reply = sr("a.py", "def f(self):\n    return 1\n", "def f(self):\n    if self:\n        return 2\n")
    apply_edits(tmp_path, parse_reply(reply))
    assert (tmp_path / "a.py").read_text() == (
        "class A:\n    def f(self):\n        if self:\n            return 2\n")


def test_ambiguous_match_is_refused_with_candidate_lines(tmp_path):
    write(tmp_path, "a.py", "a\nreturn None\nb\nreturn None\n")
    details = failure_of(tmp_path, sr("a.py", "return None\n", "return 0\n"))
    assert "matches 2 places" in details and "lines 2, 4" in details
    assert (tmp_path / "a.py").read_text() == "a\nreturn None\nb\nreturn None\n"


def test_missing_text_is_refused_with_closest_lines(tmp_path):
    write(tmp_path, "a.py", "def f():\n    return compute(1)\n")
    details = failure_of(tmp_path, sr("a.py", "def f():\n    return compute(2)\n", "x\n"))
    assert "not in the file" in details and "closest actual lines (1-2)" in details
    assert "2 |     return compute(1)" in details


def test_already_applied_edit_is_recognized_not_repeated(tmp_path):
    write(tmp_path, "a.py", "import os\nprint(1)\n")
    reply = sr("a.py", "import os\n", "import os\nimport sys\n")
    apply_edits(tmp_path, parse_reply(reply))
    again = apply_edits(tmp_path, parse_reply(reply))
    assert (tmp_path / "a.py").read_text() == "import os\nimport sys\nprint(1)\n"
    assert again.changes == [] and len(again.already_applied) == 1


def test_crlf_encoding_bom_and_missing_final_newline_are_preserved(tmp_path):
    data = "\ufeffname = 'café'\r\nvalue = 1".encode("utf-8")
    write(tmp_path, "a.py", data)
    apply_edits(tmp_path, parse_reply(sr("a.py", "value = 1\n", "value = 2\nother = 3\n")))
    assert (tmp_path / "a.py").read_bytes() == "\ufeffname = 'café'\r\nvalue = 2\r\nother = 3".encode()


def test_latin1_file_round_trips(tmp_path):
    write(tmp_path, "a.txt", "caf\xe9\nend\n".encode("latin-1"))
    apply_edits(tmp_path, parse_reply(sr("a.txt", "end\n", "fin\n")))
    assert (tmp_path / "a.txt").read_bytes() == "caf\xe9\nfin\n".encode("latin-1")


def test_file_mode_is_preserved_and_new_files_get_normal_mode(tmp_path):
    script = write(tmp_path, "run.sh", "echo a\n")
    os.chmod(script, 0o755)
    apply_edits(tmp_path, parse_reply(sr("run.sh", "echo a\n", "echo b\n") + sr("new.sh", "", "x\n")))
    assert script.stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "new.sh").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_nothing_is_written_when_any_edit_fails(tmp_path):
    write(tmp_path, "a.py", "a\n")
    write(tmp_path, "b.py", "b\n")
    reply = sr("a.py", "a\n", "A\n") + sr("new.py", "", "n\n") + sr("b.py", "zzz\n", "B\n")
    failure_of(tmp_path, reply)
    assert (tmp_path / "a.py").read_text() == "a\n" and not (tmp_path / "new.py").exists()
    assert list_entries(tmp_path) == []


@pytest.mark.parametrize("path, reason", [
    ("../evil.py", "`..`"), ("/etc/passwd", "absolute"), ("~/x", "absolute"), ("C:/x.py", "absolute"),
    (".git/config", ".git/"), ("sub/.git/hooks/pre-commit", ".git/"), ("a/../../x", "`..`"),
])
def test_apply_refuses_paths_outside_repo_or_in_git(tmp_path, path, reason):
    with pytest.raises(EditsFailedError) as info:
        apply_edits(tmp_path, [Edit(path, kind="create", replace="boom\n", block=1)])
    assert reason in info.value.details()
    assert list(tmp_path.iterdir()) == []


def test_apply_refuses_symlink_escaping_the_repo(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "t.py").write_text("secret\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "link").symlink_to(outside)
    assert "outside the repository through a symlink" in failure_of(
        repo, sr("link/t.py", "secret\n", "pwned\n"))
    assert (outside / "t.py").read_text() == "secret\n"


def test_apply_refuses_binary_files_and_directories(tmp_path):
    write(tmp_path, "b.bin", b"\x00\x01abc\n")
    (tmp_path / "d.d").mkdir()
    assert "binary" in failure_of(tmp_path, sr("b.bin", "abc\n", "x\n"))
    assert "directory" in failure_of(tmp_path, sr("d.d", "", "x\n"))


def test_create_refuses_to_overwrite_a_different_existing_file(tmp_path):
    write(tmp_path, "a.py", "keep\n")
    assert "already exists" in failure_of(tmp_path, sr("a.py", "", "other\n"))


def test_replace_in_missing_file_is_refused(tmp_path):
    assert "does not exist" in failure_of(tmp_path, sr("nope.py", "a\n", "b\n"))


def test_whole_file_with_elision_is_refused(tmp_path):
    write(tmp_path, "a.py", "".join(f"line{i} = {i}\n" for i in range(30)))
    reply = "a.py\n```python\nline0 = 0\n# ... rest of the file unchanged ...\n```\n"
    assert "elides code" in failure_of(tmp_path, reply)


def test_whole_file_much_shorter_than_file_is_refused(tmp_path):
    write(tmp_path, "a.py", "".join(f"line{i} = {i}\n" for i in range(30)))
    assert "looks like a fragment" in failure_of(tmp_path, "a.py\n```\nline0 = 1\n```\n")


def test_whole_file_replaces_content_keeping_line_endings(tmp_path):
    write(tmp_path, "a.py", b"a\r\nb\r\n")
    apply_edits(tmp_path, parse_reply("a.py\n```\na\nc\n```\n"))
    assert (tmp_path / "a.py").read_bytes() == b"a\r\nc\r\n"


def test_diff_hunks_apply_in_order_and_disambiguate(tmp_path):
    write(tmp_path, "a.py", "def f():\n    pass\n\ndef g():\n    pass\n")
    reply = "--- a/a.py\n+++ b/a.py\n@@ -4,2 +4,2 @@\n def g():\n-    pass\n+    return 1\n"
    apply_edits(tmp_path, parse_reply(reply))
    assert (tmp_path / "a.py").read_text() == "def f():\n    pass\n\ndef g():\n    return 1\n"


def test_diff_exact_line_hint_picks_among_identical_hunks(tmp_path):
    write(tmp_path, "a.py", "x\npass\ny\npass\n")
    apply_edits(tmp_path, parse_reply("--- a.py\n+++ a.py\n@@ -4 +4 @@\n-pass\n+done\n"))
    assert (tmp_path / "a.py").read_text() == "x\npass\ny\ndone\n"


def test_diff_deletes_and_creates_files(tmp_path):
    write(tmp_path, "old.py", "gone\n")
    reply = ("--- a/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n"
             "--- /dev/null\n+++ b/n/new.py\n@@ -0,0 +1 @@\n+hi\n")
    apply_edits(tmp_path, parse_reply(reply))
    assert not (tmp_path / "old.py").exists() and (tmp_path / "n/new.py").read_text() == "hi\n"


def test_check_validates_without_writing(tmp_path):
    write(tmp_path, "a.py", "a\n")
    result = apply_edits(tmp_path, parse_reply(sr("a.py", "a\n", "b\n")), check=True)
    assert result.checked_only and result.paths == ["a.py"]
    assert (tmp_path / "a.py").read_text() == "a\n" and list_entries(tmp_path) == []


def test_undo_restores_modified_created_and_deleted_files(tmp_path):
    write(tmp_path, "a.py", "a\n")
    write(tmp_path, "d.py", "d\n")
    reply = sr("a.py", "a\n", "b\n") + sr("n.py", "", "n\n") + "--- a/d.py\n+++ /dev/null\n@@ @@\n-d\n"
    apply_edits(tmp_path, parse_reply(reply))
    undone = undo_last(tmp_path)
    assert sorted(undone.restored) == ["a.py", "d.py"] and undone.removed == ["n.py"]
    assert (tmp_path / "a.py").read_text() == "a\n" and (tmp_path / "d.py").read_text() == "d\n"
    assert not (tmp_path / "n.py").exists()


def test_undo_refuses_when_file_changed_since_unless_forced(tmp_path):
    write(tmp_path, "a.py", "a\n")
    apply_edits(tmp_path, parse_reply(sr("a.py", "a\n", "b\n")))
    (tmp_path / "a.py").write_text("user edit\n")
    with pytest.raises(Exception, match="changed since"):
        undo_last(tmp_path)
    undo_last(tmp_path, force=True)
    assert (tmp_path / "a.py").read_text() == "a\n"


def test_undo_with_empty_journal_says_nothing_to_undo(tmp_path):
    with pytest.raises(Exception, match="nothing to undo"):
        undo_last(tmp_path)


def test_plan_on_top_of_a_base_plan_sees_earlier_edits(tmp_path):
    write(tmp_path, "a.py", "a\n")
    first = plan_edits(tmp_path, [Edit("a.py", search="a\n", replace="b\n", block=1)])
    second = plan_edits(tmp_path, [Edit("a.py", search="b\n", replace="c\n", block=1)], base=first)
    assert second.changes()[0].new == b"c\n" and (tmp_path / "a.py").read_text() == "a\n"


def test_deletion_diff_quoting_other_content_is_refused(tmp_path):
    write(tmp_path, "d.py", "real content\n")
    details = failure_of(tmp_path, "--- a/d.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-something else\n")
    assert "quotes different content" in details and (tmp_path / "d.py").exists()


def test_missing_file_failure_suggests_same_named_file(tmp_path):
    write(tmp_path, "src/pkg/app.py", "a\n")
    assert "did you mean src/pkg/app.py?" in failure_of(tmp_path, sr("app.py", "a\n", "b\n"))


def test_echoed_example_path_from_the_instructions_is_refused(tmp_path):
    reply = "path/to/file.py\n```\nthe complete new content of the file\n```\n"
    assert "example path from the instructions" in failure_of(tmp_path, reply)
    assert not (tmp_path / "path").exists()


def test_hunk_without_context_or_removed_lines_is_refused(tmp_path):
    write(tmp_path, "a.py", "a\nb\n")
    assert "nothing to anchor" in failure_of(tmp_path, "--- a/a.py\n+++ b/a.py\n@@ -1,0 +2 @@\n+new\n")
    assert (tmp_path / "a.py").read_text() == "a\nb\n"


def test_symlink_into_git_folder_is_refused(tmp_path):
    (tmp_path / ".git" / "hooks").mkdir(parents=True)
    (tmp_path / "hooks").symlink_to(tmp_path / ".git" / "hooks")
    assert "into .git/" in failure_of(tmp_path, sr("hooks/post-checkout", "", "echo owned\n"))
    assert not (tmp_path / ".git" / "hooks" / "post-checkout").exists()


def test_text_the_files_encoding_cannot_hold_is_refused(tmp_path):
    write(tmp_path, "a.txt", "caf\xe9\n".encode("latin-1"))
    assert "cannot be written in the file's encoding" in failure_of(
        tmp_path, sr("a.txt", "caf\xe9\n", "café ☕\n"))
    assert (tmp_path / "a.txt").read_bytes() == "caf\xe9\n".encode("latin-1")


def test_two_space_search_matches_four_space_file_and_replacement_is_rescaled(tmp_path):
    write(tmp_path, "a.py", "def f(x):\n    if x:\n        return 1\n    return 0\n")
    reply = sr("a.py", "def f(x):\n  if x:\n    return 1\n", "def f(x):\n  if x:\n    y = 1\n    return y\n")
    result = apply_edits(tmp_path, parse_reply(reply))
    assert (tmp_path / "a.py").read_text() == (
        "def f(x):\n    if x:\n        y = 1\n        return y\n    return 0\n")
    assert "indentation width converted" in result.notes[0]


def test_space_indented_search_matches_tab_indented_file(tmp_path):
    write(tmp_path, "a.go", "func f() {\n\tif x {\n\t\treturn 1\n\t}\n}\n")
    reply = sr("a.go", "    if x {\n        return 1\n", "    if x {\n        return 2\n")
    apply_edits(tmp_path, parse_reply(reply))
    assert (tmp_path / "a.go").read_text() == "func f() {\n\tif x {\n\t\treturn 2\n\t}\n}\n"


def test_replacement_that_cannot_be_rescaled_is_refused(tmp_path):
    write(tmp_path, "a.py", "if x:\n  y = 1\n")
    details = failure_of(tmp_path, sr("a.py", "if x:\n    y = 1\n", "if x:\n     y = 2\n"))
    assert "cannot be re-indented" in details


def test_one_width_search_with_other_unit_rescales_deeper_replacement_lines(tmp_path):
    # the SEARCH has one indentation (any shift matches it); the file's unit (4) and the
    # reply's (2) decide how its deeper REPLACE lines are indented
    write(tmp_path, "a.py", "class A:\n    def f(self):\n        pass\n\n    def g(self):\n        pass\n")
    reply = sr("a.py", "def g(self):\n", "def g(self):\n  if self:\n    return 1\n")
    apply_edits(tmp_path, parse_reply(reply))
    assert (tmp_path / "a.py").read_text() == (
        "class A:\n    def f(self):\n        pass\n\n    def g(self):\n        if self:\n"
        "            return 1\n        pass\n")


def test_one_width_search_with_unclear_indent_unit_is_refused(tmp_path):
    write(tmp_path, "a.py", "x = 1\n  y = 2\n     z = 3\n")  # steps of 2 and 3: no clear unit
    details = failure_of(tmp_path, sr("a.py", "  z = 3\n", "  z = 3\n      q = 5\n"))
    assert "cannot be re-indented" in details


def test_tolerant_match_keeps_the_files_own_context_lines(tmp_path):
    write(tmp_path, "a.py", 'msg = "a  b"   \nx = 1\n')
    reply = sr("a.py", 'msg = "a b"\nx = 1\n', 'msg = "a b"\nx = 2\n')
    apply_edits(tmp_path, parse_reply(reply))
    assert (tmp_path / "a.py").read_text() == 'msg = "a  b"   \nx = 2\n'


# --- a deletion whose SEARCH is misquoted is not "already applied" (issue 12, 6a) -------------

DELETION_FILE = "import os\nimport sys\n\n\ndef main():\n    return run(sys.argv)\n"


@pytest.mark.parametrize(("search", "replace"), [
    # trailing lines deleted; REPLACE (the leading context) is still in the file
    ("import os\nimport sys\nimport json_v2\n", "import os\nimport sys\n"),
    # leading lines deleted; REPLACE (the trailing context) is still in the file
    ("import shutil_v2\ndef main():\n    return run(sys.argv)\n", "def main():\n    return run(sys.argv)\n"),
    # every line deleted but a blank one
    ("import os\nimport json_v2\n", "\n"),
    # kept lines re-spaced: a deletion all the same
    ("import os\nimport  sys\nimport json_v2\n", "import os\nimport sys\n"),
])
def test_a_deletion_whose_search_is_not_in_the_file_is_refused_not_taken_as_applied(
        tmp_path, search, replace):
    write(tmp_path, "m.py", DELETION_FILE)
    write(tmp_path, "other.py", "x = 1\n")
    reply = sr("m.py", search, replace) + sr("other.py", "x = 1\n", "x = 2\n")
    details = failure_of(tmp_path, reply)
    assert "not in the file" in details and "closest actual lines" in details
    assert (tmp_path / "other.py").read_text() == "x = 1\n"  # the other block was not written


def test_an_applied_edit_that_adds_lines_is_still_recognized_as_applied(tmp_path):
    write(tmp_path, "m.py", "import os\nimport sys\nimport json\n")
    plan = plan_edits(tmp_path, parse_reply(sr("m.py", "import os\nimport re\n",
                                                "import os\nimport sys\nimport json\n")))
    assert not plan.failures and len(plan.already_applied) == 1


# --- diff hunks whose context has other blank lines than the file (issue 12, 6b) --------------

BLANKS_FILE = "import os\n\n\ndef f():\n    return 1\n\n\ndef g():\n    return 2\n"


def _diff(body: str, header: str = "@@ -1,9 +1,9 @@") -> str:
    return f"--- a/m.py\n+++ b/m.py\n{header}\n" + body


@pytest.mark.parametrize("body", [
    # the hunk's context drops one of the two blank lines between the functions
    " def f():\n     return 1\n \n def g():\n-    return 2\n+    return 3\n",
    # the hunk's context drops both blank lines
    " def f():\n     return 1\n def g():\n-    return 2\n+    return 3\n",
    # the hunk's context has a blank line the file does not
    " def f():\n \n     return 1\n \n \n def g():\n-    return 2\n+    return 3\n",
])
def test_a_hunk_with_other_blank_context_lines_applies_where_its_place_is_unique(tmp_path, body):
    write(tmp_path, "m.py", BLANKS_FILE)
    result = apply_edits(tmp_path, parse_reply(_diff(body)))
    assert (tmp_path / "m.py").read_text() == BLANKS_FILE.replace("return 2", "return 3")
    assert any("different blank lines" in note for note in result.notes)


def test_added_lines_away_from_the_missing_blank_lines_apply_in_the_hunks_order(tmp_path):
    write(tmp_path, "m.py", BLANKS_FILE)
    body = " def f():\n     return 1\n def g():\n-    return 2\n+    x = 2\n+    return x\n"
    apply_edits(tmp_path, parse_reply(_diff(body)))
    assert (tmp_path / "m.py").read_text() == BLANKS_FILE.replace("    return 2\n",
                                                                 "    x = 2\n    return x\n")


@pytest.mark.parametrize("body", [
    # lines added where the file has blank lines the hunk left out: before them, or after?
    " def f():\n     return 1\n+    # done\n def g():\n",
    " def f():\n     return 1\n+def h():\n+    return 0\n def g():\n",
    # lines removed on both sides of a blank line the hunk left out: does it go too?
    " def f():\n-    return 1\n-def g():\n",
])
def test_a_hunk_whose_missing_blank_lines_touch_its_changes_is_refused(tmp_path, body):
    write(tmp_path, "m.py", BLANKS_FILE)
    details = failure_of(tmp_path, _diff(body))
    assert "where they go is unclear" in details
    assert (tmp_path / "m.py").read_text() == BLANKS_FILE


def test_a_blank_tolerant_hunk_with_two_places_is_refused_with_both(tmp_path):
    text = "a = 1\n\nb = 2\nc\nx\na = 1\n\n\nb = 2\nc\n"
    write(tmp_path, "m.py", text)
    details = failure_of(tmp_path, _diff(" a = 1\n b = 2\n-c\n+d\n", "@@ -20,3 +20,3 @@"))
    assert "match 2 places" in details and "1" in details and "6" in details
    assert (tmp_path / "m.py").read_text() == text


def test_search_replace_blocks_still_need_their_blank_lines_copied(tmp_path):
    write(tmp_path, "m.py", BLANKS_FILE)
    details = failure_of(tmp_path, sr("m.py", "    return 1\ndef g():\n", "    return 1\ndef h():\n"))
    assert "not in the file" in details


def test_a_deletion_between_kept_lines_is_recognized_as_applied(tmp_path):
    write(tmp_path, "m.py", "import os\nimport sys\n\n\ndef main():\n    return 1\n")
    block = sr("m.py", "import sys\nimport json\n\n\ndef main():\n", "import sys\n\n\ndef main():\n")
    plan = plan_edits(tmp_path, parse_reply(block))
    assert not plan.failures and len(plan.already_applied) == 1


def test_a_deletion_between_kept_lines_that_occur_twice_is_refused(tmp_path):
    write(tmp_path, "m.py", "a = 1\nb = 2\nx = 0\na = 1\nb = 2\n")
    details = failure_of(tmp_path, sr("m.py", "a = 1\nz = 9\nb = 2\n", "a = 1\nb = 2\n"))
    assert "not in the file" in details


def test_a_deletion_at_the_end_of_the_file_is_recognized_as_applied(tmp_path):
    write(tmp_path, "m.py", "a = 1\nb = 2\n")
    plan = plan_edits(tmp_path, parse_reply(sr("m.py", "b = 2\n\nc = 3\n", "b = 2\n")))
    assert not plan.failures and len(plan.already_applied) == 1


def test_an_edit_that_adds_a_blank_line_is_not_a_deletion(tmp_path):
    write(tmp_path, "m.py", '"""doc"""\n\nimport re\n')
    plan = plan_edits(tmp_path, parse_reply(sr("m.py", '"""doc"""\nimport re\n', '"""doc"""\n\nimport re\n')))
    assert not plan.failures and len(plan.already_applied) == 1


def test_a_deleted_blank_line_between_a_unique_line_and_repeated_ones_is_recognized_as_applied(tmp_path):
    body = "    for x in xs:\n        run(x)\n"
    write(tmp_path, "m.py", f"def a():\n{body}\n\ndef b():\n{body}")
    plan = plan_edits(tmp_path, parse_reply(sr("m.py", f"def b():\n\n{body}", f"def b():\n{body}")))
    assert not plan.failures and len(plan.already_applied) == 1


def test_a_deletion_with_only_blank_lines_after_it_is_refused(tmp_path):
    write(tmp_path, "m.py", "import a\n\n\nX = 1\n")
    details = failure_of(tmp_path, sr("m.py", "import a\nimport b\n\n\n", "import a\n\n\n"))
    assert "not in the file" in details
