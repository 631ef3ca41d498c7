"""Well-known secret formats (cloud keys, tokens, private keys) found in text, and redacted.

The patterns are detect-secrets' own (Yelp's maintained list: the `denylist` of every
regex-based plugin in `detect_secrets.plugins`: AWS, GitHub, GitLab, Stripe, Slack, OpenAI,
PyPI, npm, SendGrid, Twilio, Discord, JWT, Azure, IBM, Mailchimp, Artifactory, basic-auth
URLs, private-key headers...), minus its public-IP detector. Importing detect-secrets costs
~0.25 s, so the patterns it yields are kept in the cache folder per detect-secrets version
and read back as plain regular expressions. Without detect-secrets, FALLBACK (taken from the
same plugins, detect-secrets 1.5.0) is used. A PEM block pattern of our own removes whole
private keys, not only their first line.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# (kind, regex, flags): detect-secrets 1.5.0's patterns for the commonest formats
FALLBACK: tuple[tuple[str, str, int], ...] = (
    ("AWS Access Key", r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}", 0),
    ("AWS Access Key",
     r"aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?['\"]([0-9a-zA-Z/+]{40})['\"]",
     re.IGNORECASE),
    ("GitHub Token", r"(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}", 0),
    ("Stripe Access Key", r"(?:r|s)k_live_[0-9a-zA-Z]{24}", 0),
    ("Slack Token", r"xox(?:a|b|p|o|s|r)-(?:\d+-)+[a-z0-9]+", re.IGNORECASE),
    ("Slack Token", r"https://hooks\.slack\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+",
     re.IGNORECASE),
    ("OpenAI Token", r"sk-[A-Za-z0-9-_]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}", 0),
    ("JSON Web Token", r"eyJ[A-Za-z0-9-_=]+\.[A-Za-z0-9-_=]+\.?[A-Za-z0-9-_.+/=]*?", 0),
)
PEM = ("Private Key",
       r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE "
       r"KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s:,.-]*)", 0)
SKIPPED_PLUGINS = frozenset({"IPPublicDetector"})  # an address is not a secret
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-]*")
_DELIMITERS = " \t\r\n\"'=:"
CACHE_NAME = "secret-patterns-{version}.json"


@dataclass(frozen=True)
class Secret:
    """One secret value found: its kind, where it is (characters), and its 1-based line."""

    kind: str
    start: int
    end: int
    line: int


def _from_detect_secrets() -> list[tuple[str, str, int]] | None:
    """Every regex-based detect-secrets plugin's patterns, or None when it is not installed."""
    try:
        import importlib
        import pkgutil

        import detect_secrets.plugins as plugins
        from detect_secrets.plugins.base import RegexBasedDetector
    except ImportError:
        return None
    found: list[tuple[str, str, int]] = []
    for module_info in pkgutil.iter_modules(plugins.__path__):
        module = importlib.import_module(f"detect_secrets.plugins.{module_info.name}")
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, RegexBasedDetector)
                    and value is not RegexBasedDetector and value.__module__ == module.__name__
                    and value.__name__ not in SKIPPED_PLUGINS):
                kind = str(getattr(value, "secret_type", value.__name__))
                for regex in getattr(value, "denylist", ()):
                    found.append((kind, regex.pattern, int(regex.flags)))
    return found


