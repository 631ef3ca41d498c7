"""Definitions and references per file: tree-sitter where a grammar exists, lexical otherwise.

Public API (used by context ranking, edit/refactor/explain and review):
  file_tags(root, path) -> FileTags            definitions + identifier counts of one file
  references_in(root, path, name=None)         precise reference sites in one file
  find_definitions(root, name) -> [Tag]        where a name is defined, across the repository
  find_references(root, name) -> [Tag]         where it is used (definitions excluded)
  scan_tags(root, files, ...) -> TagScan       every candidate file, through the sqlite cache
                                               (in tagscan.py)
"""

from __future__ import annotations

import marshal
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemma_code.context.files import has_private_key, scan_files
from gemma_code.context.languages import IDENTIFIER_TYPES, language_for, parser_and_query
from gemma_code.generated import is_generated_text

if TYPE_CHECKING:
    from gemma_code.context.tagscan import TagScan

IDENT = re.compile(r"[^\W\d]\w+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_LEXICAL_DEF = re.compile(
    r"^[ \t]*(?:export\s+|public\s+|private\s+|static\s+|async\s+)*"
    r"(def|fn|func|function|class|struct|trait|interface|module|sub|proc|fun|object|enum|type)"
    r"\s+([^\W\d]\w*)",
    re.MULTILINE,
)
# A line over this length, on average, means minified or machine-written text.
MINIFIED_LINE = 300
MAX_SIGNATURE = 160
# identifier -> its BM25 terms; the same names recur across thousands of files
_IDENT_TERMS: dict[str, tuple[str, ...]] = {}
_STEMS: dict[str, str] = {}  # word -> its stem, for the same reason


@dataclass(frozen=True)
class Tag:
    """A definition (kind = function, class, method, ...) or a reference (kind = "reference")."""

    path: str
    name: str
    kind: str
    line: int  # 1-based first line
    end_line: int  # 1-based last line
    text: str  # the source line at `line` (a definition's signature), right-stripped

    @property
    def is_definition(self) -> bool:
        return self.kind != "reference"


DefRow = tuple[str, str, int, int, str]  # name, kind, line, end_line, text


@dataclass
class FileTags:
    """What the ranker needs from one file; `skip` says why the file is unusable ("" if fine).

    Definitions are kept as plain rows and become Tag objects only when asked for, because a
    warm run over a large repository reads every file's rows but looks at few of them.
    """

    path: str
    lang: str = "text"
    rows: list[DefRow] = field(default_factory=list)
    identifiers: dict[str, int] = field(default_factory=dict)  # names used, with counts
    terms: dict[str, int] = field(default_factory=dict)  # stemmed lower-case words, for BM25
    lines: int = 0
    words: int = 0  # sum of `terms` counts: the document length for BM25
    skip: str = ""
    path_terms: list[str] = field(default_factory=list)  # stemmed words of the path

    @property
    def definitions(self) -> list[Tag]:
        return [Tag(self.path, n, k, a, b, t) for n, k, a, b, t in self.rows]

    @definitions.setter
    def definitions(self, tags: Sequence[Tag]) -> None:
        self.rows = [(t.name, t.kind, t.line, t.end_line, t.text) for t in tags]

    def meta(self) -> tuple[str, list[DefRow], int, int, str, list[str]]:
        """Everything but the identifiers and terms, as plain values (what a warm run reads)."""
        return (self.lang, self.rows, self.lines, self.words, self.skip, self.path_terms)

    def dump(self) -> tuple[bytes, bytes, bytes]:
        """(meta, terms, identifiers) blobs for the cache, each loaded only when needed."""
        return marshal.dumps(self.meta()), marshal.dumps(self.terms), marshal.dumps(self.identifiers)

    @classmethod
    def from_meta(cls, path: str, meta: Sequence[Any], terms: dict[str, int] | None = None,
                  ids: dict[str, int] | None = None) -> FileTags:
        lang, rows, lines, words, skip, path_terms = meta
        return cls(path, lang, rows, ids or {}, terms or {}, lines, words, skip, path_terms)

    @classmethod
    def load(cls, path: str, meta: bytes, terms: bytes | None, ids: bytes | None) -> FileTags:
        return cls.from_meta(path, marshal.loads(meta), marshal.loads(terms) if terms is not None else None,
                             marshal.loads(ids) if ids is not None else None)


