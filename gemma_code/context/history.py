"""What the repository's history says about where a change lands: recently changed files and
files that change together.

The history is the files of the last `HISTORY_COMMITS` commits reachable from HEAD (sweeping
commits that touch many files are left out: renames and reformatting say nothing about which
files belong together). It is read once per HEAD and cached.
"""

from __future__ import annotations

import marshal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemma_code import gitops
from gemma_code.context.cache import ContextCache
from gemma_code.errors import GitError

HISTORY_COMMITS = 500
SWEEPING = 30  # a commit touching more files than this is left out
HALF_LIFE = 60  # commits: a file changed this many commits ago counts half as much as one changed now


@dataclass
class History:
    """Files per commit, newest first (each list sorted)."""

    commits: list[list[str]] = field(default_factory=list)

    def recency(self, paths: Sequence[str] | None = None) -> dict[str, float]:
        """How recently and often each file changed: sum of 2^(-age / HALF_LIFE) over its commits."""
        wanted = set(paths) if paths is not None else None
        score: dict[str, float] = {}
        for age, files in enumerate(self.commits):
            weight = 0.5 ** (age / HALF_LIFE)
            for path in files:
                if wanted is None or path in wanted:
                    score[path] = score.get(path, 0.0) + weight
        return score

    def cochange(self, seeds: Mapping[str, float]) -> dict[str, float]:
        """Files changed in the same commits as the `seeds` (weighted by seed and commit size)."""
        score: dict[str, float] = {}
        for files in self.commits:
            weight = sum(seeds.get(p, 0.0) for p in files)
            if weight <= 0 or len(files) < 2:
                continue
            share = weight / (len(files) - 1)
            for path in files:
                rest = share - (seeds.get(path, 0.0) / (len(files) - 1))
                if rest > 0:
                    score[path] = score.get(path, 0.0) + rest
        return score


def parse_log(text: str) -> list[list[str]]:
    """`git log --name-only --format=%x00` output -> files per commit, sweeping commits left out."""
    commits: list[list[str]] = []
    for chunk in text.split("\0")[1:]:
        files = sorted({line for line in chunk.splitlines() if line})
        if 0 < len(files) <= SWEEPING:
            commits.append(files)
    return commits


def load_history(root: Path, cache: ContextCache | None = None, *, head: str | None = "") -> History:
    """The repository's recent history (empty outside git or before the first commit).

    `head`: HEAD's commit when the caller already looked it up (None: there is none).
    """
    if head == "":
        try:
            head = gitops.rev_parse(root, "HEAD")[0]
        except (GitError, IndexError):
            head = None
    if head is None:
        return History()
    key = f"{head}:{HISTORY_COMMITS}:{SWEEPING}"
    if cache is not None:
        blob = cache.load_blob(str(root), "history", key)
        if blob is not None:
            try:
                return History(marshal.loads(blob))
            except (ValueError, TypeError, EOFError):
                pass  # unreadable: read the log again
    try:
        text = gitops.file_log(root, HISTORY_COMMITS)
    except GitError:
        return History()
    history = History(parse_log(text))
    if cache is not None:
        cache.store_blob(str(root), "history", key, marshal.dumps(history.commits))
    return history