def _detect_secrets_version() -> str | None:
    """The installed detect-secrets' version, read without importing it (that costs ~0.25 s)
    or scanning every installed distribution's metadata (importlib.metadata: ~0.2 s)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("detect_secrets")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        try:
            text = (Path(folder) / "__version__.py").read_text(encoding="utf-8")
        except OSError:
            continue
        found = re.search(r"VERSION\s*=\s*['\"]([^'\"]+)['\"]", text)
        if found:
            return found.group(1)
    return None


def _load_raw() -> tuple[list[tuple[str, str, int]], str]:
    """The pattern list and where it came from, through the per-version cache file."""
    from gemma_code import paths
    from gemma_code.atomic import write_text_atomic

    ds_version = _detect_secrets_version()
    if ds_version is None:
        return list(FALLBACK), "built-in list (detect-secrets 1.5.0's patterns)"
    cache = paths.cache_dir() / CACHE_NAME.format(version=ds_version)
    source = f"detect-secrets {ds_version}"
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        return [(str(k), str(p), int(f)) for k, p, f in data], source
    except (OSError, ValueError, TypeError):
        pass  # missing or damaged: rebuilt below
    raw = _from_detect_secrets()
    if not raw:
        return list(FALLBACK), "built-in list (detect-secrets 1.5.0's patterns)"
    with contextlib.suppress(OSError):  # an unwritable cache costs time next run, nothing else
        write_text_atomic(cache, json.dumps(raw))
    return raw, source


@lru_cache(maxsize=1)
def patterns() -> tuple[tuple[tuple[str, re.Pattern[str]], ...], str]:
    """Compiled (kind, regex) pairs, line-anchored per line as detect-secrets scans, and source."""
    raw, source = _load_raw()
    compiled: list[tuple[str, re.Pattern[str]]] = []
    for kind, pattern, flags in [*raw, PEM]:
        try:
            compiled.append((kind, re.compile(pattern, (flags & ~re.UNICODE) | re.MULTILINE)))
        except (re.error, ValueError):
            continue  # a pattern this Python cannot compile: the others still apply
    return tuple(compiled), source


# Every value these patterns hide is a run of 11+ token characters (Artifactory's shortest),
# a URL's password, or a PEM block: lines without one are not searched (most of a file).
_CANDIDATE = re.compile(r"[A-Za-z0-9_\-+/=.]{11,}|://")


def _value_span(match: re.Match[str]) -> tuple[int, int]:
    """The secret inside a match: its longest group of 8+ characters, else the whole match."""
    best = (0, 0)
    for i in range(1, (match.re.groups or 0) + 1):
        start, end = match.span(i)
        if start >= 0 and end - start >= 8 and end - start > best[1] - best[0]:
            best = (start, end)
    return best if best != (0, 0) else match.span()


def _candidate_text(text: str) -> tuple[str, list[int], list[int]]:
    """The lines worth searching, joined, with each one's start there and in `text`."""
    kept: list[str] = []
    starts: list[int] = []
    origins: list[int] = []
    at = joined = 0
    for line in text.split("\n"):
        if _CANDIDATE.search(line):
            kept.append(line)
            starts.append(joined)
            origins.append(at)
            joined += len(line) + 1
        at += len(line) + 1
    return "\n".join(kept), starts, origins


def find_secrets(text: str) -> list[Secret]:
    """Every secret value in `text`, merged where they overlap, in order."""
    import bisect

    compiled = patterns()[0]
    spans: list[tuple[int, int, str]] = []
    sparse, starts, origins = _candidate_text(text)
    for kind, regex in compiled:
        whole = kind == PEM[0] and regex.pattern == PEM[1]
        for match in regex.finditer(text if whole else sparse):
            start, end = _value_span(match)
            if not whole:  # back to offsets in `text`
                shift = origins[bisect.bisect_right(starts, start) - 1] - starts[
                    bisect.bisect_right(starts, start) - 1]
                start, end = start + shift, end + shift
            while start < end and text[start] in _DELIMITERS:
                start += 1
            while end > start and text[end - 1] in _DELIMITERS:
                end -= 1
            if end - start < 8:
                continue
            # a key longer than the pattern's fixed length (Stripe's are) is hidden whole
            tail = _TOKEN_CHARS.match(text, end)
            spans.append((start, tail.end() if tail else end, kind))
    spans.sort()
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in spans:
        if merged and start <= merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2])
        else:
            merged.append((start, end, kind))
    return [Secret(kind, s, e, text.count("\n", 0, s) + 1) for s, e, kind in merged]


class Redactor:
    """Replaces secret values with numbered placeholders, and can put them back.

    The same value always gets the same placeholder, so a prompt stays byte-stable across turns
    and a reply that quotes a placeholder (an edit of the line holding a key) gets the real
    value back before anything is shown or written.
    """

    def __init__(self) -> None:
        self.values: dict[str, str] = {}  # placeholder -> value
        self._by_value: dict[str, str] = {}
        self.kinds: dict[str, int] = {}  # kind -> values hidden

    def redact(self, text: str) -> str:
        """`text` with every secret value replaced by its placeholder."""
        found = find_secrets(text) if text else []
        if not found:
            return text
        out: list[str] = []
        at = 0
        for secret in found:
            value = text[secret.start:secret.end]
            mark = self._by_value.get(value)
            if mark is None:
                mark = f"[REDACTED {secret.kind} #{len(self.values) + 1}]"
                self.values[mark] = value
                self._by_value[value] = mark
                self.kinds[secret.kind] = self.kinds.get(secret.kind, 0) + 1
            out.append(text[at:secret.start])
            out.append(mark)
            at = secret.end
        out.append(text[at:])
        return "".join(out)

    def restore(self, text: str) -> str:
        """`text` with every known placeholder replaced by its value."""
        if not self.values or "[REDACTED " not in text:
            return text
        for mark, value in self.values.items():
            text = text.replace(mark, value)
        return text

    def note(self) -> str | None:
        """One line for the user, or None when nothing was hidden."""
        if not self.values:
            return None
        kinds = ", ".join(f"{k} ({n})" if n > 1 else k for k, n in sorted(self.kinds.items()))
        return (f"{len(self.values)} secret value(s) kept out of the prompt ({kinds}): the model "
                "saw placeholders; what it wrote back gets the real values")
