"""Build the edit benchmark from real code: consecutive PyPI releases, diffed file by file.

Each changed file becomes several model-style replies (SEARCH/REPLACE, diffs with wrong or
missing line numbers, less context, indentation drift, prose, whole files, several files,
new and deleted files, already-applied edits) plus negative cases that must be refused.

    python bench/edits/make_cases.py [--out /tmp/gc-bench-edits/cases.jsonl]

Sdists are fetched with `pip download --no-deps --no-binary :all:` into /tmp/gc-bench-edits.
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

WORK = Path("/tmp/gc-bench-edits")
PAIRS = [
    ("click", "8.1.6", "8.1.7"), ("attrs", "23.1.0", "23.2.0"), ("idna", "3.6", "3.7"),
    ("packaging", "23.2", "24.0"), ("itsdangerous", "2.1.2", "2.2.0"), ("jinja2", "3.1.3", "3.1.4"),
    ("markdown", "3.5", "3.5.1"), ("pyparsing", "3.1.1", "3.1.2"), ("requests", "2.31.0", "2.32.0"),
    ("werkzeug", "3.0.2", "3.0.3"),
]
FILES_PER_PACKAGE = 4
MAX_LINES = 4000

Case = dict[str, Any]


def sdist(name: str, version: str) -> Path:
    """The release's source tree, downloaded and unpacked once."""
    folder = WORK / "src" / f"{name}-{version}"
    if folder.is_dir():
        return folder
    dl = WORK / "sdists"
    dl.mkdir(parents=True, exist_ok=True)
    found = [p for p in dl.iterdir() if p.name.lower().startswith(f"{name}-{version}.".lower())]
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                        ":all:", f"{name}=={version}", "-d", str(dl)], check=True)
        found = [p for p in dl.iterdir() if p.name.lower().startswith(f"{name}-{version}.".lower())]
    with tarfile.open(found[0]) as tar:
        tar.extractall(folder, filter="data")
    return folder


def py_files(tree: Path) -> dict[str, str]:
    """Python sources of a release, by path below its top folder."""
    out = {}
    for path in sorted(tree.rglob("*.py")):
        rel = path.relative_to(tree).parts[1:]
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if "\r" in text or text.count("\n") > MAX_LINES:
            continue
        out["/".join(rel)] = text
    return out