def split_words(identifier: str) -> list[str]:
    """`parseHTTPResponse_v2` -> ["parse", "http", "response", "v2"]-like lower-case words."""
    words: list[str] = []
    for part in identifier.split("_"):
        if part:
            words.extend(w.lower() for w in _CAMEL.findall(part))
    return [w for w in words if len(w) > 1]


def stem(word: str) -> str:
    """A light suffix stripper so 'caching', 'cached' and 'cache' meet."""
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s"):
        if len(w) - len(suffix) >= 3 and w.endswith(suffix) and not w.endswith("ss"):
            w = w[: -len(suffix)]
            break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def is_compound(ident: str) -> bool:
    """A name written like code: snake_case or camelCase/CamelCase with an inner capital."""
    core = ident.strip("_")
    return "_" in core or not (core.islower() or core.isupper() or core.istitle())


def _ident_terms(ident: str) -> tuple[str, ...]:
    """The BM25 terms one identifier contributes: its stemmed words, and `=name` when compound."""
    stems = _STEMS
    words = []
    for word in _CAMEL.findall(ident):
        if len(word) > 1:
            s = stems.get(word)
            if s is None:
                s = stems[word] = stem(word)
            words.append(s)
    if is_compound(ident):
        words.append("=" + ident.lower())
    return tuple(w for w in words if w)


def path_words(path: str) -> list[str]:
    """Stemmed words of a path: `django/contrib/auth/forms.py` -> django, contrib, auth, form, py;
    a compound module name (`admin_tags.py`) also as a whole name (`=admin_tags`)."""
    words = [stem(w) for part in re.split(r"[/.\-]", path) for w in split_words(part)]
    name = path.rsplit("/", 1)[-1].split(".", 1)[0]
    if is_compound(name):
        words.append("=" + name.lower())
    return words


def decode(data: bytes) -> str:
    """Text of a file: UTF-8, else Latin-1 (never fails; odd bytes stay visible)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def content_skip_reason(path: str, data: bytes) -> str:
    """Why a file's bytes make it unusable ("" if usable)."""
    head = data[:8192]
    if b"\0" in head:
        return "binary"
    if has_private_key(data):
        return "contains a private key"
    if data and data.count(b"\n") + 1 < len(data) // MINIFIED_LINE:
        return "generated or minified"
    if is_generated_text(data):
        return "generated or minified"
    return ""


def extract_tags(path: str, data: bytes, *, check_content: bool = True) -> FileTags:
    """Parse one file's bytes into FileTags."""
    if check_content:
        reason = content_skip_reason(path, data)
        if reason:
            return FileTags(path, skip=reason)
    text = decode(data)
    tags = FileTags(path, lines=text.count("\n") + (0 if text.endswith("\n") else 1))
    tags.path_terms = path_words(path)
    idents = Counter(IDENT.findall(text))
    tags.identifiers = dict(idents)
    # the words of every identifier (split at `_` and camelCase, stemmed) and, for code-like
    # names (`get_response`, `HttpRequest`), the whole name too: a question naming one means it.
    # Worked out once per distinct identifier and remembered across files.
    terms: dict[str, int] = {}
    memo = _IDENT_TERMS
    if len(memo) > 500_000:
        memo.clear()  # bound the memory of a very long-lived process
        _STEMS.clear()
    for ident, count in idents.items():
        parts = memo.get(ident)
        if parts is None:
            parts = memo[ident] = _ident_terms(ident)
        for term in parts:
            terms[term] = terms.get(term, 0) + count
    tags.terms = terms
    tags.words = sum(terms.values())
    lang = language_for(path)
    tools = parser_and_query(lang) if lang else None
    lines = text.split("\n")
    if tools is None:
        tags.definitions = _lexical_definitions(path, text, lines)
        return tags
    tags.lang = lang or "text"
    tags.definitions = _tree_definitions(path, data, lines, tools)
    return tags


def _signature(lines: list[str], line: int) -> str:
    text = lines[line - 1].rstrip() if 0 < line <= len(lines) else ""
    return text[:MAX_SIGNATURE]


