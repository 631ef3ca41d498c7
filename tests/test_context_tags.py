"""Tags: tree-sitter definitions and references per language, the lexical fallback, the cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import git

from gemma_code.context.cache import ContextCache
from gemma_code.context.files import scan_files
from gemma_code.context.tags import (
    extract_tags,
    file_tags,
    find_definitions,
    find_references,
    references_in,
)
from gemma_code.context.tagscan import scan_tags

# language: (defining file, its source, using file, its source, {name: kind} that must be found)
FIXTURES: dict[str, tuple[str, str, str, str, dict[str, str]]] = {
    "python": (
        "shapes.py",
        "class Circle:\n    def area(self):\n        return 3\n\n\n"
        "def make_circle(r):\n    return Circle()\n",
        "main.py",
        "from shapes import make_circle\n\nc = make_circle(2)\n",
        {"Circle": "class", "area": "method", "make_circle": "function"},
    ),
    "javascript": (
        "shapes.js",
        "class Circle {\n  area() { return 3; }\n}\nfunction makeCircle(r) { return new Circle(); }\n"
        "const helper = (x) => x;\n",
        "main.js",
        "import { makeCircle } from './shapes.js';\nconst c = makeCircle(2);\n",
        {"Circle": "class", "area": "method", "makeCircle": "function", "helper": "function"},
    ),
    "typescript": (
        "shapes.ts",
        "export interface Shape { area(): number; }\nexport class Circle implements Shape {\n"
        "  area(): number { return 3; }\n}\nexport function makeCircle(r: number): Circle {\n"
        "  return new Circle();\n}\ntype Radius = number;\n",
        "main.ts",
        "import { makeCircle } from './shapes';\nconst c = makeCircle(2);\n",
        {"Shape": "interface", "Circle": "class", "makeCircle": "function", "Radius": "type"},
    ),
    "tsx": (
        "Button.tsx",
        "export function makeCircle(props: {r: number}) {\n  return <div>{props.r}</div>;\n}\n"
        "export interface Props { r: number }\n",
        "App.tsx",
        "import { makeCircle } from './Button';\nexport const App = () => makeCircle({r: 1});\n",
        {"makeCircle": "function", "Props": "interface"},
    ),
    "go": (
        "shapes.go",
        "package shapes\n\ntype Circle struct{ R float64 }\n\nfunc (c Circle) Area() float64 { return 3 }\n\n"
        "func MakeCircle(r float64) Circle { return Circle{r} }\n",
        "main.go",
        "package main\n\nfunc main() { c := shapes.MakeCircle(2); _ = c }\n",
        {"Circle": "type", "Area": "method", "MakeCircle": "function"},
    ),
    "rust": (
        "shapes.rs",
        "pub struct Circle { r: f64 }\n\nimpl Circle {\n    pub fn area(&self) -> f64 { 3.0 }\n}\n\n"
        "pub fn make_circle(r: f64) -> Circle { Circle { r } }\n\n"
        "pub trait Shape { fn area(&self) -> f64; }\n",
        "main.rs",
        "fn main() { let c = make_circle(2.0); }\n",
        {"Circle": "struct", "area": "method", "make_circle": "function", "Shape": "trait"},
    ),
    "java": (
        "Circle.java",
        "public class Circle {\n  public Circle() {}\n  public double area() { return 3; }\n"
        "  public static Circle makeCircle(double r) { return new Circle(); }\n}\n",
        "Main.java",
        "class Main { void run() { Circle c = Circle.makeCircle(2); } }\n",
        {"Circle": "class", "area": "method", "makeCircle": "method"},
    ),
    "c": (
        "shapes.c",
        "struct circle { double r; };\n\ndouble area(struct circle *c) { return 3; }\n\n"
        "struct circle *make_circle(double r) { return 0; }\n#define PI 3\n",
        "main.c",
        "int main(void) { struct circle *c = make_circle(2); return 0; }\n",
        {"circle": "struct", "area": "function", "make_circle": "function", "PI": "macro"},
    ),
    "cpp": (
        "shapes.cpp",
        "namespace geo {\nclass Circle {\n public:\n  double area();\n};\n}\n"
        "double geo::Circle::area() { return 3; }\n\nCircle make_circle(double r) { return Circle(); }\n",
        "main.cpp",
        "int main() { auto c = make_circle(2); return 0; }\n",
        {"geo": "namespace", "Circle": "class", "area": "method", "make_circle": "function"},
    ),
    "csharp": (
        "Circle.cs",
        "namespace Geo {\n  public class Circle {\n    public double Area() { return 3; }\n"
        "    public static Circle MakeCircle(double r) { return new Circle(); }\n  }\n}\n",
        "Program.cs",
        "class Program { static void Main() { var c = Circle.MakeCircle(2); } }\n",
        {"Geo": "namespace", "Circle": "class", "Area": "method", "MakeCircle": "method"},
    ),
    "ruby": (
        "circle.rb",
        "module Geo\n  class Circle\n    def area\n      3\n    end\n  end\nend\n\n"
        "def make_circle(r)\n  Geo::Circle.new\nend\n",
        "main.rb",
        "c = make_circle(2)\n",
        {"Geo": "module", "Circle": "class", "area": "method", "make_circle": "method"},
    ),
    "php": (
        "Circle.php",
        "<?php\nclass Circle {\n  public function area() { return 3; }\n}\n"
        "function make_circle($r) { return new Circle(); }\ninterface Shape {}\n",
        "main.php",
        "<?php\n$c = make_circle(2);\n",
        {"Circle": "class", "area": "method", "make_circle": "function", "Shape": "interface"},
    ),
}


def _repo(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "fixture")
    return root


@pytest.mark.parametrize("lang", sorted(FIXTURES))
def test_definitions_have_names_kinds_and_lines_per_language(lang: str) -> None:
    def_file, source, _, _, expected = FIXTURES[lang]
    tags = extract_tags(def_file, source.encode())
    assert tags.lang == lang
    found: dict[str, set[str]] = {}
    for tag in tags.definitions:
        found.setdefault(tag.name, set()).add(tag.kind)
    for name, kind in expected.items():
        assert kind in found.get(name, set()), (name, found)
    lines = source.split("\n")
    for tag in tags.definitions:
        assert tag.name in lines[tag.line - 1] or tag.line <= tag.end_line
        assert tag.text == lines[tag.line - 1].rstrip()[:160]


@pytest.mark.parametrize("lang", sorted(FIXTURES))
def test_references_across_files_per_language(lang: str, tmp_path: Path) -> None:
    def_file, source, use_file, use_source, expected = FIXTURES[lang]
    root = _repo(tmp_path, {def_file: source, use_file: use_source})
    called = next(n for n in expected if n.lower().replace("_", "") == "makecircle")
    defs = find_definitions(root, called)
    assert [(d.path, d.is_definition) for d in defs] == [(def_file, True)]
    refs = find_references(root, called)
    assert use_file in {r.path for r in refs}
    use_line = next(i for i, line in enumerate(use_source.split("\n"), 1) if called in line)
    assert any(r.path == use_file and r.line == use_line for r in refs)
    # the definition site itself is not a reference
    assert all(not (r.path == def_file and r.line == defs[0].line) for r in refs)


def test_references_ignore_comments_and_strings(tmp_path: Path) -> None:
    root = _repo(tmp_path, {
        "a.py": "def target():\n    pass\n",
        "b.py": "# target is mentioned here\ns = 'target'\ntarget()\n",
    })
    refs = find_references(root, "target")
    assert [(r.path, r.line) for r in refs] == [("b.py", 3)]


def test_lexical_fallback_tags_unknown_languages(tmp_path: Path) -> None:
    source = "local M = {}\nfunction helper(x)\n  return x\nend\n"
    tags = extract_tags("mod.lua", source.encode())
    assert tags.lang == "text"
    assert [(t.name, t.line) for t in tags.definitions] == [("helper", 2)]
    (tmp_path / "mod.lua").write_text(source + "helper(1)\n", encoding="utf-8")
    assert [r.line for r in references_in(tmp_path, "mod.lua", "helper")] == [5]


def test_file_tags_reads_one_file(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("def one():\n    return 1\n", encoding="utf-8")
    tags = file_tags(tmp_path, "x.py")
    assert [(t.name, t.kind, t.line, t.end_line) for t in tags.definitions] == [("one", "function", 1, 2)]


def test_non_utf8_text_is_tagged_not_crashed() -> None:
    tags = extract_tags("latin.py", "def caf\u00e9():\n    return '\u00e9'\n".encode("latin-1"))
    assert tags.skip == ""
    assert tags.lines == 2


def test_editing_a_file_invalidates_exactly_its_cache_entry(tmp_path: Path) -> None:
    root = _repo(tmp_path, {f"m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(5)})
    with ContextCache() as cache:
        first = scan_tags(root, scan_files(root).files, cache=cache)
        assert sorted(first.parsed) == [f"m{i}.py" for i in range(5)]
        second = scan_tags(root, scan_files(root).files, cache=cache)
        assert second.parsed == [] and second.reused == 5
        (root / "m3.py").write_text("def changed():\n    return 33\n", encoding="utf-8")
        third = scan_tags(root, scan_files(root).files, cache=cache)
        assert third.parsed == ["m3.py"]
        assert third.reused == 4
        assert [t.name for t in third.tags["m3.py"].definitions] == ["changed"]


def test_cache_on_unwritable_location_degrades_to_no_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    cache = ContextCache(blocker / "sub" / "context.sqlite")
    assert not cache.ok
    root = _repo(tmp_path, {"a.py": "def a():\n    pass\n"})
    scan = scan_tags(root, scan_files(root).files, cache=cache)
    assert list(scan.tags) == ["a.py"]
    assert any("cache disabled" in n for n in scan.notes)


def test_a_file_changing_during_the_scan_is_noted_and_not_cached(tmp_path: Path) -> None:
    from gemma_code.context.files import RepoFile

    root = _repo(tmp_path, {"a.py": "def a():\n    pass\n"})
    listed = scan_files(root).files
    (root / "a.py").write_text("def a():\n    pass\n\n\ndef grown():\n    pass\n", encoding="utf-8")
    stale = [RepoFile(f.path, f.size, f.mtime_ns) for f in listed]  # the stat from before the change
    with ContextCache() as cache:
        first = scan_tags(root, stale, cache=cache)
        assert any("changed while it was read" in n for n in first.notes)
        assert "grown" in {t.name for t in first.tags["a.py"].definitions}
        again = scan_tags(root, stale, cache=cache)
        assert again.parsed == ["a.py"]  # not cached under the stale stat


def test_parallel_parse_gives_the_same_tags_as_serial(tmp_path: Path, monkeypatch) -> None:
    from gemma_code.context import tagscan

    files = {f"p{i}.py": f"def f{i}(x):\n    return g{i}(x)\n" for i in range(30)}
    root = _repo(tmp_path, files)
    listed = scan_files(root).files
    serial = scan_tags(root, listed, cache=ContextCache(tmp_path / "a.sqlite"))
    monkeypatch.setattr(tagscan, "PARALLEL_FROM", 2)
    parallel = scan_tags(root, listed, cache=ContextCache(tmp_path / "b.sqlite"))
    assert sorted(parallel.parsed) == sorted(serial.parsed) == sorted(files)
    for path in files:
        assert parallel.tags[path] == serial.tags[path]


def test_the_builder_waits_for_its_early_threads_before_starting_parse_workers(
    tmp_path: Path, monkeypatch
) -> None:
    # a forked worker inherits the locks a running thread holds (an import, a process start)
    import concurrent.futures

    from gemma_code import context
    from gemma_code.context import tagscan

    files = {f"p{i}.py": f"def f{i}(x):\n    return g{i}(x)\n" for i in range(12)}
    root = _repo(tmp_path, files)
    events: list[str] = []
    settle = context._Early.settle
    monkeypatch.setattr(context._Early, "settle", lambda self: (events.append("settled"), settle(self))[1])
    real_pool = concurrent.futures.ProcessPoolExecutor

    def pool(*args, **kwargs):  # type: ignore[no-untyped-def]
        events.append("fork")
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", pool)
    monkeypatch.setattr(tagscan, "PARALLEL_FROM", 2)
    packed = context.build_context(root, "f3", budget=2000)
    assert events[:2] == ["settled", "fork"]
    assert any("12 files parsed" in n for n in packed.notes)