def lines_of(text: str) -> list[str]:
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def join(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def count(hay: list[str], block: list[str]) -> int:
    n = len(block)
    first = block[0]
    return sum(1 for s in range(len(hay) - n + 1) if hay[s] == first and hay[s : s + n] == block)


def sr_blocks(old: list[str], new: list[str], ctx: int) -> list[tuple[list[str], list[str]]] | None:
    """(search, replace) pairs with `ctx` context lines, grown until each SEARCH is unique."""
    ops = [op for op in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
           if op[0] != "equal"]
    if not ops:
        return None
    clusters = [[op] for op in ops]
    grow = [ctx] * len(clusters)
    for _ in range(400):
        spans = [(max(0, c[0][1] - g), min(len(old), c[-1][2] + g))
                 for c, g in zip(clusters, grow, strict=True)]
        merged = False
        for k in range(len(spans) - 1):
            if spans[k + 1][0] < spans[k][1]:
                clusters[k] += clusters.pop(k + 1)
                grow[k] = max(grow[k], grow.pop(k + 1))
                merged = True
                break
        if merged:
            continue
        bad = [k for k, (a, b) in enumerate(spans) if a == b or count(old, old[a:b]) != 1]
        if not bad:
            out = []
            for c, (a, b) in zip(clusters, spans, strict=True):
                ja = c[0][3] - (c[0][1] - a)
                jb = c[-1][4] + (b - c[-1][2])
                out.append((old[a:b], new[ja:jb]))
            return out
        for k in bad:
            if spans[k] == (0, len(old)):
                return None
            grow[k] += 1
    return None


def sr_reply(path: str, blocks: list[tuple[list[str], list[str]]], style: int = 0) -> str:
    parts = []
    for n, (search, replace) in enumerate(blocks):
        body = f"<<<<<<< SEARCH\n{join(search)}=======\n{join(replace)}>>>>>>> REPLACE\n"
        if style == 0:
            parts.append(f"{path}\n{body}")
        else:
            header = [f"{path}\n```python\n", f"```python\n{path}\n", f"**{path}**\n```python\n",
                      f"`{path}`:\n```py\n"][n % 4]
            prose = ["Here is the change you asked for.", "Next, update this part as well:",
                     "This one fixes the edge case.", "Finally:"][n % 4]
            parts.append(f"{prose}\n\n{header}{body}```\n")
    tail = "\n\nLet me know if you want tests for this!" if style else ""
    return "\n".join(parts) + tail


def unified(path: str, old: str, new: str, n: int, prefix: bool = True) -> str:
    a, b = (f"a/{path}", f"b/{path}") if prefix else (path, path)
    out = []
    for line in difflib.unified_diff(old.splitlines(True), new.splitlines(True), a, b, n=n):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")


def mangle_numbers(diff: str, rng: random.Random, mode: str) -> str:
    out = []
    for line in diff.splitlines(True):
        m = _HEADER.match(line)
        if not m:
            out.append(line)
        elif mode == "none":
            out.append("@@ @@\n")
        else:
            # "offset": numbers off by 3-40 lines, counts right; "counts": counts wrong
            delta = rng.choice([-1, 1]) * rng.randint(3, 40) if mode == "offset" else 0
            a = max(1, int(m.group(1)) + delta)
            c = max(1, int(m.group(3)) + delta)
            b, d = m.group(2) or "1", m.group(4) or "1"
            if mode == "counts":
                b, d = str(int(b) + rng.choice([-2, -1, 1, 3])), str(int(d) + rng.choice([-1, 1, 2]))
            out.append(f"@@ -{a},{max(int(b), 0)} +{c},{max(int(d), 0)} @@{m.group(5)}\n")
    return "".join(out)


def strip_blank_context(diff: str) -> str:
    return "".join("\n" if line == " \n" else line for line in diff.splitlines(True))


def drift_blank_context(diff: str, rng: random.Random, mode: str) -> str | None:
    """One blank context line per hunk dropped ("omit") or doubled ("add"), as models do when
    they retype a hunk; None when no hunk has a blank context line."""
    lines = diff.splitlines(True)
    hunks: list[list[int]] = []
    for k, line in enumerate(lines):
        if line.startswith("@@"):
            hunks.append([])
        elif hunks and line == " \n":
            hunks[-1].append(k)
    chosen = {rng.choice(blanks) for blanks in hunks if blanks}
    if not chosen:
        return None
    out = []
    for k, line in enumerate(lines):
        if k in chosen and mode == "omit":
            continue
        out.append(line)
        if k in chosen and mode == "add":
            out.append(line)
    return "".join(out)


def dedent_blocks(blocks: list[tuple[list[str], list[str]]]) -> list[tuple[list[str], list[str]]] | None:
    """The model drops the blocks' common indentation (a consistent shift)."""
    out, changed = [], False
    for search, replace in blocks:
        ind = min((len(s) - len(s.lstrip()) for s in search + replace if s.strip()), default=0)
        if ind and all(not s.strip() or s[:ind].isspace() for s in search + replace):
            out.append(([s[ind:] for s in search], [r[ind:] for r in replace]))
            changed = True
        else:
            out.append((search, replace))
    return out if changed else None


Blocks = list[tuple[list[str], list[str]]]


def halve_indent(blocks: Blocks) -> Blocks | None:
    """The model writes 2-space indentation for a 4-space file."""
    out, changed = [], False
    for search, replace in blocks:
        lines = [s for s in search + replace if s.strip()]
        widths = [len(s) - len(s.lstrip(" ")) for s in lines]
        # a SEARCH all at column 0 matches exactly and its REPLACE is valid as written:
        # only an indented SEARCH shows the reply's indentation is off
        indented = any(s.strip() and s[0] == " " for s in search)
        if indented and all(s[:w].strip(" ") == "" and not s[w:w + 1].isspace() and w % 2 == 0
               for s, w in zip(lines, widths, strict=True)) and any(widths):
            out.append(([_half(s) for s in search], [_half(r) for r in replace]))
            changed = True
        else:
            out.append((search, replace))
    return out if changed else None


def _half(line: str) -> str:
    width = len(line) - len(line.lstrip(" "))
    return line[width // 2 :] if line.strip() else line


def ws_noise(blocks: Blocks, rng: random.Random) -> Blocks:
    """Trailing spaces the model added to SEARCH lines."""
    return [([s + " " if s.strip() and rng.random() < 0.4 else s for s in search], replace)
            for search, replace in blocks]


def positive(cid: str, kind: str, files: dict[str, str], reply: str,
             expected: dict[str, str | None]) -> Case:
    return {"id": cid, "kind": kind, "positive": True, "files": files, "reply": reply,
            "expected": expected}


def negative(cid: str, kind: str, files: dict[str, str], reply: str, **extra: Any) -> Case:
    return {"id": cid, "kind": kind, "positive": False, "files": files, "reply": reply,
            "expected": dict(files), **extra}


def file_cases(cid: str, path: str, old: str, new: str, rng: random.Random) -> list[Case]:
    o, n = lines_of(old), lines_of(new)
    files, want = {path: old}, {path: new}
    out: list[Case] = []
    exact = sr_blocks(o, n, 2)
    if exact is None:
        return out
    out.append(positive(f"{cid}/sr", "sr_exact", files, sr_reply(path, exact), want))
    minimal = sr_blocks(o, n, 0)
    if minimal:
        out.append(positive(f"{cid}/sr0", "sr_less_context", files, sr_reply(path, minimal), want))
    drift = dedent_blocks(exact)
    if drift:
        out.append(positive(f"{cid}/srind", "sr_indent_drift", files, sr_reply(path, drift), want))
    halved = halve_indent(exact)
    if halved:
        out.append(positive(f"{cid}/srhalf", "sr_indent_rescaled", files, sr_reply(path, halved), want))
    out.append(positive(f"{cid}/srws", "sr_trailing_ws", files, sr_reply(path, ws_noise(exact, rng)), want))
    out.append(positive(f"{cid}/srp", "sr_prose_fenced", files, sr_reply(path, exact, 1), want))
    diff3 = unified(path, old, new, 3)
    out.append(positive(f"{cid}/d", "diff_exact", files, diff3, want))
    out.append(positive(f"{cid}/dwn", "diff_wrong_numbers", files,
                        "Here's the patch:\n\n```diff\n" + mangle_numbers(diff3, rng, "offset") + "```\n",
                        want))
    out.append(positive(f"{cid}/dwc", "diff_wrong_counts", files, mangle_numbers(diff3, rng, "counts"),
                        want))
    out.append(positive(f"{cid}/dnn", "diff_no_numbers", files,
                        mangle_numbers(unified(path, old, new, 3, prefix=False), rng, "none"), want))
    out.append(positive(f"{cid}/d1", "diff_less_context", files,
                        mangle_numbers(unified(path, old, new, 1), rng, "offset"), want))
    out.append(positive(f"{cid}/dbl", "diff_blank_context", files,
                        "```diff\n" + strip_blank_context(diff3) + "```\n", want))
    for mode in ("omit", "add"):
        drifted = drift_blank_context(diff3, rng, mode)
        if drifted:
            out.append(positive(f"{cid}/dbd{mode[0]}", "diff_blank_drift", files,
                                "```diff\n" + mangle_numbers(drifted, rng, "counts") + "```\n", want))
    if len(o) <= 400:
        out.append(positive(f"{cid}/w", "whole_file", files,
                            f"Here is the updated file:\n\n{path}\n```python\n{new}```\n", want))
    if all(r for _, r in exact):
        out.append(positive(f"{cid}/aa", "already_applied", want, sr_reply(path, exact), want))
    out += file_negatives(cid, path, old, o, exact, rng)
    return out


def file_negatives(cid: str, path: str, old: str, o: list[str],
                   exact: list[tuple[list[str], list[str]]], rng: random.Random) -> list[Case]:
    out: list[Case] = []
    files = {path: old}
    search, replace = exact[0]
    idx = [k for k, s in enumerate(search) if re.search(r"[A-Za-z_]\w*", s)]
    if idx:
        k = rng.choice(idx)
        wrong = re.sub(r"[A-Za-z_]\w*", lambda m: m.group(0) + "_v2", search[k], count=1)
        bad = [*search[:k], wrong, *search[k + 1 :]]
        if join(replace) not in old:
            out.append(negative(f"{cid}/nnp", "neg_not_present", files, sr_reply(path, [(bad, replace)])))
            start = next(s for s in range(len(o)) if o[s : s + len(search)] == search)
            hunk = [f"@@ -{start + 1},{len(bad)} +{start + 1},{len(replace)} @@\n"]
            sm = difflib.SequenceMatcher(None, search, replace, autojunk=False)
            for tag, i1, i2, j1, j2 in sm.get_opcodes():
                if tag == "equal":
                    hunk += [" " + bad[i] + "\n" for i in range(i1, i2)]
                else:
                    hunk += ["-" + bad[i] + "\n" for i in range(i1, i2)]
                    hunk += ["+" + replace[j] + "\n" for j in range(j1, j2)]
            diff = f"--- a/{path}\n+++ b/{path}\n" + "".join(hunk)
            out.append(negative(f"{cid}/nnpd", "neg_not_present_diff", files, diff))
    deletion = misquoted_deletion(o, new_lines_of(old, exact), rng)
    if deletion is not None:
        # with a valid block beside it: taking the bad one for "already applied" writes the other
        out.append(negative(f"{cid}/ndel", "neg_deletion_misquoted", files,
                            sr_reply(path, [deletion, exact[0]])))
    dups = [line for line in sorted(set(o)) if len(line.strip()) > 6 and o.count(line) >= 2]
    if dups:
        line = rng.choice(dups)
        where = [k for k, x in enumerate(o) if x == line]
        out.append(negative(f"{cid}/namb", "neg_ambiguous", files,
                            sr_reply(path, [([line], [line + "  # changed"])])))
        off = next(k for k in range(len(o)) if k not in where)
        out.append(negative(f"{cid}/nambd", "neg_ambiguous_diff", files,
                            f"--- a/{path}\n+++ b/{path}\n@@ -{off + 1},1 +{off + 1},1 @@\n-{line}\n"
                            f"+{line}  # changed\n"))
    first = _hunks(unified(path, old, join(_apply_blocks(o, exact[:1])), 1))
    if first and any(x.startswith("-") for x in first[0][1:]):
        head, *body = first[0]
        other = [("+" + x[1:].rstrip("\n") + "  # conflicting\n") if x.startswith("-") else x
                 for x in body if not x.startswith("+")]
        conflict = [x for x in body if not x.startswith("+")] + [x for x in other if x.startswith("+")]
        diff = f"--- a/{path}\n+++ b/{path}\n{head}{''.join(body)}{head}{''.join(conflict)}"
        out.append(negative(f"{cid}/ncf", "neg_conflict", files, diff))
    return out


def new_lines_of(old: str, exact: list[tuple[list[str], list[str]]]) -> list[str]:
    return _apply_blocks(lines_of(old), exact)


_WORD = re.compile(r"[A-Za-z_]\w*")


def misquoted_deletion(o: list[str], n: list[str], rng: random.Random,
                       ) -> tuple[list[str], list[str]] | None:
    """A block deleting lines after two kept ones, one deleted line misquoted (not in the file),
    so SEARCH is absent while REPLACE (the kept lines, part of SEARCH) is present.

    Cut from a real deletion of the release diff when it has one, else from the file's lines.
    """
    spans = [(i1, i2) for tag, i1, i2, _, _ in
             difflib.SequenceMatcher(None, o, n, autojunk=False).get_opcodes()
             if tag == "delete" and i1 >= 2]
    if not spans:
        starts = [p for p in range(2, len(o) - 2) if _WORD.search(o[p])]
        if not starts:
            return None
        p = rng.choice(starts)
        spans = [(p, min(p + rng.randint(1, 3), len(o)))]
    i1, i2 = rng.choice(spans)
    kept, removed = o[i1 - 2 : i1], o[i1:i2]
    words = [k for k, line in enumerate(removed) if _WORD.search(line)]
    if not words or not any(line.strip() for line in kept):
        return None
    k = rng.choice(words)
    removed[k] = _WORD.sub(lambda m: m.group(0) + "_v2", removed[k], count=1)
    search = kept + removed
    if count(o, search) or not count(o, kept):
        return None
    return search, kept


def _apply_blocks(o: list[str], blocks: list[tuple[list[str], list[str]]]) -> list[str]:
    text = o
    for search, replace in blocks:
        s = next(k for k in range(len(text)) if text[k : k + len(search)] == search)
        text = text[:s] + replace + text[s + len(search) :]
    return text


def _hunks(diff: str) -> list[list[str]]:
    hunks: list[list[str]] = []
    for line in diff.splitlines(True)[2:]:
        if line.startswith("@@"):
            hunks.append([line])
        elif hunks:
            hunks[-1].append(line)
    return hunks


def package_cases(name: str, v1: str, v2: str, rng: random.Random) -> list[Case]:
    old_files, new_files = py_files(sdist(name, v1)), py_files(sdist(name, v2))
    changed = [p for p in old_files if p in new_files and old_files[p] != new_files[p]]
    rng.shuffle(changed)
    changed = sorted(changed[:FILES_PER_PACKAGE])
    out: list[Case] = []
    for k, path in enumerate(changed):
        out += file_cases(f"{name}/{k}", path, old_files[path], new_files[path], rng)
    multi = [p for p in changed if sr_blocks(lines_of(old_files[p]), lines_of(new_files[p]), 2)][:3]
    if len(multi) >= 2:
        reply = "I'll update several files.\n\n" + "\n".join(
            sr_reply(p, sr_blocks(lines_of(old_files[p]), lines_of(new_files[p]), 2) or [], 1)
            for p in multi)
        out.append(positive(f"{name}/multi", "multi_file", {p: old_files[p] for p in multi}, reply,
                            {p: new_files[p] for p in multi}))
        p, q = multi[0], multi[1]
        good = sr_blocks(lines_of(old_files[p]), lines_of(new_files[p]), 2) or []
        bad_reply = sr_reply(p, good) + "\n" + sr_reply(q, [(["this line is not in the file"], ["x"])])
        out.append(negative(f"{name}/npart", "neg_partial", {p: old_files[p], q: old_files[q]}, bad_reply))
        bad_diff = unified(p, old_files[p], new_files[p], 3) + (
            f"--- a/{q}\n+++ b/{q}\n@@ -1,1 +1,1 @@\n-this line is not in the file\n+x\n")
        out.append(negative(f"{name}/npartd", "neg_partial_diff", {p: old_files[p], q: old_files[q]},
                            bad_diff))
    added = sorted(p for p in new_files if p not in old_files)[:2] or [
        "newmod_" + changed[0].rsplit("/", 1)[-1]]
    for k, path in enumerate(added):
        text = new_files.get(path) or new_files[changed[0]]
        base = {changed[0]: old_files[changed[0]]}
        style = k % 3 if added != [path] else rng.randrange(3)
        if style == 0:
            reply = f"{path}\n<<<<<<< SEARCH\n=======\n{text}>>>>>>> REPLACE\n"
        elif style == 1:
            diff = unified(path, "", text, 3).replace(f"--- a/{path}\n", "--- /dev/null\n", 1)
            reply = "```diff\n" + diff + "```\n"
        else:
            reply = f"Create {path}:\n\n{path}\n```python\n{text}```\n"
        out.append(positive(f"{name}/new{k}", "new_file", base, reply, {**base, path: text}))
    removed = sorted(p for p in old_files if p not in new_files)[:1] or sorted(
        (p for p in old_files if p.endswith("__init__.py") and old_files[p].strip()),
        key=lambda p: len(old_files[p]))[:1]
    for path in removed:
        text = old_files[path]
        reply = (f"diff --git a/{path} b/{path}\ndeleted file mode 100644\n"
                 + unified(path, text, "", 3).replace(f"+++ b/{path}", "+++ /dev/null"))
        out.append(positive(f"{name}/del", "delete_file", {path: text}, reply, {path: None}))
    p = changed[0]
    old = old_files[p]
    if len(lines_of(old)) > 30:
        head = "\n".join(lines_of(old)[:8])
        out.append(negative(f"{name}/nfrag", "neg_whole_fragment", {p: old},
                            f"{p}\n```python\n{head}\n# ... rest of the file unchanged ...\n```\n"))
    return out


def escape_cases() -> list[Case]:
    base = {"pkg/mod.py": "x = 1\n"}
    new = "--- /dev/null\n+++ b/{0}\n@@ -0,0 +1 @@\n+owned = True\n"
    return [
        negative("escape/dotdot", "neg_escape", base, new.format("../outside/evil.py")),
        negative("escape/abs", "neg_escape", base,
                 "--- /dev/null\n+++ /tmp/gc-bench-abs-evil.py\n@@ -0,0 +1 @@\n+owned = True\n"),
        negative("escape/git", "neg_escape", base, new.format(".git/hooks/post-checkout")),
        negative("escape/symlink", "neg_escape", {**base}, "--- a/vendor/secret.py\n+++ b/vendor/secret.py\n"
                 "@@ -1 +1 @@\n-secret = 1\n+secret = 2\n", symlink={"vendor": "../outside"}),
        negative("escape/dotdot_sr", "neg_escape", base,
                 "../outside/secret.py\n<<<<<<< SEARCH\nsecret = 1\n=======\nsecret = 2\n>>>>>>> REPLACE\n"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(WORK / "cases.jsonl"))
    parser.add_argument("--seed", type=int, default=20261128)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cases: list[Case] = []
    for name, v1, v2 in PAIRS:
        cases += package_cases(name, v1, v2, rng)
    cases += escape_cases()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        for case in cases:
            handle.write(json.dumps(case) + "\n")
    pos = sum(c["positive"] for c in cases)
    print(f"{len(cases)} cases ({pos} positive, {len(cases) - pos} negative) -> {args.out}")


if __name__ == "__main__":
    main()