def _tree_definitions(path: str, data: bytes, lines: list[str], tools: tuple[Any, Any]) -> list[Tag]:
    from tree_sitter import QueryCursor

    parser, query = tools
    tree = parser.parse(data)
    found: dict[tuple[int, str], Tag] = {}
    for _, caps in QueryCursor(query).matches(tree.root_node):
        names = caps.get("name")
        if not names:
            continue
        name_node = names[0]
        for cap, nodes in caps.items():
            if not cap.startswith("def."):
                continue
            node = nodes[0]
            kind = cap[4:]
            if kind == "function" and _inside_class(node):
                kind = "method"
            # `geo::Circle::area` and Ruby's `Geo::Circle` are known by their last part
            name = decode(name_node.text or b"").rsplit("::", 1)[-1]
            line = name_node.start_point[0] + 1
            start = node.start_point[0] + 1
            end = max(node.end_point[0] + 1, line)
            # the name's line is the signature; a decorator or doc comment can start earlier
            found.setdefault((line, name), Tag(path, name, kind, start, end, _signature(lines, line)))
    return sorted(found.values(), key=lambda t: (t.line, t.name))


def _inside_class(node: object) -> bool:
    parent = getattr(node, "parent", None)
    for _ in range(3):
        if parent is None:
            return False
        if parent.type in ("class_definition", "class_body", "class_declaration", "impl_item"):
            return True
        parent = parent.parent
    return False


def _lexical_definitions(path: str, text: str, lines: list[str]) -> list[Tag]:
    tags = []
    for match in _LEXICAL_DEF.finditer(text):
        line = text.count("\n", 0, match.start(2)) + 1
        kind = {"def": "function", "fn": "function", "func": "function", "fun": "function",
                "sub": "function", "proc": "function"}.get(match.group(1), match.group(1))
        tags.append(Tag(path, match.group(2), kind, line, line, _signature(lines, line)))
    return tags


def file_tags(root: Path | str, path: str) -> FileTags:
    """Definitions and identifier counts of one file (relative POSIX path), uncached."""
    data = (Path(root) / path).read_bytes()
    return extract_tags(path, data, check_content=False)


def references_in(root: Path | str, path: str, name: str | None = None) -> list[Tag]:
    """Reference sites in one file (of `name`, or of every identifier), definitions excluded."""
    data = (Path(root) / path).read_bytes()
    text = decode(data)
    lines = text.split("\n")
    lang = language_for(path)
    tools = parser_and_query(lang) if lang else None
    def_sites = {(t.line, t.name) for t in extract_tags(path, data, check_content=False).definitions}
    refs: list[Tag] = []
    if tools is None:
        pattern = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)") if name else IDENT
        for number, line in enumerate(lines, 1):
            for match in pattern.finditer(line):
                if (number, match.group(0)) not in def_sites:
                    refs.append(Tag(path, match.group(0), "reference", number, number, line.rstrip()))
        return refs
    tree = tools[0].parse(data)
    encoded = name.encode("utf-8") if name else None
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.child_count == 0 or node.type in IDENTIFIER_TYPES:
            if node.type in IDENTIFIER_TYPES and (encoded is None or node.text == encoded):
                ident = decode(node.text or b"")
                line = node.start_point[0] + 1
                if (line, ident) not in def_sites:
                    refs.append(Tag(path, ident, "reference", line, node.end_point[0] + 1,
                                    _signature(lines, line)))
            if node.child_count == 0:
                continue
        stack.extend(reversed(node.children))
    return sorted(set(refs), key=lambda t: (t.line, t.name))


def _repo_tags(root: Path | str, *, identifiers: bool) -> tuple[Path, TagScan]:
    from gemma_code.context.tagscan import scan_tags

    base = Path(root).resolve()
    files = scan_files(base)
    return base, scan_tags(base, files.files, identifiers=identifiers, terms=False)


def find_definitions(root: Path | str, name: str) -> list[Tag]:
    """Every definition of `name` in the repository, by path then line."""
    _, scan = _repo_tags(root, identifiers=False)
    found = [Tag(tags.path, *row) for tags in scan.tags.values() for row in tags.rows if row[0] == name]
    return sorted(found, key=lambda t: (t.path, t.line))


def find_references(root: Path | str, name: str) -> list[Tag]:
    """Every use of `name` (identifier nodes, not comments or strings where parsed), by path then line."""
    base, scan = _repo_tags(root, identifiers=True)
    found: list[Tag] = []
    for path in sorted(scan.tags):
        if name in scan.tags[path].identifiers:
            try:
                found.extend(references_in(base, path, name))
            except OSError:
                continue  # deleted since the scan
    return found
