"""JSON Schema -> llama.cpp GBNF grammar, for the small schema subset the review reply uses.

Our own converter (not llama_cpp.llama_grammar) so that building a prompt never imports llama.cpp,
and so the grammar is small and fixed: object properties in schema order, compact whitespace
(a small model constrained to JSON can otherwise emit blank lines until max_tokens).
"""

from __future__ import annotations

import json
import re
from typing import Any

from gemma_code.review.findings import REPLY_SCHEMA

PRIMITIVES = {
    "ws": '| " " | "\\n" [ ]{0,8}',
    "string": '"\\"" char* "\\""',
    "char": '[^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "integer": '"-"? ("0" | [1-9] [0-9]{0,15})',
    "nonneg": '"0" | [1-9] [0-9]{0,15}',
    "number": '"-"? ("0" | [1-9] [0-9]*) ("." [0-9]+)? ([eE] [-+]? [0-9]+)?',
    "boolean": '"true" | "false"',
    "null": '"null"',
}
PRIMITIVE_DEPS = {"string": ["char"]}


def _literal(value: str) -> str:
    """A GBNF string literal for `value` (JSON text, escaped for the grammar)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Converter:
    def __init__(self, max_items: int) -> None:
        self.rules: dict[str, str] = {}
        self.max_items = max_items

    def primitive(self, name: str) -> str:
        self.rules.setdefault(name, PRIMITIVES[name])
        for dep in PRIMITIVE_DEPS.get(name, []):
            self.rules.setdefault(dep, PRIMITIVES[dep])
        return name

    def add(self, name: str, body: str) -> str:
        name = re.sub(r"[^a-zA-Z0-9-]+", "-", name).strip("-") or "rule"
        base, n = name, 1
        while name in self.rules and self.rules[name] != body:
            n += 1
            name = f"{base}{n}"
        self.rules[name] = body
        return name

    def visit(self, schema: dict[str, Any], name: str) -> str:
        if "anyOf" in schema:
            alts = [self.visit(s, f"{name}-{i}") for i, s in enumerate(schema["anyOf"])]
            return self.add(name, " | ".join(alts))
        if "enum" in schema:
            return self.add(name, " | ".join(_literal(json.dumps(v)) for v in schema["enum"]))
        kind = schema.get("type")
        if kind == "object":
            props: dict[str, Any] = schema.get("properties", {})
            required = set(schema.get("required", props))
            if set(props) - required:
                raise ValueError(f"{name}: optional properties are not supported; use anyOf null")
            parts = []
            for i, (key, sub) in enumerate(props.items()):
                sep = "" if i == 0 else '"," ws '
                parts.append(f'{sep}{_literal(json.dumps(key))} ws ":" ws {self.visit(sub, f"{name}-{key}")}')
            inner = " ws ".join(parts)
            return self.add(name, f'"{{" ws {inner} ws "}}"' if parts else '"{" ws "}"')
        if kind == "array":
            item = self.visit(schema.get("items", {"type": "string"}), f"{name}-item")
            limit = int(schema.get("maxItems", self.max_items))
            more = f'("," ws {item}){{0,{limit - 1}}}'
            return self.add(name, f'"[" ws ({item} ws {more} ws)? "]"')
        if kind == "string" and "maxLength" in schema:
            # a bound on every string is what stops a small model looping inside one
            self.primitive("char")
            return self.add(f"string-{schema['maxLength']}", f'"\\"" char{{0,{schema["maxLength"]}}} "\\""')
        if kind == "integer" and schema.get("minimum", -1) >= 0:
            return self.primitive("nonneg")
        if kind in PRIMITIVES:
            return self.primitive(str(kind))
        raise ValueError(f"{name}: unsupported schema {schema!r}")


def schema_to_gbnf(schema: dict[str, Any], *, max_items: int = 10) -> str:
    """GBNF whose sentences are exactly the compact JSON documents `schema` accepts (`root` first)."""
    conv = _Converter(max_items)
    conv.primitive("ws")
    top = conv.visit(schema, "reply")
    lines = [f"root ::= {top}"]
    lines += [f"{name} ::= {body}" for name, body in conv.rules.items()]
    return "\n".join(lines) + "\n"


REVIEW_GRAMMAR = schema_to_gbnf(REPLY_SCHEMA)
